"""The drip's and system mail's batches: the worker's pieces that send them.

For each batch: decide and commit the intents (short transaction), render outside
any transaction, then send under the subscribers' row locks
(``funnel.mail.sending``). A step whose email cannot be rendered is *held* for that
subscriber and tried again every ``HELD_RECHECK`` until the file is fixed: never
skipped, never followed by the next step. System mail (confirmations) goes first
in every pass, so a sign-up taken in is confirmed in that same pass.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.exc import IntegrityError

from funnel.core.sequence import PLAN, Sequence
from funnel.core.sequences import Sequences
from funnel.drip import enrollments, multiplan, planner
from funnel.drip.rows import Batch, DeliveryRow, SubscriberRow
from funnel.drip.store import Store, unsent
from funnel.mail import sending
from funnel.mail.sending import DRIP, HELD, SENDING, SYSTEM, UNKNOWN, Outgoing
from funnel.models import Delivery, Subscriber, new_public_id
from funnel.subscribers import system_mail
from funnel.transports import Message, Transport
from funnel.worker.report import PassReport

log = logging.getLogger(__name__)

HELD_RECHECK = timedelta(minutes=1)


def view(sub: Subscriber | SubscriberRow
         ) -> tuple[planner.SubscriberView, list[planner.DeliveryView]]:
    """The subscriber as the planner sees it: plain data, no session."""
    deliveries: list[Delivery | DeliveryRow] = list(sub.deliveries)
    # Rows not written yet (no id) are the newest.
    deliveries.sort(key=lambda d: (d.id is None, d.id or 0))
    return (
        planner.SubscriberView(sub.status, sub.confirmed_at, sub.timezone, sub.paused_until,
                               sub.wants_plan),
        [planner.DeliveryView(d.step_slug, d.state, d.created_at, d.sent_at, d.attempts, d.kind)
         for d in deliveries],
    )


def delivery_key(d: DeliveryRow) -> str:
    """Outbox file name and provider key: stable, so a resend replaces, never adds."""
    return f"{d.created_at:%Y%m%dT%H%M%S}-{d.step_slug}-{d.public_id}"


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch runs. A batch makes tens of
    thousands of objects (rows, emails, parameters) that all live until it ends,
    so the collector's passes over them, and over everything the app keeps, freed
    nothing and took a quarter of a batch's time. Cycles made meanwhile are
    collected once it is back on. (Process-wide: a web thread's cycles wait too,
    for one batch.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Batches:
    """The drip and system mail, batch by batch, through the shared send step."""

    def __init__(self, store: Store, composer, transport: Transport, *,
                 sequence: Callable[[], Sequences], rules: planner.Rules,
                 rng: random.Random | None = None,
                 between_batches: Callable[[], None] | None = None) -> None:
        self.store = store
        self.composer = composer
        self.transport = transport
        self.load_sequence = sequence
        self.rules = rules
        self.rng = rng or random.Random()
        # Called after each batch (the worker folds the tallies there, at most every
        # few seconds): a long pass must not leave the dashboard a delta row per email.
        self.between_batches = between_batches

    def system_mail(self, now: datetime, stop: threading.Event | None) -> PassReport:
        """Queued system mail (confirmations, "already on the list")."""
        report = PassReport()
        self._batches(now, stop, report, self.store.claim_queued, self._system_batch)
        return report

    def drip(self, now: datetime, stop: threading.Event | None) -> PassReport:
        """The sequences' steps due at ``now``, after replanning if their files changed."""
        report = PassReport()
        sequences = self.load_sequence()
        self.store.replan_if_changed(sequences.fingerprint, now)
        with self.store.transaction() as s:
            seen = enrollments.seen_since(s, list(sequences.names), now)
            s.commit()
        self._batches(now, stop, report, self.store.claim_due,
                      lambda ids, now, report: self._drip_batch(ids, sequences, seen, now,
                                                                report))
        return report

    def _batches(self, now, stop, report, claim, process) -> None:
        started = time.monotonic()
        while not (stop and stop.is_set()):
            # What is due is decided at ``now``, but leases follow the time that
            # has really passed, so a lease taken late in a long pass still lasts
            # WORKER_LEASE_SECONDS from when it was taken.
            ids = claim(now, now + timedelta(seconds=time.monotonic() - started))
            if not ids:
                return
            report.claimed += len(ids)
            with collector_paused():
                process(ids, now, report)
            if self.between_batches is not None:
                self.between_batches()

    # -- the drip ------------------------------------------------------------

    def _plan(self, sub: SubscriberRow, sequences: Sequences, now: datetime) -> multiplan.Plan:
        """The decision over every sequence the subscriber is in, its enrollment
        changes applied to their rows (written with the batch)."""
        sub_view, deliveries = view(sub)
        decided = multiplan.plan_all(sub_view, deliveries, [e.view() for e in sub.enrollments],
                                     sequences, now, self.rules, tags=sub.tag_names,
                                     wants_newsletter=sub.wants_newsletter)
        enrollments.apply(sub.enrollments, decided.changes)
        return decided

    def _enter(self, sub: SubscriberRow, sequences: Sequences, seen: dict[str, datetime]) -> None:
        """Sequences that start on confirming (or on confirming from a form source):
        entered when the worker first looks at a confirmed subscriber; only people
        confirmed since the sequence appeared (the plan: everyone)."""
        if sub.status != planner.CONFIRMED or sub.confirmed_at is None:
            return
        for d in sequences.defs:
            if d.start.kind not in ("confirmed", "source"):
                continue
            if d.name != PLAN and sub.confirmed_at < seen.get(d.name, sub.confirmed_at):
                continue  # the plan takes everyone confirmed, whenever
            if d.start.kind == "source" and (sub.utm_source or "").lower() != d.start.value:
                continue
            enrollments.start(sub.enrollments, sub.id, d.name, sub.confirmed_at)

    def _decide(self, batch: Batch, sub: SubscriberRow, sequences: Sequences,
                now: datetime) -> multiplan.Plan:
        """The planner's decision, after settling whatever it gives up on."""
        for _ in range(len(sub.deliveries) + 1):
            if not sequences.broken:  # a broken sequence's steps are unknown: keep theirs
                for d in unsent(sub, DRIP):
                    if sequences.of_slug(d.step_slug) is None:
                        batch.delete(d)  # its step (or sequence) was deleted while in flight
            decided = self._plan(sub, sequences, now)
            decision = decided.decision
            if not isinstance(decision, planner.GiveUp):
                return decided
            d = next(d for d in unsent(sub, DRIP) if d.step_slug == decision.step_slug)
            d.state, d.error, d.sent_at, d.retry_at = decision.state, decision.reason, now, None
        raise RuntimeError("planner kept giving up")  # pragma: no cover

    def _drip_batch(self, ids: list[int], sequences: Sequences, seen: dict[str, datetime],
                    now: datetime, report: PassReport) -> None:
        with self.store.transaction() as s:
            intents: list[tuple[SubscriberRow, DeliveryRow]] = []
            batch = self.store.load(s, ids, lock=False)
            for sub in batch:
                self._enter(sub, sequences, seen)
                decision = self._decide(batch, sub, sequences, now).decision
                if not isinstance(decision, planner.Send):
                    self.store.release(sub, planner.next_due(decision))
                    report.skipped += isinstance(decision, planner.Hold)
                    report.rescheduled += isinstance(decision, planner.WaitUntil)
                    continue
                intents.append((sub, self._intent(sub, DRIP, decision.step.slug, now)))
            try:
                batch.commit()  # the intents are durable before anything is sent
            except IntegrityError:
                # The unique constraint is the last line of defence: the batch is
                # left to its leases and looked at again later, never sent twice.
                log.error("a delivery already existed in this batch; leaving it to its lease")
                return
        # Rendered outside any transaction, so row locks are held only while sending.
        prepared = self._compose(sequences.all, intents, now)

        def hold(sub: SubscriberRow, d: DeliveryRow) -> bool:
            sub_view = view(sub)[0]
            seq = sequences.get(sequences.of_slug(d.step_slug) or "")
            if seq is not None:
                sub_view = replace(sub_view, wants_plan=multiplan.wants(
                    sub_view, seq.topic, sub.wants_newsletter))
            decision = planner.blocked(sub_view, now)
            if decision is None:
                return False
            self.store.release(sub, planner.next_due(decision))
            return True

        def after(sub: SubscriberRow, d: DeliveryRow | None) -> None:
            if d is None:
                sub.lease_until = None  # withdrawn: the cursor stays where hold put it
            elif d.state in (sending.RETRY, HELD):
                self.store.release(sub, d.retry_at)
            else:
                decision = self._plan(sub, sequences, now).decision
                self.store.release(sub, now if isinstance(decision, (planner.Send, planner.GiveUp))
                                   else planner.next_due(decision))

        self._send(prepared, now, report, hold, after)

    @staticmethod
    def _intent(sub: SubscriberRow, kind: str, slug: str, now: datetime) -> DeliveryRow:
        """The delivery row to send, created or resumed, committed before sending."""
        d = next((d for d in unsent(sub, kind) if d.step_slug == slug), None)
        if d is None:
            d = DeliveryRow(id=None, public_id=new_public_id(), subscriber_id=sub.id, kind=kind,
                            step_slug=slug, state=SENDING, attempts=0, created_at=now)
            sub.deliveries.append(d)
        d.state = SENDING
        d.attempts += 1
        return d

    def _compose(self, sequence: Sequence, intents: list[tuple[SubscriberRow, DeliveryRow]],
                 now: datetime) -> list[tuple[int, DeliveryRow, Message | Exception]]:
        """Each intent's email, in order; the recipients of one step composed
        together (most of a batch is a few steps)."""
        by_step: dict[str, list[int]] = {}
        for i, (_sub, d) in enumerate(intents):
            by_step.setdefault(d.step_slug, []).append(i)
        out: list[Message | Exception] = [LookupError()] * len(intents)
        for slug, where in by_step.items():
            step = sequence.get(slug)
            if step is None:
                gone = LookupError(f"the step {slug} is no longer in the sequence")
                for i in where:
                    out[i] = gone
                continue
            made = self.composer.messages(
                step.source,
                [(intents[i][0], delivery_key(intents[i][1]), intents[i][1].public_id)
                 for i in where], now=now, category=slug)
            for i, msg in zip(where, made, strict=True):
                out[i] = msg
        return [(sub.id, d, msg) for (sub, d), msg in zip(intents, out, strict=True)]

    @staticmethod
    def _render(render: Callable[[], Message]) -> Message | Exception:
        try:
            return render()
        except Exception as exc:  # a broken email file must not stop the batch
            return exc

    # -- system mail (confirmations) ------------------------------------------

    def _system_batch(self, ids: list[int], now: datetime, report: PassReport) -> None:
        with self.store.transaction() as s:
            intents: list[tuple[SubscriberRow, DeliveryRow]] = []
            batch = self.store.load(s, ids, lock=False)
            for sub in batch:
                mine = 0
                for d in unsent(sub, SYSTEM, now=now):
                    if d.state == SENDING and not self.transport.idempotent:
                        d.state, d.sent_at, d.retry_at = UNKNOWN, now, None
                        d.error = "worker stopped mid-send; not resent so it cannot arrive twice"
                    else:
                        intents.append((sub, self._intent(sub, SYSTEM, d.step_slug, now)))
                        mine += 1
                if not mine:
                    sub.lease_until = None  # the send step's ``after`` releases the rest
            batch.commit()
        prepared = [(sub.id, d, self._render(
            partial(system_mail.render, self.composer, sub, d, delivery_key(d), now)))
            for sub, d in intents]
        self._send(prepared, now, report, system_mail.hold,
                   lambda sub, _d: setattr(sub, "lease_until", None))

    # -- sending (shared) ------------------------------------------------------

    def _send(self, prepared: list[tuple[int, DeliveryRow, Message | Exception]], now: datetime,
              report: PassReport, hold: sending.Hold, after: sending.After) -> None:
        """Hand what was rendered to the send step, under the subscribers' row locks."""
        if not prepared:
            return
        with self.store.transaction() as s:
            # The row lock makes a concurrent unsubscribe wait for us or win outright.
            batch = self.store.load(s, [p[0] for p in prepared], lock=True)
            subs = {sub.id: sub for sub in batch}
            items: list[Outgoing] = []
            for sub_id, intent, msg in prepared:
                sub = subs.get(sub_id)
                if sub is None or not self.store.still_ours(sub):
                    continue  # another worker took over: it decides now, not us
                d = next((x for x in sub.deliveries if x.public_id == intent.public_id), None)
                if d is None or d.state != SENDING:
                    continue
                if isinstance(msg, Exception):
                    self._hold_render(sub, d, msg, now, after)
                    report.held += 1
                    continue
                items.append(Outgoing(sub, d, msg))
            done = sending.send(batch, self.transport, items, now=now, hold=hold, after=after,
                                max_attempts=self.rules.max_attempts, rng=self.rng)
        report.sent += done.sent
        report.failed += done.failed
        report.retried += done.retried
        report.skipped += done.withdrawn

    @staticmethod
    def _hold_render(sub: SubscriberRow, d: DeliveryRow, exc: Exception, now: datetime,
                     after: sending.After) -> None:
        """Never skipped, never followed by the next step: tried again until fixed."""
        # The opaque id, never the address: logs travel further than the database.
        # One line: the reason is in the message (and on the dashboard); a traceback
        # per held email buries the summary. The traceback stays at debug level.
        log.error("rendering %s for subscriber %s failed (%s); held until its file is fixed",
                  d.step_slug, sub.public_id, exc)
        log.debug("why %s did not render", d.step_slug, exc_info=exc)
        d.state, d.error = HELD, f"could not be rendered: {exc}"[:2000]
        d.attempts -= 1  # it never reached the transport
        d.retry_at = now + HELD_RECHECK
        after(sub, d)
