"""Input rules: what an address, a first name and a time zone must look like.

One home for them, so the form, the preference page, the CSV import and the CLI
refuse the same things with the same words. No Flask in here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

MAX_FIRST_NAME = 80


class FunnelError(ValueError):
    """A request we refuse; the message is safe to show to the person."""

    def __init__(self, message: str, field: str = "email") -> None:
        super().__init__(message)
        self.field = field


# Characters a name never needs and an attacker loves: terminal escapes, bells,
# line and paragraph separators, and the bidi controls that make text read
# backwards (U+202E turns "gnp.exe" into "exe.png"), and every other invisible
# format character (Unicode category Cf: U+FEFF, U+200B, soft hyphens, joiners),
# which make two names that look alike compare different.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def first_name_problem(name: str) -> str | None:
    if name.isascii() and name.isprintable():
        # Space to "~" only: no line break, control or bidi character can be in it,
        # and an import of a million names skips a category look-up per character.
        return _too_long(name)
    return every_character_checked(name)


def every_character_checked(name: str) -> str | None:
    """The first-name rule without the printable-ASCII shortcut (the tests hold the
    shortcut to it)."""
    if any(c in name for c in "\r\n"):
        return "Please use a first name without line breaks."
    for c in name:
        if c in BIDI_CONTROLS or unicodedata.category(c) in REFUSED_CATEGORIES:
            return ("Please use a first name with letters only: it has a hidden or control "
                    f"character (U+{ord(c):04X}) that we can't put in an email.")
    return _too_long(name)


NUL_MESSAGE = "Remove the NUL character (U+0000) from {what}: no text we keep can hold it."


def nul_problem(value: object, what: str = "the request") -> str | None:
    """The one rule for a NUL byte, wherever text comes in (query strings, forms,
    JSON bodies): PostgreSQL cannot store it in text, so it is refused up front with
    a message instead of failing deep inside a query."""
    if isinstance(value, str):
        return NUL_MESSAGE.format(what=what) if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = nul_problem(key, what) or nul_problem(item, f"'{key}'")
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for item in value:
            problem = nul_problem(item, what)
            if problem:
                return problem
    return None


def _too_long(name: str) -> str | None:
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
    return _common_shape(raw) or _validated(raw)


def _validated(raw: str) -> str:
    """The address as email_validator normalises it, or its refusal in our words."""
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


# The shape nearly every real address has: ASCII, one @, an RFC 5322 dot-atom before
# it (email_validator's own pattern) and letters, digits, dots and hyphens after it.
# email_validator spends most of its time on the domain (IDNA and label rules), and
# an import repeats the same few domains; so the domain's verdict is asked of
# email_validator once and kept. Anything else takes the full path, so every refusal
# is email_validator's own; tests/test_inputs_email.py checks with hypothesis that
# both paths accept the same addresses and return the same form.
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.-]+\Z")


def _common_shape(raw: str) -> str | None:
    """``_validated(raw)`` for the common shape, or None to take the full path."""
    local, at, domain = raw.partition("@")
    if not at or not raw.isascii() or "@" in domain or not DOT_ATOM_TEXT.match(local) \
            or not _PLAIN_DOMAIN.match(domain):
        return None
    ascii_domain = _plain_domain(domain)
    if ascii_domain is None or len(local) + 1 + len(ascii_domain) > EMAIL_MAX_LENGTH:
        return None
    return f"{local}@{ascii_domain}".lower()


@lru_cache(maxsize=4096)
def _plain_domain(domain: str) -> str | None:
    """The domain as email_validator normalises it, when it accepts it unchanged by IDNA."""
    try:
        info = validate_email("a@" + domain, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return info.ascii_domain if info.ascii_domain == info.domain else None


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """IANA zone names a subscriber may choose (the same set sign-up accepts), sorted.

    Menus offer only the canonical ones (``funnel.core.timezones``); older aliases a
    browser may report are still accepted, "Factory" and "localtime" are not.
    """
    from funnel.core.timezones import accepted_zones

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
