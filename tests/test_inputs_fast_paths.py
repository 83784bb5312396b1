"""The fast paths for common addresses and names decide exactly as the full rules do.

``normalise_email`` answers the common shape (ASCII dot-atom @ plain domain) itself
and asks email_validator about each domain once; these properties compare it with
the full email_validator path on generated, near-miss and hostile addresses: the
same addresses accepted, the same stored form, the same refusal message. A first
name of printable ASCII skips the per-character look-ups; the same kind of property
compares it with the character-by-character rule.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from funnel.core.inputs import (
    FunnelError,
    _common_shape,
    _validated,
    every_character_checked,
    first_name_problem,
    normalise_email,
)

ATEXT = "abcxyzABCXYZ0129_!#$%&'*+-/=?^`{|}~"
# Characters that sit on the edge of the rules: dots, specials, quotes, brackets,
# spaces, controls, combining marks, look-alikes, bidi controls, non-ASCII letters.
EDGE = ".@\"()<>[]\\,;: \t\r\n\x00\x7f\u0301\u0338\u200b\u202e\uff0e\u3002é\u0131ß"
LABEL_CHARS = "abcxyzABCXYZ0129-"

local_parts = st.text(alphabet=ATEXT + ".", min_size=0, max_size=70)
labels = st.text(alphabet=LABEL_CHARS, min_size=0, max_size=70)
tlds = st.sampled_from(["com", "org", "COM", "example", "invalid", "local", "localhost",
                        "test", "onion", "arpa", "c", "x1", "123", "xn--p1ai", "-com", ""])
domains = st.builds(lambda parts, tld: ".".join([*parts, tld]),
                    st.lists(labels, min_size=0, max_size=5), tlds)
plausible = st.builds(lambda lo, d: f"{lo}@{d}", local_parts, domains)
# Near misses: a plausible address with edge characters spliced in anywhere.
spliced = st.builds(lambda a, i, junk: a[:i % (len(a) + 1)] + junk + a[i % (len(a) + 1):],
                    plausible, st.integers(0, 300), st.text(alphabet=EDGE, min_size=1, max_size=3))
anything = st.text(alphabet=ATEXT + EDGE + LABEL_CHARS, max_size=80)


def full_path(raw: str) -> str:
    """What ``normalise_email`` answered before the fast path: email_validator alone."""
    raw = (raw or "").strip()
    if len(raw) > 254:
        raise FunnelError("That email address is too long.")
    return _validated(raw)


def outcome(fn, raw: str) -> tuple[str, str]:
    try:
        return "ok", fn(raw)
    except FunnelError as exc:
        return "refused", str(exc)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(plausible, spliced, anything))
@example("Runner.1@Example12.com")
@example("a@xn--bcher-kva.example")  # IDNA form: full path, kept as punycode
@example("a@b.c-")
@example("a@" + "b" * 63 + ".com")
@example("a@" + "b" * 64 + ".com")  # label too long
@example("x" * 67 + "@" + ".".join(["d" * 60] * 3) + ".com")  # 254: the longest allowed
@example("x" * 68 + "@" + ".".join(["d" * 60] * 3) + ".com")  # 255
# Short in punycode, too long in UTF-8 once the domain is read as Unicode (refused).
@example("x" * 160 + "@" + ".".join(["xn--fiqaaaaaaaa6880dbabbbbbbb"] * 3) + ".com")
@example("." + "a@example.com")
@example("a.@example.com")
@example("postmaster@EXAMPLE.COM")
@example("a@example.com.")
@example("a@localhost")
@example("a@x.onion")
@example("a@123.123.123.123")
@example("a@[127.0.0.1]")
@example("Ann <a@example.com>")
@example("\"a b\"@example.com")
def test_fast_path_decides_exactly_as_email_validator(raw):
    assert outcome(normalise_email, raw) == outcome(full_path, raw)
    fast = _common_shape(raw.strip())
    if fast is not None:  # it only ever accepts, and only what the full path accepts
        assert outcome(full_path, raw) == ("ok", fast)


@pytest.mark.parametrize("raw", ["Runner.7@Example3.com", "a+tag@mail.example.org",
                                 "o'neil@example.ie", "first.last@sub.domain.co.uk"])
def test_common_addresses_take_the_fast_path(raw):
    """A negative control for the property above: it does compare two paths."""
    assert _common_shape(raw) == raw.lower() == normalise_email(raw)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(max_size=90),
                 st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=90),
                 st.text(alphabet=st.sampled_from(list("Ann O'Neil-Smith\t\r\n\x00\x1b\x7f\x85"
                                                      "\u2028\u202e\u200f\ud800é")), max_size=90)))
@example("Runner 1")
@example("A" * 80)
@example("A" * 81)
@example("Ann\x7f")
@example("Ann\tLee")
def test_first_name_shortcut_decides_as_every_character_checked(name):
    assert first_name_problem(name) == every_character_checked(name)
