"""The events we tell endpoints about, and what each one carries.

A payload is built when the event happens and stored in the outbox, so a retry a
day later says exactly what the first attempt said. Erasure is the exception: a
subscriber's data never leaves after they are erased (``capture`` scrubs it).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from funnel.models import (
    ENDPOINT_ACTIVE,
    MESSAGE_PENDING,
    Subscriber,
    WebhookEndpoint,
    WebhookMessage,
)

SUBSCRIBER_CREATED = "subscriber.created"
SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
SUBSCRIBER_BOUNCED = "subscriber.bounced"
SUBSCRIBER_COMPLAINED = "subscriber.complained"
SUBSCRIBER_ERASED = "subscriber.erased"
EMAIL_SENT = "email.sent"
BROADCAST_FINISHED = "broadcast.finished"

EVENT_TYPES = (
    SUBSCRIBER_CREATED, SUBSCRIBER_CONFIRMED, SUBSCRIBER_UNSUBSCRIBED, SUBSCRIBER_BOUNCED,
    SUBSCRIBER_COMPLAINED, SUBSCRIBER_ERASED, EMAIL_SENT, BROADCAST_FINISHED,
)
# Retries run for this long after the event; then the message is marked failed.
RETRY_FOR = timedelta(hours=24)


def new_msg_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def subscriber_data(sub: Subscriber) -> dict[str, Any]:
    """What an endpoint learns about a subscriber: the profile, no consent details."""
    return {
        "id": sub.public_id,
        "email": sub.email,
        "first_name": sub.first_name,
        "status": sub.status,
        "time_zone": sub.timezone,
        "created_at": iso(sub.created_at),
        "confirmed_at": iso(sub.confirmed_at),
        "unsubscribed_at": iso(sub.unsubscribed_at),
        "source": sub.utm_source or sub.referrer,
        "tags": [],  # filled in from the tag rows by ``capture`` (one query per flush)
    }


def subscriber_row_data(row: dict[str, Any]) -> dict[str, Any]:
    """``subscriber_data`` for a row inserted without the ORM (the CSV import)."""
    return {
        "id": row["public_id"], "email": row["email"], "first_name": row.get("first_name"),
        "status": row["status"], "time_zone": row["timezone"],
        "created_at": iso(row["created_at"]), "confirmed_at": iso(row.get("confirmed_at")),
        "unsubscribed_at": iso(row.get("unsubscribed_at")), "source": row.get("utm_source"),
        "tags": list(row.get("tags", ())),
    }


def envelope(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The body as sent: the Standard Webhooks shape {type, timestamp, data}."""
    return json.dumps({"type": event_type, "timestamp": iso(now), "data": data},
                      separators=(",", ":"), ensure_ascii=False)


def active_endpoints(conn: Connection) -> list[tuple[int, frozenset[str]]]:
    rows = conn.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events)
        .where(WebhookEndpoint.state == ENDPOINT_ACTIVE)
    )
    return [(row.id, frozenset(row.events.split())) for row in rows]


def enqueue(conn: Connection, events: list[tuple[str, dict[str, Any], int | None]],
            now: datetime, endpoints: list[tuple[int, frozenset[str]]] | None = None) -> int:
    """Write one outbox row per (event, endpoint that wants it) on ``conn``, inside
    the caller's transaction: the event and its delivery commit or vanish together.
    ``events`` holds (type, data, subscriber id). Returns the rows written."""
    if not events:
        return 0
    if endpoints is None:
        endpoints = active_endpoints(conn)
    rows = [
        {
            "msg_id": new_msg_id(), "endpoint_id": endpoint_id, "event_type": kind,
            "payload": envelope(kind, data, now), "subscriber_id": subscriber_id,
            "state": MESSAGE_PENDING, "attempts": 0, "next_attempt_at": now,
            "give_up_at": now + RETRY_FOR, "created_at": now,
        }
        for kind, data, subscriber_id in events
        for endpoint_id, wanted in endpoints
        if kind in wanted
    ]
    if rows:
        conn.execute(insert(WebhookMessage), rows)
    return len(rows)
