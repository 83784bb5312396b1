"""Input rules: what an address, a first name and a time zone must look like.

One home for them, so the form, the preference page, the CSV import and the CLI
refuse the same things with the same words. No Flask in here.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

MAX_FIRST_NAME = 80


class FunnelError(ValueError):
    """A request we refuse; the message is safe to show to the person."""

    def __init__(self, message: str, field: str = "email") -> None:
        super().__init__(message)
        self.field = field


def normalise_email(raw: str) -> str:
    raw = (raw or "").strip()
    if len(raw) > 254:
        raise FunnelError("That email address is too long.")
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FunnelError(f"That email address doesn't look right: {exc}") from exc
    return info.normalized.lower()


def clean_first_name(raw: str | None) -> str | None:
    """A first name as stored: stripped, None when empty; FunnelError when unusable."""
    name = (raw or "").strip() or None
    if name and any(c in name for c in "\r\n\x00"):
        raise FunnelError("Please use a first name without line breaks.", "first_name")
    if name and len(name) > MAX_FIRST_NAME:
        raise FunnelError(
            f"That first name is too long ({MAX_FIRST_NAME} characters at most).", "first_name")
    return name


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """IANA zone names a subscriber may choose (the same set sign-up accepts), sorted."""
    return tuple(sorted(available_timezones()))
