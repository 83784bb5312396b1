"""What the mail provider tells us happened: ``record_events``. No Flask in here.

Bounces, drops, spam reports and unsubscribes stop all mail to that subscriber at
once, with the reason kept; deliveries, opens and clicks are counted per step.
Each provider event is recorded once however often it is posted (SendGrid
retries), keyed on its ``sg_event_id``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from funnel import metrics
from funnel.core import lifecycle, machine_events
from funnel.core.states import ConsentAction
from funnel.mail.links import PATHS
from funnel.models import ConsentRecord, Delivery, DeliveryEvent, MachineEvent, Subscriber

log = logging.getLogger(__name__)

# Event kind → the status that stops mail.
STOPPING = {
    "bounce": lifecycle.BOUNCED,
    "dropped": lifecycle.BOUNCED,
    "spamreport": lifecycle.COMPLAINED,
    "unsubscribe": lifecycle.UNSUBSCRIBED,
    "group_unsubscribe": lifecycle.UNSUBSCRIBED,
}
COUNTED = frozenset({"delivered", "open", "click"})
CHECKED = frozenset({"open", "click"})  # told apart from a machine's (machine_reasons)
# A "bounce" whose type is "blocked" is temporary (the receiving server refused
# for now, e.g. over reputation): kept as its own kind, and mail carries on.
TEMPORARY = frozenset({"blocked"})
KNOWN = frozenset(STOPPING) | COUNTED | TEMPORARY
MAX_EVENTS = 10_000

# Links in emails carry capability tokens: keep which page was clicked, not the token.
_TOKEN_PATH = re.compile(
    "/(" + "|".join(re.escape(p.split("/")[1]) for p in PATHS.values())
    # The token goes; a ".pdf" after it stays, so a rule can tell the PDF link apart.
    + r")/[^/?#\s]+?(\.pdf)?(?=[/?#\s]|$)")


class MalformedEvents(ValueError):
    """The body is not a list of provider events; nothing was recorded."""


@dataclass(frozen=True)
class ProviderEvent:
    kind: str
    event_id: str
    at: datetime
    delivery_id: str | None
    email: str | None
    detail: str | None
    # For telling machines from people (funnel/core/machine_events.py); never stored.
    ip: str | None = None
    user_agent: str | None = None
    machine_hint: bool = False  # SendGrid's sg_machine_open


@dataclass
class EventReport:
    recorded: int = 0
    duplicates: int = 0
    ignored: int = 0
    machine: int = 0  # opens and clicks no person made
    stopped: list[str] = field(default_factory=list)  # subscriber public ids


def parse_events(data: Any) -> list[ProviderEvent]:
    """Validate a decoded webhook body; unknown kinds are dropped, not refused."""
    if not isinstance(data, list):
        raise MalformedEvents("expected a JSON array of events")
    if len(data) > MAX_EVENTS:
        raise MalformedEvents(f"more than {MAX_EVENTS} events in one request")
    events = []
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise MalformedEvents(f"event {i} is not an object")
        kind = raw.get("event")
        if not isinstance(kind, str) or not kind:
            raise MalformedEvents(f"event {i} has no 'event' type")
        if kind == "bounce" and raw.get("type") == "blocked":
            kind = "blocked"
        if kind not in KNOWN:
            continue
        event_id = raw.get("sg_event_id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 100:
            raise MalformedEvents(f"event {i} has no usable 'sg_event_id'")
        ts = raw.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
            raise MalformedEvents(f"event {i} has no integer 'timestamp'")
        try:
            at = datetime.fromtimestamp(ts, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise MalformedEvents(f"event {i} has an impossible 'timestamp'") from exc
        delivery_id = raw.get("delivery_id")
        email = raw.get("email")
        events.append(ProviderEvent(
            kind=kind,
            event_id=event_id,
            at=at,
            delivery_id=delivery_id if isinstance(delivery_id, str) else None,
            email=email.strip().lower() if isinstance(email, str) else None,
            detail=_detail(kind, raw),
            ip=raw["ip"][:64] if isinstance(raw.get("ip"), str) else None,
            user_agent=raw["useragent"][:500] if isinstance(raw.get("useragent"), str) else None,
            machine_hint=raw.get("sg_machine_open") is True,
        ))
    return events


def record_events(session: Session, data: Any, now: datetime) -> EventReport:
    """Apply a webhook body in one transaction: all of it, or (if malformed) none."""
    events = parse_events(data)
    for attempt in range(3):
        try:
            report = _apply(session, events, now)
            session.commit()
            return report
        except IntegrityError:
            # The same event arrived twice at once; the retry sees the other copy.
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _apply(session: Session, events: list[ProviderEvent], now: datetime) -> EventReport:
    report = EventReport()
    ids = {e.event_id for e in events}
    seen = set(session.scalars(
        select(DeliveryEvent.provider_event_id).where(DeliveryEvent.provider_event_id.in_(ids))
    )) | set(session.scalars(
        select(MachineEvent.provider_event_id).where(MachineEvent.provider_event_id.in_(ids))
    )) if ids else set()
    delivery_ids = {e.delivery_id for e in events if e.delivery_id}
    deliveries = {
        d.public_id: d for d in session.scalars(
            select(Delivery).where(Delivery.public_id.in_(delivery_ids))
            .options(selectinload(Delivery.subscriber))
        )
    } if delivery_ids else {}
    machine = machine_reasons(events, deliveries)
    for e in events:
        if e.event_id in seen:
            report.duplicates += 1
            continue
        seen.add(e.event_id)
        delivery = deliveries.get(e.delivery_id or "")
        sub = delivery.subscriber if delivery else None
        if sub is None and e.kind in STOPPING and e.email:
            # Mail without a delivery (the confirmation email): the address decides.
            sub = session.scalar(select(Subscriber).where(Subscriber.email == e.email))
        if delivery is None and sub is None:
            report.ignored += 1  # not ours, or already erased
            continue
        if delivery is not None and e.event_id in machine:
            # Kept apart: counted by no figure, and it sets nothing off.
            session.add(MachineEvent(delivery_id=delivery.id, provider_event_id=e.event_id,
                                     kind=e.kind, step_slug=delivery.step_slug, at=e.at,
                                     reason=machine[e.event_id][:200]))
            report.machine += 1
            continue
        session.add(DeliveryEvent(
            delivery=delivery, subscriber_id=sub.id if sub is not None else None,
            provider_event_id=e.event_id, kind=e.kind,
            step_slug=delivery.step_slug if delivery else None, at=e.at, detail=e.detail,
            # machine_reasons looked at every open and click of a delivery we know.
            machine_checked=True if delivery is not None and e.kind in CHECKED else None,
        ))
        report.recorded += 1
        metrics.PROVIDER_EVENTS.labels(kind=e.kind).inc()
        if e.kind in STOPPING and sub is not None and _stop(session, sub, e, now):
            report.stopped.append(sub.public_id)
    session.flush()
    return report


def machine_reasons(events: list[ProviderEvent],
                    deliveries: dict[str, Delivery]) -> dict[str, str]:
    """event id -> why it is a machine's, for the opens and clicks of this batch."""
    out: dict[str, str] = {}
    clicks = [(e.delivery_id or "", e.at, e.detail or "", e.event_id) for e in events
              if e.kind == "click" and e.delivery_id in deliveries]
    for i in machine_events.bursts([(k, at, url) for k, at, url, _id in clicks]):
        out[clicks[i][3]] = "several links clicked at once: a scanner"
    for e in events:
        d = deliveries.get(e.delivery_id or "")
        if d is None or e.kind not in ("open", "click") or e.event_id in out:
            continue
        why = machine_events.classify(machine_events.Seen(
            kind=e.kind, at=e.at, sent_at=d.sent_at, ip=e.ip, user_agent=e.user_agent,
            provider_says_machine=e.machine_hint, url=e.detail))
        if why is not None:
            out[e.event_id] = why
    return out


def _stop(session: Session, sub: Subscriber, e: ProviderEvent, now: datetime) -> bool:
    """Move the subscriber to the stopping status. False if already stopped that way
    or in a status that cannot change (a bounce stays a bounce)."""
    target = STOPPING[e.kind]
    if sub.status == target:
        return False
    try:
        sub.status = lifecycle.transition(sub.status, target)
    except lifecycle.TransitionError:
        return False
    reason = f"SendGrid {e.kind}" + (f": {e.detail}" if e.detail else "")
    sub.status_reason = reason[:500]
    sub.next_due_at = None
    if target == lifecycle.UNSUBSCRIBED:
        sub.unsubscribed_at = e.at
        session.add(ConsentRecord(subscriber=sub, action=ConsentAction.WITHDRAW, at=now, text=reason[:500]))
    log.info("subscriber %s is now %s (%s)", sub.public_id, target, e.kind)
    return True


def _detail(kind: str, raw: dict[str, Any]) -> str | None:
    """A short, personal-data-free note: why it bounced, which link was clicked."""
    parts: list[str] = []
    if kind in ("bounce", "dropped", "blocked"):
        for key in ("type", "status", "reason"):
            value = raw.get(key)
            if isinstance(value, (str, int)) and str(value).strip():
                parts.append(str(value).strip())
    elif kind == "click":
        url = raw.get("url")
        if isinstance(url, str):
            parts.append(_TOKEN_PATH.sub(lambda m: f"/{m[1]}/…{m[2] or ''}", url))
    elif kind == "group_unsubscribe" and isinstance(raw.get("asm_group_id"), int):
        parts.append(f"group {raw['asm_group_id']}")
    text = " ".join(parts)
    return text[:500] or None
