"""The planner over several sequences: a pure function on plain data (issue 25).

``plan_all`` runs ``planner.plan`` once per sequence the subscriber is active in,
each on that sequence's own steps and deliveries, with step 1 counted from when
they entered it, and settles what the single planner cannot see:

- a sequence they are in was removed: they stop (nothing of it is sent again);
  one whose files are broken waits, untouched, until it is fixed;
- a ``stop:`` of the sequence holds (a tag they have, another sequence started
  after this one): they stop;
- a sequence with nothing left: finished, dated by its last email;
- at most one sequence email per subscriber per local day: a step of one sequence
  waits for the next day's window when another sequence's email went out (or is
  going out) that day. Within one sequence the plan's own rules (delay, window,
  ``min_gap``) apply, as before.

An email in flight (retry, held, interrupted) always goes first: it is the same
email, not a second one.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from funnel.core.schedule import into_window, zone
from funnel.core.sequences import SequenceDef, Sequences
from funnel.core.states import EnrollmentState
from funnel.drip import planner
from funnel.drip.planner import DRIP, Decision, DeliveryView, GiveUp, Hold, Send, WaitUntil

ACTIVE, FINISHED, STOPPED = (EnrollmentState.ACTIVE, EnrollmentState.FINISHED,
                             EnrollmentState.STOPPED)
BROKEN_RECHECK = timedelta(minutes=1)
FINISHED_REASON = "sequence finished"
WENT_OUT = frozenset({"sent", "unknown", "sending"})


@dataclass(frozen=True)
class EnrollmentView:
    sequence: str
    state: str
    started_at: datetime


@dataclass(frozen=True)
class Change:
    """An enrollment to settle: ``state`` (finished or stopped) at ``at``, and why."""

    sequence: str
    state: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class Plan:
    decision: Decision
    sequence: str | None  # whose step the Send or GiveUp is
    changes: tuple[Change, ...] = ()


def wants(view: planner.SubscriberView, topic: str, wants_newsletter: bool) -> bool:
    return view.wants_plan if topic == "plan" else wants_newsletter


def stop_reason(d: SequenceDef, e: EnrollmentView, tags: frozenset[str],
                started: dict[str, datetime]) -> str | None:
    for stop in d.stops:
        if stop.tag is not None and stop.tag in tags:
            return f"stop: has tag {stop.tag}"
        if stop.sequence is not None and stop.sequence in started \
                and started[stop.sequence] >= e.started_at and stop.sequence != d.name:
            return f"stop: started {stop.sequence}"
    return None


def plan_all(view: planner.SubscriberView, deliveries: Seq[DeliveryView],
             enrollments: Seq[EnrollmentView], sequences: Sequences, now: datetime,
             rules: planner.Rules, *, tags: frozenset[str] = frozenset(),
             wants_newsletter: bool = True) -> Plan:
    changes: list[Change] = []
    started = {e.sequence: e.started_at for e in enrollments}
    drip = [x for x in deliveries if x.kind == DRIP]
    found: list[tuple[str, Decision]] = []
    for e in sorted(enrollments, key=lambda e: (e.started_at, e.sequence)):
        if e.state == STOPPED or (e.state == FINISHED and sequences.get(e.sequence) is None):
            continue
        d = sequences.get(e.sequence)
        if d is None:
            if e.sequence in sequences.broken:
                found.append((e.sequence, WaitUntil(now + BROKEN_RECHECK, "sequence is broken")))
            else:
                changes.append(Change(e.sequence, STOPPED, "the sequence was removed", now))
            continue
        why = stop_reason(d, e, tags, started) if e.state == ACTIVE else None
        if why is not None:
            changes.append(Change(e.sequence, STOPPED, why, now))
            continue
        own = [x for x in drip if sequences.of_slug(x.step_slug) == e.sequence]
        seen = replace(view, confirmed_at=e.started_at,
                       wants_plan=wants(view, d.topic, wants_newsletter))
        decision = planner.plan(seen, own, d.steps.steps, now, rules)
        if isinstance(decision, Hold) and decision.reason == FINISHED_REASON:
            if e.state == ACTIVE:
                last = max((x.sent_at or x.created_at for x in own), default=now)
                changes.append(Change(e.sequence, FINISHED, FINISHED_REASON, min(last, now)))
            continue
        if e.state == FINISHED:
            # A step added at the end after they finished: they get it (README's table).
            changes.append(Change(e.sequence, ACTIVE, "a step was added at the end", now))
        found.append((e.sequence, decision))
    return Plan(*_choose(found, drip, sequences, view, now, rules), tuple(changes))


def _choose(found: list[tuple[str, Decision]], drip: list[DeliveryView], sequences: Sequences,
            view: planner.SubscriberView, now: datetime, rules: planner.Rules
            ) -> tuple[Decision, str | None]:
    for name, decision in found:  # in flight first: the same email, never a second one
        if isinstance(decision, GiveUp) or (isinstance(decision, Send) and decision.retry):
            return decision, name
    waits: list[tuple[datetime, str, WaitUntil]] = []
    for name, decision in found:
        if isinstance(decision, Send):
            later = _next_day(decision, name, drip, sequences, view, now, rules)
            if later is None:
                return decision, name
            waits.append((later.at, name, later))
        elif isinstance(decision, WaitUntil):
            waits.append((decision.at, name, decision))
    if waits:
        at, name, wait = min(waits, key=lambda w: w[0])
        return wait, name
    holds = [d for _n, d in found if isinstance(d, Hold)]
    return (holds[0] if holds else Hold("in no sequence with steps to come")), None


def _next_day(send: Send, name: str, drip: list[DeliveryView], sequences: Sequences,
              view: planner.SubscriberView, now: datetime, rules: planner.Rules
              ) -> WaitUntil | None:
    """When another sequence's email went (or is going) out today, the next day's window."""
    tz = zone(view.timezone, rules.default_timezone)
    today = now.astimezone(tz).date()
    for x in drip:
        if x.state not in WENT_OUT:
            continue  # failed, retrying or held: nothing reached them (yet)
        other = sequences.of_slug(x.step_slug)
        if other == name:
            continue
        if (x.sent_at or x.created_at).astimezone(tz).date() == today:
            tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)
            return WaitUntil(into_window(tomorrow, tz, send.step.window or rules.window),
                             "one sequence email a day: the next day's window")
    return None
