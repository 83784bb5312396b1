"""How the API writes and reads values: a subscriber as JSON, dates in range, cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from funnel import runtime, tagging
from funnel.api.problems import Problem
from funnel.core import lifecycle
from funnel.models import Subscriber

# The dates the API accepts: room on both sides for arithmetic (a pause's end plus
# a step's delay) without leaving what Python and both databases can hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)


LATEST = datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)


def _when(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Problem(400, f"{where} is not an ISO 8601 date-time.") from exc
    if value.tzinfo is None:
        raise Problem(400, f"{where} needs a time zone offset (e.g. Z).")
    try:
        # 9999-12-31T23:59:59-14:00 is a valid text but lies past year 9999 in UTC,
        # where neither Python nor the database can hold it.
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise Problem(400, f"{where} is out of range: use a date between {EARLIEST:%Y-%m-%d} "
                           f"and {LATEST:%Y-%m-%d}.") from exc
    if not EARLIEST <= utc <= LATEST:
        raise Problem(400, f"{where} is out of range: use a date between {EARLIEST:%Y-%m-%d} "
                           f"and {LATEST:%Y-%m-%d}.")
    return utc


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def show(sub: Subscriber, tags: list[str] | None = None) -> dict[str, Any]:
    now = runtime.now()
    if lifecycle.paused_until_resumed(sub):
        paused: str | None = "indefinite"
    else:
        paused = _iso(sub.paused_until) if lifecycle.is_paused(sub, now) else None
    return {
        "id": sub.public_id, "email": sub.email, "first_name": sub.first_name,
        "status": sub.status, "time_zone": sub.timezone, "created_at": _iso(sub.created_at),
        "confirmed_at": _iso(sub.confirmed_at), "unsubscribed_at": _iso(sub.unsubscribed_at),
        "paused_until": paused,
        "topics": {"plan": bool(sub.wants_plan), "newsletter": bool(sub.wants_newsletter)},
        "source": sub.utm_source or sub.referrer,
        "tags": tags if tags is not None else tagging.tag_names(runtime.session(), [sub.id])[sub.id],
    }


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "after" or not value.isdigit() or len(value) > 18:
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(400, "The cursor is not one this API gave out.") from exc
