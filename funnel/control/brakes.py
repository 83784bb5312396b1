"""The brakes: from the provider's events (funnel/subscribers/provider_events.py
records bounces and spam reports), each newsletter's and the last 24 hours'
complaint and bounce rates. At the warning line the admins are told (dashboard
and one alert email); at the stop line newsletters and sequences pause (never
confirmations) until an owner resumes by hand. And the warm-up: on a new sending
domain, ``WARMUP_START`` newsletter emails the first day, half as many again
each day after.

The state is one JSON row in ``app_state`` (key ``brakes``), so a restarted worker
stays paused. Judged by the worker: before each pass's drip and before each
newsletter batch (``newsletter_allowance``). Rates count only emails sent and
events received since the last resume, so resuming is not undone at once by the
very figures the owner has just looked at.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from funnel.config import Settings
from funnel.control.alerts import admin_messages
from funnel.core import brakes as rules
from funnel.core.states import BroadcastStatus, DeliveryKind, DeliveryState, EventKind
from funnel.models import AppState, Broadcast, BroadcastRecipient, Delivery, DeliveryEvent
from funnel.transports import Transport

log = logging.getLogger(__name__)

STATE_KEY = "brakes"
WARMUP_KEY = "warmup_started"
COMPLAINTS = (EventKind.SPAMREPORT,)
BOUNCES = (EventKind.BOUNCE, EventKind.DROPPED)
NEWSLETTER_WINDOW = timedelta(days=7)  # a newsletter's events arrive within days


@dataclass
class BrakeState:
    level: str = rules.OK  # ok / warn / stop
    paused: bool = False
    reasons: list[str] = field(default_factory=list)
    since: str | None = None  # when the level was reached
    resumed_at: str | None = None
    resumed_by: str = ""

    @classmethod
    def from_json(cls, text: str | None) -> BrakeState:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known}) if isinstance(data, dict) \
            else cls()


def load(session: Session) -> BrakeState:
    row = session.get(AppState, STATE_KEY)
    return BrakeState.from_json(row.value if row else None)


def _save(session: Session, state: BrakeState) -> None:
    row = session.get(AppState, STATE_KEY)
    text = json.dumps(asdict(state))
    if row is None:
        session.add(AppState(key=STATE_KEY, value=text))
    else:
        row.value = text


def paused(sessions: sessionmaker[Session]) -> bool:
    with sessions() as s:
        return load(s).paused


# -- the figures ---------------------------------------------------------------------

def rates(session: Session, now: datetime, resumed_at: datetime | None) -> list[rules.Rate]:
    """The last 24 hours (drip and newsletters), and each newsletter of the last week."""
    day_from = max(now - timedelta(hours=24), resumed_at) if resumed_at else now - timedelta(hours=24)
    week_from = max(now - NEWSLETTER_WINDOW, resumed_at) if resumed_at else now - NEWSLETTER_WINDOW
    kinds = (DeliveryKind.DRIP, DeliveryKind.BROADCAST)
    sent_day = session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.kind.in_(kinds), Delivery.state == DeliveryState.SENT,
        Delivery.sent_at >= day_from)) or 0
    events_day = dict(session.execute(
        select(DeliveryEvent.kind, func.count()).join(Delivery)
        .where(Delivery.kind.in_(kinds), DeliveryEvent.kind.in_(COMPLAINTS + BOUNCES),
               DeliveryEvent.at >= day_from)
        .group_by(DeliveryEvent.kind)).all())
    out = [rules.Rate("the last 24 hours", sent_day, _sum(events_day, COMPLAINTS),
                      _sum(events_day, BOUNCES))]
    sent_by = dict(session.execute(
        select(Delivery.step_slug, func.count()).where(
            Delivery.kind == DeliveryKind.BROADCAST, Delivery.state == DeliveryState.SENT,
            Delivery.sent_at >= week_from).group_by(Delivery.step_slug)).all())
    events_by: dict[str, dict[str, int]] = {}
    for slug, kind, n in session.execute(
            select(Delivery.step_slug, DeliveryEvent.kind, func.count()).join(Delivery)
            .where(Delivery.kind == DeliveryKind.BROADCAST,
                   DeliveryEvent.kind.in_(COMPLAINTS + BOUNCES), DeliveryEvent.at >= week_from)
            .group_by(Delivery.step_slug, DeliveryEvent.kind)):
        events_by.setdefault(slug, {})[kind] = n
    for slug, sent in sorted(sent_by.items()):
        ev = events_by.get(slug, {})
        out.append(rules.Rate(f"newsletter {slug}", sent, _sum(ev, COMPLAINTS),
                              _sum(ev, BOUNCES)))
    return out


def _sum(counts: dict[str, int], kinds: tuple[str, ...]) -> int:
    return sum(counts.get(str(k), 0) for k in kinds)


# -- judging -------------------------------------------------------------------------

def evaluate(sessions: sessionmaker[Session], settings: Settings, transport: Transport | None,
             now: datetime) -> BrakeState:
    """Judge the figures; pause (or warn) when a line is crossed. Never un-pauses."""
    with sessions() as s:
        state = load(s)
        resumed = datetime.fromisoformat(state.resumed_at) if state.resumed_at else None
        level, reasons = rules.worst([rules.judge(r, settings.brakes_min_sent)
                                      for r in rates(s, now, resumed)])
        if state.paused:
            return state  # only an owner lifts it
        if level == state.level and reasons == state.reasons:
            return state
        news = level != rules.OK and level != state.level  # a new warning, or the stop
        state.level, state.reasons = level, reasons
        if level == rules.STOP:
            state.paused, state.since = True, now.isoformat()
            log.warning("brakes on: newsletters and sequences paused: %s", "; ".join(reasons))
        elif level == rules.WARN:
            state.since = now.isoformat() if news else state.since
            log.warning("complaint or bounce rate high: %s", "; ".join(reasons))
        else:
            state.since = None
        _save(s, state)
        s.commit()
    if news and transport is not None:
        _alert(sessions, settings, transport, state, now)
    return state


def resume(session: Session, now: datetime, by: str) -> BrakeState:
    """An owner lifts the pause; the figures start again from now."""
    state = load(session)
    state.paused, state.level, state.reasons, state.since = False, rules.OK, [], None
    state.resumed_at, state.resumed_by = now.isoformat(), by
    _save(session, state)
    session.commit()
    log.warning("brakes released by %s", by)
    return state


def _alert(sessions: sessionmaker[Session], settings: Settings, transport: Transport,
           state: BrakeState, now: datetime) -> None:
    from funnel.control.alerts import _recipients

    with sessions() as s:
        to = _recipients(s, settings)
    if not to:
        return
    if state.paused:
        subject = "[Run Stronger] Sending paused: spam complaints or bounces too high"
        lead = ("Newsletters and sequences are paused (confirmations still go out). "
                f"Resume from {settings.base_url}/admin/sending/ or with "
                "`flask --app funnel deliverability resume` once you know why.")
    else:
        subject = "[Run Stronger] Spam complaints or bounces are rising"
        lead = "Nothing is paused yet; sending pauses at 0.3 % complaints or 10 % bounces."
    text = "\n".join([lead, "", *[f"- {r}" for r in state.reasons], ""])
    messages = admin_messages(settings, list(to), subject, text, now, kind="brakes")
    try:
        transport.send(messages)
    except Exception:  # an alert must never stop the worker
        log.exception("could not send the brakes alert")


# -- the warm-up ---------------------------------------------------------------------

def _warmup_first_day(s: Session, today: date, start: bool) -> date | None:
    row = s.get(AppState, WARMUP_KEY)
    if row is not None:
        return date.fromisoformat(row.value)
    if not start:
        return None
    s.add(AppState(key=WARMUP_KEY, value=today.isoformat()))
    s.commit()
    return today


def used_today(s: Session, now: datetime) -> int:
    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    return s.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.kind == DeliveryKind.BROADCAST, Delivery.created_at >= midnight)) or 0


def newsletter_allowance(sessions: sessionmaker[Session], settings: Settings,
                         transport: Transport | None, now: datetime) -> int | None:
    """How many newsletter emails may go now: 0 while paused or today's warm-up share
    is used up, None for no limit."""
    if evaluate(sessions, settings, transport, now).paused:
        return 0
    if settings.warmup_start <= 0:
        return None
    with sessions() as s:
        first = _warmup_first_day(s, now.date(), start=True)
        assert first is not None
        allowed = rules.daily_allowance(settings.warmup_start, (now.date() - first).days)
        return max(allowed - used_today(s, now), 0)


def warmup_plan(session: Session, settings: Settings, remaining: int,
                now: datetime) -> list[tuple[date, int]]:
    """When each part of a newsletter's ``remaining`` emails leaves under the warm-up."""
    if settings.warmup_start <= 0 or remaining <= 0:
        return [(now.date(), remaining)] if remaining > 0 else []
    first = _warmup_first_day(session, now.date(), start=False) or now.date()
    return rules.warmup_plan(remaining, settings.warmup_start, first, now.date(),
                             used_today(session, now))


def waiting_newsletters(session: Session) -> list[tuple[str, int]]:
    """(slug, people still to send to) for each newsletter scheduled or sending."""
    return [(slug, n) for slug, n in session.execute(
        select(Broadcast.slug, func.count(BroadcastRecipient.id))
        .join(BroadcastRecipient, BroadcastRecipient.broadcast_id == Broadcast.id)
        .where(Broadcast.status.in_((BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING)),
               BroadcastRecipient.outcome.is_(None))
        .group_by(Broadcast.slug).order_by(Broadcast.slug)).all()]
