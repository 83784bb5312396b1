"""What a tag may be called: one rule for every way in (CSV, admin, API, CLI, rules)."""

from __future__ import annotations

import re

from funnel.core.inputs import FunnelError
from funnel.core.tags import normal_tag
from funnel.models import TAG_REASON_MAX

# A CSV cell or a form field may hold several, separated by commas or spaces.
_SEPARATORS = re.compile(r"[,;\s]+")


class TagError(FunnelError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "tags")


def parse_tag(raw: str) -> str:
    """The tag as stored, or ``TagError`` saying what is wrong with it."""
    try:
        return normal_tag((raw or "")[:200])
    except ValueError as exc:
        message = str(exc)
        raise TagError(message[0].upper() + message[1:] + ".") from exc


def parse_tags(raw: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Several tags from one cell ("race, plan-pdf") or a list; repeats dropped, order kept."""
    if raw is None:
        return []
    parts = _SEPARATORS.split(raw) if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for part in parts:
        if isinstance(part, str) and not part.strip() and isinstance(raw, str):
            continue  # "race, " has an empty piece after the comma: not an error
        tag = parse_tag(part if isinstance(part, str) else "")
        if tag not in out:
            out.append(tag)
    return out


def clean_reason(raw: str | None) -> str | None:
    """Why the tag was added, as shown to the admin: one line, no control characters."""
    reason = (raw or "").strip()
    if not reason:
        return None
    if len(reason) > TAG_REASON_MAX:
        raise FunnelError(f"The reason is at most {TAG_REASON_MAX} characters.", "reason")
    if not reason.isprintable():
        raise FunnelError("The reason has a hidden or control character.", "reason")
    return reason
