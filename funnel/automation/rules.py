"""The coach's rules, applied by the worker in set-based statements (issue 25).

Per rule and pass: one ``INSERT INTO rule_firing … SELECT … ON CONFLICT DO
NOTHING`` records who it fires for now (its unique key makes "once per person",
or once per trigger with ``repeat: true``), then one statement per action acts on
exactly those rows (``fired_at = now``). Firings and actions share one
transaction per rule: a worker killed mid-rule leaves neither, and the next pass
does both, once. 100,000 matches are a few statements, never a loop.

**Scanner clicks** never fire a rule. A click counts as a person's when
(1) it came at least ``HUMAN_AFTER`` (60 s) after the email was sent (link
scanners of mail providers open every link within seconds of delivery), and
(2) no *other* link of the same email was clicked within ``BURST`` (10 s) of it
(scanners fetch all links at once; a person reads, then clicks one). (3) HEAD
requests: rules read only the provider's click events, and SendGrid's click
tracking records a click when its redirect is followed with GET, so a scanner's
HEAD never becomes a click event. Opens are used
only for ``inactive_days``, where counting a machine's open as activity can only
keep someone subscribed, never unsubscribe them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, and_, cast, func, literal, select, update
from sqlalchemy.orm import Session

from funnel import tagging
from funnel.automation.starts import LAG, dialect_insert, enter
from funnel.core.automations import Rule
from funnel.core.sequences import SEND_PREFIX, Sequences
from funnel.core.states import (
    ConsentAction,
    EnrollmentState,
    EventKind,
    SubscriberStatus,
    TagSource,
)
from funnel.hooks import events as hook_events
from funnel.models import (
    AppState,
    ConsentRecord,
    Delivery,
    DeliveryEvent,
    RuleFiring,
    SequenceEnrollment,
    Subscriber,
    SubscriberTag,
)
from funnel.models.base import UTCDateTime

log = logging.getLogger(__name__)

HUMAN_AFTER = timedelta(seconds=60)
BURST = timedelta(seconds=10)
INACTIVE_EVERY = timedelta(hours=1)  # the inactivity scan reads the whole list: hourly
E = SequenceEnrollment
F = RuleFiring


@dataclass
class RulesReport:
    fired: dict[str, int] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # rule -> why it was not applied
    who: dict[str, list[str]] = field(default_factory=dict)  # the dry run's first addresses


def missing(rule: Rule, sequences: Sequences) -> str | None:
    """Why the worker must hold this rule (a sequence or email it names is gone)."""
    names = set(sequences.names) | set(sequences.broken)
    if rule.when == "finished" and rule.value not in names:
        return f"no sequence '{rule.value}'"
    for action, value in rule.then:
        if action in ("start", "stop") and value not in names:
            return f"no sequence '{value}'"
        if action == "send" and SEND_PREFIX + value not in names:
            return f"no email '{value}' in emails/automations/"
    return None


def _mark_key(rule: Rule) -> str:
    return f"rule_mark:{rule.name}"[:64]


def _get_mark(session: Session, key: str) -> datetime | None:
    value = session.scalar(select(AppState.value).where(AppState.key == key))
    return datetime.fromisoformat(value) if value else None


def _set_mark(session: Session, key: str, now: datetime | str) -> None:
    value = now if isinstance(now, str) else now.isoformat()
    stmt = dialect_insert(session, AppState).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def _trigger(rule: Rule, column) -> Any:
    return cast(column, String) if rule.repeat else literal("")


def candidates(session: Session, rule: Rule, since: datetime, now: datetime
               ) -> Select | list[tuple[int, str]] | None:
    """Who the rule's ``when`` matched since ``since``: a SELECT of (subscriber id,
    trigger), or for clicks the rows themselves (few per pass, filtered for
    scanners in Python); None when nothing is to be looked at now."""
    if rule.when == "tag_added":
        return (select(SubscriberTag.subscriber_id, _trigger(rule, SubscriberTag.added_at))
                .where(SubscriberTag.tag == rule.value, SubscriberTag.added_at >= since))
    if rule.when == "finished":
        return (select(E.subscriber_id, _trigger(rule, E.ended_at))
                .where(E.sequence == rule.value, E.state == EnrollmentState.FINISHED,
                       E.ended_at >= since))
    if rule.when == "source":
        return (select(Subscriber.id, literal(""))
                .where(func.lower(Subscriber.utm_source) == rule.value,
                       Subscriber.confirmed_at >= since))
    if rule.when == "inactive_days":
        start = now - timedelta(days=rule.days)
        active = (select(DeliveryEvent.subscriber_id)
                  .where(DeliveryEvent.kind.in_((EventKind.OPEN, EventKind.CLICK)),
                         DeliveryEvent.at > start, DeliveryEvent.subscriber_id.is_not(None)))
        # With repeat, once per N days of silence: the period's number is the trigger.
        period = str(int(now.timestamp() // (rule.days * 86400))) if rule.repeat else ""
        return (select(Subscriber.id, literal(period))
                .where(Subscriber.status == SubscriberStatus.CONFIRMED,
                       Subscriber.confirmed_at <= start, Subscriber.id.not_in(active)))
    return human_clicks(session, rule, since)


def _click_key(rule: Rule) -> str:
    return f"rule_click:{rule.name}"[:64]


def human_clicks(session: Session, rule: Rule, since: datetime) -> list[tuple[int, str]]:
    """Clicks *recorded* since the rule last looked (by event id: a provider's
    webhook may report a click hours after it happened), scanners left out."""
    seen = session.scalar(select(AppState.value).where(AppState.key == _click_key(rule)))
    q = (select(DeliveryEvent.id, DeliveryEvent.subscriber_id, DeliveryEvent.delivery_id,
                DeliveryEvent.at, DeliveryEvent.detail, Delivery.sent_at)
         .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
         .where(DeliveryEvent.kind == EventKind.CLICK,
                DeliveryEvent.detail.contains(rule.value, autoescape=True)))
    # A new rule looks back as far as any other; then on from the last event it saw.
    q = q.where(DeliveryEvent.id > int(seen)) if seen is not None else q.where(DeliveryEvent.at >= since)
    rows = session.execute(q).all()
    last = session.scalar(select(func.max(DeliveryEvent.id))) or 0
    _set_mark(session, _click_key(rule), str(last))  # committed with the firings
    if not rows:
        return []
    deliveries = {r.delivery_id for r in rows}
    clicks: dict[int, list[tuple[datetime, str]]] = {}
    for delivery_id, at, detail in session.execute(
            select(DeliveryEvent.delivery_id, DeliveryEvent.at, DeliveryEvent.detail)
            .where(DeliveryEvent.kind == EventKind.CLICK,
                   DeliveryEvent.delivery_id.in_(deliveries))):
        if delivery_id is not None:
            clicks.setdefault(delivery_id, []).append((at, detail or ""))
    out: list[tuple[int, str]] = []
    for r in rows:
        if r.subscriber_id is None or r.sent_at is None or r.at - r.sent_at < HUMAN_AFTER:
            continue  # seconds after delivery: a scanner
        burst = any(abs(at - r.at) <= BURST and detail != (r.detail or "")
                    for at, detail in clicks.get(r.delivery_id, []))
        if burst:
            continue  # another link of the same email at the same moment: a scanner
        out.append((r.subscriber_id, str(r.id) if rule.repeat else ""))
    return out


def fire(session: Session, rule: Rule, matched, now: datetime) -> int:
    """Record the firings (confirmed people only, once per key); returns how many."""
    if isinstance(matched, list):
        if not matched:
            return 0
        rows = [{"rule": rule.name, "subscriber_id": sid, "trigger": trig, "fired_at": now}
                for sid, trig in dict.fromkeys(matched)]
        ids = {sid for sid, _t in dict.fromkeys(matched)}
        confirmed = set(session.scalars(select(Subscriber.id).where(
            Subscriber.id.in_(ids), Subscriber.status == SubscriberStatus.CONFIRMED)))
        if rule.only_tagged:
            confirmed &= set(session.scalars(select(SubscriberTag.subscriber_id).where(
                SubscriberTag.tag == rule.only_tagged, SubscriberTag.subscriber_id.in_(ids))))
        rows = [r for r in rows if r["subscriber_id"] in confirmed]
        if not rows:
            return 0
        stmt = dialect_insert(session, F).on_conflict_do_nothing().returning(F.id)
        return len(session.execute(stmt, rows).all())
    sub = matched.subquery()
    cols = list(sub.c)
    q = (select(literal(rule.name), cols[0], cols[1], literal(now, UTCDateTime()))
         .join(Subscriber, Subscriber.id == cols[0])
         .where(Subscriber.status == SubscriberStatus.CONFIRMED))
    if rule.only_tagged:
        q = q.where(cols[0].in_(select(SubscriberTag.subscriber_id)
                                .where(SubscriberTag.tag == rule.only_tagged)))
    stmt = (dialect_insert(session, F)
            .from_select(["rule", "subscriber_id", "trigger", "fired_at"], q)
            .on_conflict_do_nothing().returning(F.id))
    return len(session.execute(stmt).all())


def act(session: Session, rule: Rule, now: datetime) -> None:
    """Each action, once, on exactly this pass's firings of the rule."""
    from funnel import tagging

    who = select(F.subscriber_id).where(F.rule == rule.name, F.fired_at == now)
    why = f"rule: {rule.name}"[:200]
    for action, value in rule.then:
        if action == "add_tag":
            tagging.add_tag_where(session, value, who, now=now, source=TagSource.RULE, reason=why)
        elif action == "remove_tag":
            tagging.remove_tag_where(session, value, who)
        elif action in ("start", "send"):
            enter(session, value if action == "start" else SEND_PREFIX + value, who, now)
        elif action == "stop":
            session.execute(update(E).where(E.sequence == value, E.subscriber_id.in_(who),
                                            E.state == EnrollmentState.ACTIVE)
                            .values(state=EnrollmentState.STOPPED, ended_at=now, reason=why))
        elif action == "unsubscribe":
            unsubscribe(session, who, value, now)


def unsubscribe(session: Session, who: Select, reason: str, now: datetime) -> None:
    """The unsubscribe use case for a set: status, reason, time, no more mail, and
    a withdrawal in each one's consent history (the same fields as one by one)."""
    targets = select(Subscriber.id).where(Subscriber.id.in_(who),
                                          Subscriber.status == SubscriberStatus.CONFIRMED)
    announce = _unsubscribed_events(session, targets, now)
    session.execute(insert_consents(targets, reason, now))
    session.execute(update(Subscriber).where(Subscriber.id.in_(targets))
                    .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now,
                            status_reason=reason, next_due_at=None))
    announce()


def _unsubscribed_events(session: Session, targets: Select, now: datetime):
    """subscriber.unsubscribed for the endpoints that want it. The set-based UPDATE
    bypasses the ORM listener that queues it for every other way out, so the rows
    are read before it and the events written after it, in the same transaction."""
    conn = session.connection()
    endpoints = [e for e in hook_events.active_endpoints(conn)
                 if hook_events.SUBSCRIBER_UNSUBSCRIBED in e[1]]
    if not endpoints:
        return lambda: None
    cols = (Subscriber.id, Subscriber.public_id, Subscriber.email, Subscriber.first_name,
            Subscriber.timezone, Subscriber.created_at, Subscriber.confirmed_at,
            Subscriber.utm_source)
    rows = [dict(r._mapping) for r in conn.execute(select(*cols).where(Subscriber.id.in_(targets)))]
    tags = tagging.tag_names(session, [r["id"] for r in rows])

    def write() -> None:
        events = [(hook_events.SUBSCRIBER_UNSUBSCRIBED, hook_events.subscriber_row_data(
            {**r, "status": str(SubscriberStatus.UNSUBSCRIBED), "unsubscribed_at": now,
             "tags": tags.get(r["id"], [])}), r["id"]) for r in rows]
        hook_events.enqueue(conn, events, now, endpoints)

    return write


def insert_consents(targets: Select, reason: str, now: datetime):
    from sqlalchemy import insert

    return insert(ConsentRecord).from_select(
        ["subscriber_id", "action", "at", "text"],
        select(Subscriber.id, literal(str(ConsentAction.WITHDRAW)), literal(now, UTCDateTime()),
               literal(reason)).where(Subscriber.id.in_(targets)))


def apply_rules(sessions, rules: tuple[Rule, ...], sequences: Sequences, now: datetime,
                *, dry_run: bool = False) -> RulesReport:
    """Every rule, each in its own transaction (firings and actions together)."""
    report = RulesReport()
    for rule in rules:
        why = missing(rule, sequences)
        if why is not None:
            report.held[rule.name] = why
            log.warning("rule %r is held: %s (fix emails/automations.yml)", rule.name, why)
            continue
        with sessions() as s:
            key = _mark_key(rule)
            mark = _get_mark(s, key)
            if mark is None:
                # A new rule looks back no further than its first pass, except at
                # what is a state (inactivity, which it reads as of now anyway).
                mark = now
            if rule.when == "inactive_days" and not dry_run and mark != now \
                    and now - mark < INACTIVE_EVERY:
                continue
            matched = candidates(s, rule, mark - LAG if rule.when != "inactive_days" else now,
                                 now)
            if matched is None:
                continue
            if dry_run:
                report.fired[rule.name], report.who[rule.name] = would_fire(s, rule, matched)
                s.rollback()
                continue
            n = fire(s, rule, matched, now)
            if n:
                act(s, rule, now)
            _set_mark(s, key, now)
            s.commit()
            report.fired[rule.name] = n
    return report


def would_fire(session: Session, rule: Rule, matched, limit: int = 20
               ) -> tuple[int, list[str]]:
    """The dry run: how many the rule would fire for now, and the first addresses."""
    if isinstance(matched, list):
        done = {(sid, trig) for sid, trig in session.execute(
            select(F.subscriber_id, F.trigger).where(F.rule == rule.name))}
        fresh = {m for m in matched if m not in done}
        q = select(Subscriber.id).where(Subscriber.id.in_({sid for sid, _t in fresh}))
        ids = select(Subscriber.id).where(Subscriber.id.in_(q),
                                          Subscriber.status == SubscriberStatus.CONFIRMED)
    else:
        sub = matched.subquery()
        cols = list(sub.c)
        exists = (select(F.id).where(F.rule == rule.name, F.subscriber_id == cols[0],
                                     F.trigger == cols[1]).exists())
        ids = (select(cols[0]).join(Subscriber, Subscriber.id == cols[0])
               .where(and_(Subscriber.status == SubscriberStatus.CONFIRMED, ~exists)))
    if rule.only_tagged:
        ids = ids.where(Subscriber.id.in_(select(SubscriberTag.subscriber_id)
                                          .where(SubscriberTag.tag == rule.only_tagged)))
    who = ids.subquery()
    count = int(session.scalar(select(func.count()).select_from(who)) or 0)
    emails = list(session.scalars(select(Subscriber.email).where(
        Subscriber.id.in_(select(who.c[0]))).order_by(Subscriber.email).limit(limit)))
    return count, emails
