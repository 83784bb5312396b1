"""Subject tests: 2 to 4 subjects, a random sample split evenly, the winner to the rest.

How it runs, as part of the broadcast's life (``scheduling`` and the worker):

1. At scheduling (``start``), the audience's recipient rows are shuffled; the
   sample's rows get a ``variant`` (an index into the subjects) and stay due as
   usual; every other row is held (``due_at`` NULL, ``variant`` NULL), so the
   worker does not claim it. Too small an audience means no test: nobody is held
   and everyone gets the file's ``subject``.
2. The worker sends the sample like any broadcast, each reader the subject of
   their row's variant.
3. Once ``test_decide_at`` has passed, the worker's ``decide(session, now)`` picks
   the subject with the most unique human clicks per delivered email (a tie keeps
   the earlier subject), writes it on the held rows and makes them due. A click
   the machine-event check flagged (a link scanner, Apple's proxy: ``machine_event``)
   is never counted; see ``_human`` for the clicks recorded without that check.

A reader has one recipient row per broadcast (unique) and one delivery (unique),
and the row's variant is fixed before their email is sent: nobody gets two
versions.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from funnel.core.broadcast import local_due, parse_local_time
from funnel.core.schedule import zone
from funnel.core.states import SubjectTestState
from funnel.models import (
    BROADCAST_SCHEDULED,
    BROADCAST_SENDING,
    BroadcastRecipient,
    Delivery,
    DeliveryEvent,
    MachineEvent,
    Subscriber,
)
from funnel.models import Broadcast as BroadcastRow

DEFAULT_SAMPLE = 20                 # percent of the audience in the test
DEFAULT_WAIT = timedelta(hours=4)   # from the sample's last due time to the decision
MIN_PER_SUBJECT = 100               # fewer readers a subject and the figures mean little
MAX_WAIT = timedelta(days=7)
# Link scanners (corporate mail filters) follow every link within seconds of
# delivery: for a click the machine-event check never saw, one that soon after the
# email was sent is not counted as human (see _human).
SCANNER_SECONDS = 30
_CHUNK = 500
_WAIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)?\s*$", re.IGNORECASE)


class SubjectTestError(ValueError):
    """Refused; the message says why."""


@dataclass(frozen=True)
class TestPlan:
    sample_percent: int = DEFAULT_SAMPLE
    wait: timedelta = DEFAULT_WAIT
    min_per_subject: int = MIN_PER_SUBJECT


def parse_sample(text: str | int | None) -> int:
    """``20`` or ``20%`` → 20; refused outside 1 to 100."""
    raw = str(text if text is not None else "").strip().rstrip("%").strip()
    if not raw:
        return DEFAULT_SAMPLE
    try:
        value = float(raw)
    except ValueError as exc:
        raise SubjectTestError(f"the test sample '{text}' is not a percentage: write e.g. 20"
                               ) from exc
    if not 1 <= value <= 100 or value != int(value):
        raise SubjectTestError(f"the test sample must be a whole percentage from 1 to 100, "
                               f"not {raw}")
    return int(value)


def parse_wait(text: str | None) -> timedelta:
    """``4h``, ``90m``, ``1d`` (a bare number is hours); 10 minutes to 7 days."""
    raw = (text or "").strip()
    if not raw:
        return DEFAULT_WAIT
    m = _WAIT.match(raw)
    if not m:
        raise SubjectTestError(f"the test wait '{raw}' is not a length of time: write e.g. "
                               "4h, 90m or 1d")
    amount, unit = float(m[1]), (m[2] or "h").lower()
    wait = {"m": timedelta(minutes=amount), "min": timedelta(minutes=amount),
            "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]
    if not timedelta(minutes=10) <= wait <= MAX_WAIT:
        raise SubjectTestError("the test wait must be between 10 minutes and 7 days")
    return wait


def per_subject(audience: int, subjects: int, plan: TestPlan) -> int:
    """Readers each subject goes to in the sample; 0 when the audience is too small."""
    sample = min(audience, max(math.ceil(audience * plan.sample_percent / 100),
                               plan.min_per_subject * subjects))
    each = sample // subjects
    return each if each >= plan.min_per_subject else 0


def subjects_of(row: BroadcastRow) -> list[str]:
    return list(json.loads(row.test_subjects or "[]"))


def start(session: Session, row: BroadcastRow, subjects: tuple[str, ...], plan: TestPlan,
          rng: random.Random | None = None) -> str | None:
    """Split the fresh recipient rows of ``row`` (just scheduled) into the sample and
    the held rest. Returns a sentence for the page, or None when no test was asked."""
    row.test_subjects = json.dumps(list(subjects)) if subjects else None
    row.test_sample = plan.sample_percent if subjects else None
    row.test_wait_seconds = int(plan.wait.total_seconds()) if subjects else None
    row.test_winner, row.test_decide_at, row.test_state, row.test_note = None, None, None, None
    if not subjects:
        return None
    ids = list(session.scalars(select(BroadcastRecipient.id).where(
        BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.outcome.is_(None))
        .order_by(BroadcastRecipient.id)))
    each = per_subject(len(ids), len(subjects), plan)
    if not each:
        row.test_state = SubjectTestState.SKIPPED
        row.test_note = (f"No subject test: {len(ids):,} readers are too few for "
                         f"{plan.min_per_subject} a subject ({len(subjects)} subjects need "
                         f"{plan.min_per_subject * len(subjects):,}). Everyone gets "
                         f"the first subject, \"{row.subject}\".")
        return row.test_note
    (rng or random.SystemRandom()).shuffle(ids)
    for i in range(len(subjects)):
        set_rows(session, ids[i * each:(i + 1) * each], variant=i, sampled=True)
    rest = ids[each * len(subjects):]
    set_rows(session, rest, due_at=None)
    last_due = session.scalar(select(func.max(BroadcastRecipient.due_at)).where(
        BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.sampled.is_(True)))
    row.test_state = SubjectTestState.TESTING
    row.test_decide_at = (last_due or row.send_at) + plan.wait
    row.test_note = (f"Subject test: {each:,} readers for each of the {len(subjects)} "
                     f"subjects ({each * len(subjects):,} of {len(ids):,}); the other "
                     f"{len(rest):,} get the winner after the wait.")
    return row.test_note


def set_rows(session: Session, ids: list[int], **values) -> None:
    for i in range(0, len(ids), _CHUNK):
        session.execute(update(BroadcastRecipient)
                        .where(BroadcastRecipient.id.in_(ids[i:i + _CHUNK])).values(**values))


@dataclass(frozen=True)
class VariantFigures:
    subject: str
    readers: int
    sent: int
    delivered: int
    human_clicks: int  # distinct readers who clicked, not counting link scanners
    machine_clicks: int = 0  # readers whose email only a machine clicked (not counted)

    @property
    def rate(self) -> float:
        """Unique human clicks per delivered email."""
        return self.human_clicks / self.delivered if self.delivered else 0.0


def figures(session: Session, row: BroadcastRow) -> list[VariantFigures]:
    subjects = subjects_of(row)
    if not subjects:
        return []
    variant, slug = BroadcastRecipient.variant, row.slug
    base = (select(variant, Delivery.id, Delivery.state, Delivery.sent_at)
            .join(Delivery, (Delivery.subscriber_id == BroadcastRecipient.subscriber_id)
                  & (Delivery.step_slug == slug) & (Delivery.kind == "broadcast"))
            .where(BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.sampled.is_(True)))
    readers = dict(session.execute(select(variant, func.count()).where(
        BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.sampled.is_(True))
        .group_by(variant)).all())
    sent: dict[int, int] = {}
    sent_at: dict[int, datetime | None] = {}
    of: dict[int, int] = {}
    for v, d_id, state, at in session.execute(base):
        if v is None:
            continue  # a sampled row always has its variant; a guard for the type checker
        of[d_id] = v
        sent_at[d_id] = at
        if state == "sent":
            sent[v] = sent.get(v, 0) + 1
    delivered: dict[int, set[int]] = {}
    clicks: dict[int, set[int]] = {}
    machine: dict[int, set[int]] = {}
    ids = list(of)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        for ev_id, kind, ev_at, checked in session.execute(
                select(DeliveryEvent.delivery_id, DeliveryEvent.kind, DeliveryEvent.at,
                       DeliveryEvent.machine_checked)
                .where(DeliveryEvent.delivery_id.in_(chunk),
                       DeliveryEvent.kind.in_(("delivered", "click")))):
            if ev_id is None:
                continue
            if kind == "delivered":
                delivered.setdefault(of[ev_id], set()).add(ev_id)
            elif _human(ev_at, sent_at[ev_id], checked):
                clicks.setdefault(of[ev_id], set()).add(ev_id)
        # Flagged clicks live apart (machine_event) and count for nothing; read only to
        # show how many there were.
        for d_id in session.scalars(select(MachineEvent.delivery_id).where(
                MachineEvent.delivery_id.in_(chunk), MachineEvent.kind == "click")):
            machine.setdefault(of[d_id], set()).add(d_id)
    return [VariantFigures(subject=s, readers=readers.get(i, 0), sent=sent.get(i, 0),
                           delivered=len(delivered.get(i, ())),
                           human_clicks=len(clicks.get(i, ())),
                           machine_clicks=len(machine.get(i, set()) - clicks.get(i, set())))
            for i, s in enumerate(subjects)]


def _human(click_at: datetime, sent_at: datetime | None, checked: bool | None) -> bool:
    """A click in ``delivery_event`` that counts as a person's."""
    if checked:
        # The machine-event check saw this click (user agent, HEAD request, Apple's
        # network, every link at once) and found a person: a fast reader counts too.
        return True
    # Recorded without that check (before migration 0013, or written by other means):
    # the time since sending is all there is to go on, and scanners click within it.
    return sent_at is None or click_at >= sent_at + timedelta(seconds=SCANNER_SECONDS)


def winner(figs: list[VariantFigures]) -> int:
    """The highest rate; a tie keeps the earliest subject."""
    best = 0
    for i, f in enumerate(figs):
        if f.rate > figs[best].rate:
            best = i
    return best


def decide(session: Session, now: datetime, default_timezone: str) -> list[str]:
    """Pick the winner of every test whose wait is over and release the rest; commits.

    Called by the worker on each pass with its ``now``. Only the worker whose update
    finds the test still running releases the rest, so it happens once."""
    done: list[str] = []
    due = list(session.scalars(select(BroadcastRow.id).where(
        BroadcastRow.test_state == SubjectTestState.TESTING,
        BroadcastRow.test_decide_at <= now,
        BroadcastRow.status.in_((BROADCAST_SCHEDULED, BROADCAST_SENDING)))))
    for row_id in due:
        row = session.get(BroadcastRow, row_id)
        assert row is not None
        figs = figures(session, row)
        best = winner(figs)
        lines = "; ".join(f"\"{f.subject}\": {f.human_clicks} of {f.delivered} delivered "
                          f"clicked ({f.rate:.1%})"
                          + (f", {f.machine_clicks} more by a link scanner, not counted"
                             if f.machine_clicks else "") for f in figs)
        tie = sum(1 for f in figs if f.rate == figs[best].rate) > 1
        note = (f"Decided {now:%Y-%m-%d %H:%M} UTC: \"{figs[best].subject}\" wins"
                + (" (a tie: the first of the best is kept)" if tie else "") + f". {lines}.")
        claimed = session.execute(
            update(BroadcastRow)
            .where(BroadcastRow.id == row_id,
                   BroadcastRow.test_state == SubjectTestState.TESTING)
            .values(test_state=SubjectTestState.DECIDED, test_winner=best, test_note=note))
        if not getattr(claimed, "rowcount", 0):
            session.rollback()
            continue
        _release(session, row, best, now, default_timezone)
        session.commit()
        done.append(row.slug)
    return done


def _release(session: Session, row: BroadcastRow, best: int, now: datetime,
             default_timezone: str) -> None:
    held = (BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.outcome.is_(None),
            BroadcastRecipient.variant.is_(None), BroadcastRecipient.due_at.is_(None))
    if not row.local_time:
        session.execute(update(BroadcastRecipient).where(*held)
                        .values(variant=best, due_at=now))
        return
    at = parse_local_time(row.local_time)
    pairs = session.execute(select(BroadcastRecipient.id, Subscriber.timezone)
                            .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
                            .where(*held)).all()
    by_zone: dict[str, list[int]] = {}
    for rec_id, tz in pairs:
        by_zone.setdefault(tz, []).append(rec_id)
    for tz, ids in by_zone.items():
        set_rows(session, ids, variant=best, due_at=local_due(now, at, zone(tz, default_timezone)))

