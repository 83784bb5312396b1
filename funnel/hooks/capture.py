"""Every event becomes outbox rows in the transaction that made it.

Rather than asking every use case (sign-up, confirm, the provider's bounce, the
worker's send, erasure …) to remember a call, one ``after_flush`` listener on the
app's sessions looks at what the flush changed and writes the matching
``webhook_message`` rows on the same connection. So the event and its delivery
commit together or not at all: nothing is lost if the process dies, and nothing
is announced that was rolled back.

Core ``INSERT``/``UPDATE`` statements bypass the ORM and so this listener; code
that changes subscribers that way calls ``events.enqueue`` itself (the CSV import),
and the worker's batches call ``sent``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from funnel.core.states import DeliveryKind, DeliveryState
from funnel.hooks import events as ev
from funnel.models import (
    MESSAGE_PENDING,
    MESSAGE_SCRUBBED,
    MESSAGE_SENDING,
    Delivery,
    Subscriber,
    SubscriberTag,
    WebhookMessage,
)

STATUS_EVENTS = {
    "confirmed": ev.SUBSCRIBER_CONFIRMED,
    "unsubscribed": ev.SUBSCRIBER_UNSUBSCRIBED,
    "bounced": ev.SUBSCRIBER_BOUNCED,
    "complained": ev.SUBSCRIBER_COMPLAINED,
}
SCRUBBED_PAYLOAD = json.dumps({"scrubbed": "the subscriber was erased"})


def install(sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
    """Listen on every session ``sessions`` makes (the web's and the worker's)."""

    def _after_flush(session: Session, _ctx: Any) -> None:
        collect(session, clock())

    event.listen(sessions, "after_flush", _after_flush)


def _new_status(obj: Any) -> str | None:
    hist = inspect(obj).attrs.status.history
    return hist.added[0] if hist.added else None


def collect(session: Session, now: datetime) -> None:
    found: list[tuple[str, dict[str, Any], int | None]] = []
    erased: list[int] = []
    sent: list[Delivery] = []
    for obj in session.new:
        if isinstance(obj, Subscriber):
            found.append((ev.SUBSCRIBER_CREATED, ev.subscriber_data(obj), obj.id))
        elif isinstance(obj, Delivery) and obj.state == DeliveryState.SENT:
            sent.append(obj)
    for obj in session.dirty:
        if isinstance(obj, Subscriber) and obj not in session.deleted:
            kind = STATUS_EVENTS.get(_new_status(obj) or "")
            if kind:
                found.append((kind, ev.subscriber_data(obj), obj.id))
        elif isinstance(obj, Delivery) and _new_status_of_delivery(obj) == DeliveryState.SENT:
            sent.append(obj)
    for obj in session.deleted:
        if isinstance(obj, Subscriber):
            erased.append(obj.id)
            # Only the opaque id the endpoint already knows, so it can erase its copy.
            found.append((ev.SUBSCRIBER_ERASED, {"id": obj.public_id}, None))
    if not (found or erased or sent):
        return
    conn = session.connection()
    if erased:
        scrub(conn, erased)
    endpoints = ev.active_endpoints(conn)
    if not endpoints:
        return  # the usual case: nobody listening, so a worker's batch costs one query
    # Plan emails and newsletters; a confirmation is part of signing up, not "an email sent".
    sent = [d for d in sent if d.kind != DeliveryKind.SYSTEM]
    if sent and any(ev.EMAIL_SENT in wanted for _id, wanted in endpoints):
        found.extend(_sent_events(conn, sent))
    _fill_tags(conn, found)
    ev.enqueue(conn, [f for f in found if f[2] is None or f[2] not in erased], now, endpoints)


def _fill_tags(conn, found: list[tuple[str, dict[str, Any], int | None]]) -> None:
    """The subscribers' tags as they are in this transaction, into their payloads."""
    ids = [sid for _kind, data, sid in found if sid is not None and "tags" in data]
    if not ids:
        return
    names: dict[int, list[str]] = {}
    for sid, tag in conn.execute(select(SubscriberTag.subscriber_id, SubscriberTag.tag)
                                 .where(SubscriberTag.subscriber_id.in_(ids))
                                 .order_by(SubscriberTag.tag)):
        names.setdefault(sid, []).append(tag)
    for _kind, data, sid in found:
        if sid is not None and "tags" in data:
            data["tags"] = names.get(sid, [])


def sent(conn, deliveries: list[Any], now: datetime) -> None:
    """``email.sent`` for deliveries written with Core statements (the worker's
    batches), like ``collect`` does for those flushed through the ORM."""
    deliveries = [d for d in deliveries if d.kind != DeliveryKind.SYSTEM]
    if not deliveries:
        return
    endpoints = ev.active_endpoints(conn)
    if any(ev.EMAIL_SENT in wanted for _id, wanted in endpoints):
        ev.enqueue(conn, _sent_events(conn, deliveries), now, endpoints)


def _new_status_of_delivery(d: Delivery) -> str | None:
    hist = inspect(d).attrs.state.history
    return hist.added[0] if hist.added else None


def _sent_events(conn, sent: list[Any]) -> list[tuple[str, dict[str, Any], int | None]]:
    ids = {d.subscriber_id for d in sent}
    people = {row.id: row for row in conn.execute(
        select(Subscriber.id, Subscriber.public_id, Subscriber.email).where(Subscriber.id.in_(ids))
    )}
    out: list[tuple[str, dict[str, Any], int | None]] = []
    for d in sent:
        person = people.get(d.subscriber_id)
        if person is None:
            continue
        out.append((ev.EMAIL_SENT, {
            "subscriber": {"id": person.public_id, "email": person.email},
            "email": d.step_slug,
            "delivery_id": d.public_id,
            "sent_at": ev.iso(d.sent_at),
        }, d.subscriber_id))
    return out


def scrub(conn, subscriber_ids: list[int]) -> None:
    """Erasure: messages not yet delivered are withdrawn, and the stored copies of
    those that were lose their data. Only the row, saying that, remains."""
    conn.execute(
        update(WebhookMessage)
        .where(WebhookMessage.subscriber_id.in_(subscriber_ids))
        .where(or_(WebhookMessage.state == MESSAGE_PENDING,
                   WebhookMessage.state == MESSAGE_SENDING))
        .values(state=MESSAGE_SCRUBBED, next_attempt_at=None, lease_until=None)
    )
    conn.execute(
        update(WebhookMessage)
        .where(WebhookMessage.subscriber_id.in_(subscriber_ids))
        .values(payload=SCRUBBED_PAYLOAD, subscriber_id=None, response_body=None)
    )
