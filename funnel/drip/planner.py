"""What the drip does next for one subscriber: a pure function on plain data.

``plan(view, deliveries, steps, now, rules)`` reads a snapshot (no database, no
clock, no I/O) and returns one decision:

- ``Hold(reason)``: nothing to send and nothing planned (not confirmed, finished);
- ``WaitUntil(at, reason)``: come back at ``at`` (next step, pause, night-time);
- ``Send(step)``: send ``step`` now (a fresh step, or one in flight to retry);
- ``GiveUp(step, reason, state)``: settle the in-flight ``step`` without sending
  it (interrupted mid-send on a provider that could deliver it twice, or out of
  attempts); plan again afterwards.

Rules the decisions keep, whatever the history (tests/test_planner.py):
- a send happens only inside the step's sending window in the subscriber's own
  zone, catch-up after an outage included (``now`` is checked, not just the due time);
- two steps are never closer than ``min_gap``;
- nothing is sent to anyone not confirmed, or paused;
- only ``kind == "drip"`` deliveries count: broadcasts and system mail share the
  table but not the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from funnel.core.schedule import due_at, into_window, next_step, zone
from funnel.core.sequence import Step
from funnel.core.states import DeliveryState

DRIP = "drip"
CONFIRMED = "confirmed"
# Delivery states the planner reads (funnel/sending.py writes them).
DONE = frozenset({"sent", "failed", "unknown"})
IN_FLIGHT = frozenset({"sending", "retry", "held"})


@dataclass(frozen=True)
class Rules:
    window: tuple[int, int] = (8, 20)  # default local sending hours
    min_gap: timedelta = timedelta(hours=20)
    max_attempts: int = 8
    default_timezone: str = "Europe/London"
    # False for providers without idempotency keys: work interrupted mid-send
    # may have been delivered, so it is given up rather than risk a second copy.
    resend_interrupted: bool = True


@dataclass(frozen=True)
class SubscriberView:
    status: str
    confirmed_at: datetime | None
    timezone: str | None = None
    paused_until: datetime | None = None
    wants_plan: bool = True  # the plan topic: off means no plan email (the newsletter is apart)


@dataclass(frozen=True)
class DeliveryView:
    step_slug: str
    state: str
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0
    kind: str = DRIP


@dataclass(frozen=True)
class Hold:
    reason: str


@dataclass(frozen=True)
class WaitUntil:
    at: datetime
    reason: str = "not due yet"


@dataclass(frozen=True)
class Send:
    step: Step
    retry: bool = False  # True: the step's delivery row exists (in flight)


@dataclass(frozen=True)
class GiveUp:
    step_slug: str
    reason: str
    state: str = "failed"  # or "unknown": may have been delivered


Decision = Hold | WaitUntil | Send | GiveUp


def plan(view: SubscriberView, deliveries: Sequence[DeliveryView], steps: Sequence[Step],
         now: datetime, rules: Rules) -> Decision:
    stop = blocked(view, now)
    if stop is not None:
        return stop
    drip = [d for d in deliveries if d.kind == DRIP]
    by_slug = {s.slug: s for s in steps}
    tz = zone(view.timezone, rules.default_timezone)
    for d in drip:
        if d.state not in IN_FLIGHT or d.step_slug not in by_slug:
            continue  # an in-flight step deleted from the sequence is dropped by the store
        if d.state == DeliveryState.SENDING and not rules.resend_interrupted:
            return GiveUp(d.step_slug, "worker stopped mid-send; not resent so it cannot "
                          "arrive twice", "unknown")
        if d.attempts >= rules.max_attempts and d.state == DeliveryState.RETRY:
            return GiveUp(d.step_slug, f"gave up after {d.attempts} tries")
        return _in_window(by_slug[d.step_slug], now, tz, rules, retry=True)
    done = [d for d in drip if d.state in DONE]
    done.sort(key=lambda d: (d.sent_at or d.created_at))
    step = next_step(steps, [d.step_slug for d in done])
    if step is None:
        return Hold("sequence finished")
    last = max((d.sent_at or d.created_at for d in done), default=None)
    if view.confirmed_at is None:
        return Hold("not confirmed")
    due = due_at(step, confirmed_at=view.confirmed_at, last_sent_at=last, tz=tz,
                 default_window=rules.window, min_gap=rules.min_gap,
                 paused_until=view.paused_until)
    if due > now:
        return WaitUntil(due)
    return _in_window(step, now, tz, rules, retry=False)


def blocked(view: SubscriberView, now: datetime) -> Hold | WaitUntil | None:
    """Why nothing may be sent to this subscriber now, if anything (re-checked
    under the row lock right before sending)."""
    if view.status != CONFIRMED or view.confirmed_at is None:
        return Hold("not a confirmed subscriber")
    if not view.wants_plan:
        return Hold("stopped the plan")
    if view.paused_until is not None and view.paused_until > now:
        return WaitUntil(view.paused_until, "paused")
    return None


def _in_window(step: Step, now: datetime, tz, rules: Rules, *, retry: bool) -> Decision:
    """Overdue work still waits for the window: a catch-up never goes out at night."""
    opens = into_window(now, tz, step.window or rules.window)
    if opens > now:
        return WaitUntil(opens, "outside the sending window")
    return Send(step, retry=retry)


def next_due(decision: Decision) -> datetime | None:
    """Where the subscriber's cursor goes after ``decision`` (None: nothing planned)."""
    return decision.at if isinstance(decision, WaitUntil) else None
