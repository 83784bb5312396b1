"""Input rules: what an address, a first name and a time zone must look like.

One home for them, so the form, the preference page, the CSV import and the CLI
refuse the same things with the same words. No Flask in here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

MAX_FIRST_NAME = 80


class FunnelError(ValueError):
    """A request we refuse; the message is safe to show to the person."""

    def __init__(self, message: str, field: str = "email") -> None:
        super().__init__(message)
        self.field = field


# Characters a name never needs and an attacker loves: terminal escapes, bells,
# line and paragraph separators, and the bidi controls that make text read
# backwards (U+202E turns "gnp.exe" into "exe.png").
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs", "Co", "Cn"})


def first_name_problem(name: str) -> str | None:
    if any(c in name for c in "\r\n"):
        return "Please use a first name without line breaks."
    for c in name:
        if c in BIDI_CONTROLS or unicodedata.category(c) in REFUSED_CATEGORIES:
            return ("Please use a first name with letters only: it has a hidden or control "
                    f"character (U+{ord(c):04X}) that we can't put in an email.")
    if len(name) > MAX_FIRST_NAME:
        return f"That first name is too long ({MAX_FIRST_NAME} characters at most)."
    return None


def clean_first_name(raw: str | None) -> str | None:
    """The one rule for a first name, wherever it comes in (form, preferences, import)."""
    name = (raw or "").strip()
    if not name:
        return None
    problem = first_name_problem(name)
    if problem:
        raise FunnelError(problem, "first_name")
    return name


def normalise_email(raw: str) -> str:
    raw = (raw or "").strip()
    if len(raw) > 254:
        raise FunnelError("That email address is too long.")
    try:
        info = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        if any(ord(c) > 127 for c in raw.rpartition("@")[0]):
            raise FunnelError(
                "Please use an address whose part before the @ has only the letters a–z, "
                "digits and . _ + - (most mail servers can't deliver to other characters)."
            ) from exc
        raise FunnelError(f"That email address doesn't look right: {exc}") from exc
    # IDN domains are kept in their IDNA (punycode) form: the same address however
    # it was typed, and a To: header every server can read.
    return (info.ascii_email or info.normalized).lower()


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """IANA zone names a subscriber may choose (the same set sign-up accepts), sorted.

    Menus offer only the canonical ones (``funnel.timezones``); older aliases a
    browser may report are still accepted, "Factory" and "localtime" are not.
    """
    from funnel.timezones import accepted_zones

    return tuple(sorted(accepted_zones()))


def pick_names(raw: Iterable[str], choices: Sequence[str], *, noun: str) -> list[str]:
    """Names from a list of comma/space-separated texts, each one of ``choices``; "all"
    means every one. In ``choices`` order, without repeats; ValueError says what to pick."""
    picked: list[str] = []
    for item in raw:
        for name in item.replace(",", " ").split():
            if name == "all":
                picked.extend(choices)
            elif name in choices:
                picked.append(name)
            else:
                raise ValueError(f"unknown {noun} {name!r}; choose from: {', '.join(choices)}, all")
    if not picked:
        raise ValueError(f"choose at least one {noun}: {', '.join(choices)} or all")
    return sorted(set(picked), key=list(choices).index)
