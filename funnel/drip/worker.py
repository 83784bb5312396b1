"""The drip worker: claims due subscribers in batches and sends each step once.

Exactly-once rests on three things (README "Delivery guarantees"):
1. a unique (subscriber, step) row in ``delivery``, written and committed as an
   intent *before* the email is handed to the transport;
2. a lease on each claimed subscriber, so a worker that dies is replaced after
   ``lease_seconds`` and no two live workers hold the same subscriber;
3. the subscriber's status re-read under a row lock right before sending, so an
   unsubscribe that commits first always wins.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from funnel.config import Settings
from funnel.core import lifecycle
from funnel.core.schedule import due_at, next_step, zone
from funnel.core.sequence import Sequence, load_sequence
from funnel.mail.compose import Composer
from funnel.models import AppState, Delivery, Subscriber, new_public_id
from funnel.transports import AuthError, Message, TransientSendError, Transport

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)
DONE_STATES = ("sent", "failed", "unknown")


@dataclass
class PassReport:
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    rescheduled: int = 0
    claimed: int = 0
    sent_keys: list[str] = field(default_factory=list)

    def merge(self, other: PassReport) -> None:
        for name in ("sent", "skipped", "retried", "failed", "rescheduled", "claimed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sent_keys.extend(other.sent_keys)


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    base = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    wait = base * rng.uniform(0.5, 1.5)
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=retry_after))
    return wait


class Worker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        transport: Transport,
        *,
        sequence_loader: Callable[[], Sequence] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.transport = transport
        self.composer = Composer(settings)
        self.load_sequence = sequence_loader or (lambda: load_sequence(settings.emails_dir))
        self.rng = rng or random.Random()
        self.window = (settings.window_start, settings.window_end)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[-64:]
        self.min_gap = timedelta(hours=settings.catchup_min_gap_hours)

    # -- one pass ---------------------------------------------------------

    def run_pass(self, now: datetime, stop: threading.Event | None = None) -> PassReport:
        """Send everything due at ``now``, batch by batch, then return."""
        sequence = self.load_sequence()
        self.sync_sequence(sequence, now)
        report = PassReport()
        started = time.monotonic()
        while not (stop and stop.is_set()):
            # What is due is decided at ``now``, but leases follow the time that
            # has really passed, so a lease taken late in a long pass still lasts
            # WORKER_LEASE_SECONDS from when it was taken.
            held_at = now + timedelta(seconds=time.monotonic() - started)
            ids = self.claim(now, held_at)
            if not ids:
                break
            report.claimed += len(ids)
            report.merge(self.process(ids, sequence, now))
        return report

    def sync_sequence(self, sequence: Sequence, now: datetime) -> None:
        """After the marketer edits the sequence, everyone's next step is re-decided."""
        with self.sessions() as s:
            state = s.get(AppState, "sequence_fingerprint")
            if state is not None and state.value == sequence.fingerprint:
                return
            in_flight = (
                select(Delivery.id)
                .where(Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.state.in_(("sending", "retry")))
                .exists()
            )
            s.execute(
                update(Subscriber)
                .where(Subscriber.status == lifecycle.CONFIRMED)
                .where(or_(Subscriber.next_due_at.is_(None), Subscriber.next_due_at > now))
                .where(~in_flight)  # a retry keeps its backoff
                .values(next_due_at=now)
            )
            if state is None:
                s.add(AppState(key="sequence_fingerprint", value=sequence.fingerprint))
            else:
                state.value = sequence.fingerprint
            try:
                s.commit()
            except IntegrityError:  # another worker recorded it first
                s.rollback()

    def claim(self, now: datetime, held_at: datetime | None = None) -> list[int]:
        held_at = held_at or now
        lease_until = held_at + timedelta(seconds=self.settings.lease_seconds)
        with self.sessions() as s:
            q = (
                select(Subscriber.id)
                .where(Subscriber.next_due_at <= now)
                .where(or_(Subscriber.lease_until.is_(None), Subscriber.lease_until < held_at))
                .order_by(Subscriber.next_due_at)
                .limit(self.settings.batch_size)
            )
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            ids = list(s.scalars(q))
            if ids:
                s.execute(
                    update(Subscriber)
                    .where(Subscriber.id.in_(ids))
                    .values(lease_until=lease_until, lease_owner=self.name)
                )
            s.commit()
            return ids

    # -- deciding ---------------------------------------------------------

    def schedule_next(self, sub: Subscriber, sequence: Sequence, now: datetime) -> tuple:
        """(step, due) for a subscriber's next email, or (None, None) when finished."""
        done = sorted((d for d in sub.deliveries if d.state in DONE_STATES), key=lambda d: d.id)
        step = next_step(sequence.steps, [d.step_slug for d in done])
        if step is None or sub.confirmed_at is None:
            return None, None
        last = max((d.sent_at or d.created_at for d in done), default=None)
        due = due_at(
            step,
            confirmed_at=sub.confirmed_at,
            last_sent_at=last,
            tz=zone(sub.timezone, self.settings.default_timezone),
            default_window=self.window,
            min_gap=self.min_gap,
            paused_until=sub.paused_until,
        )
        return step, due

    def _hold(self, sub: Subscriber, now: datetime) -> bool:
        """Stop or delay a subscriber who must not get mail now. True if held."""
        if not lifecycle.can_receive_sequence(sub.status) or not sub.wants_plan:
            sub.next_due_at = None
            sub.lease_until = None
            return True
        if sub.paused_until is not None and sub.paused_until > now:
            sub.next_due_at = sub.paused_until
            sub.lease_until = None
            return True
        return False

    def _reschedule(self, sub: Subscriber, sequence: Sequence, now: datetime) -> None:
        _step, due = self.schedule_next(sub, sequence, now)
        sub.next_due_at = due
        sub.lease_until = None

    def decide(self, sub: Subscriber, sequence: Sequence, now: datetime,
               report: PassReport) -> Delivery | None:
        """Phase A for one subscriber: the delivery to send now, or None.

        The unique (subscriber, step) constraint is the last line of defence: if it
        ever fires, the whole batch rolls back and its leases expire, so the batch
        is looked at again later instead of anything going out twice."""
        if self._hold(sub, now):
            report.skipped += 1
            return None
        for d in [d for d in sub.deliveries if d.state in ("sending", "retry")]:
            if sequence.get(d.step_slug) is None:
                sub.deliveries.remove(d)  # the step was deleted while in flight
            elif d.state == "sending" and not self.transport.idempotent:
                # A worker died after claiming this; the provider may have it.
                # Not resending is the only way to be sure it never arrives twice.
                d.state = "unknown"
                d.error = "worker stopped mid-send; not resent so it cannot arrive twice"
                d.sent_at = now
            else:
                d.state = "sending"
                d.attempts += 1
                return d
        step, due = self.schedule_next(sub, sequence, now)
        if step is None or due > now:
            sub.next_due_at = due
            sub.lease_until = None
            report.rescheduled += 1
            return None
        d = Delivery(public_id=new_public_id(), step_slug=step.slug, state="sending",
                     attempts=1, created_at=now)
        sub.deliveries.append(d)
        return d

    # -- sending ----------------------------------------------------------

    def _load(self, s: Session, ids: list[int], lock: bool) -> list[Subscriber]:
        q = (
            select(Subscriber)
            .where(Subscriber.id.in_(ids))
            .options(selectinload(Subscriber.deliveries))
            .order_by(Subscriber.id)
        )
        if lock and s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(of=Subscriber)
        return list(s.scalars(q))

    def process(self, ids: list[int], sequence: Sequence, now: datetime) -> PassReport:
        report = PassReport()
        prepared: dict[int, Message | Exception] = {}
        with self.sessions() as s:
            intents = [(sub, d) for sub in self._load(s, ids, lock=False)
                       if (d := self.decide(sub, sequence, now, report)) is not None]
            try:
                s.commit()  # the intents are durable before anything is sent
            except IntegrityError:
                log.error("a delivery already existed in this batch; leaving it to its lease")
                return report
            for sub, d in intents:
                prepared[sub.id] = self._prepare(sub, d, sequence, now)
        if prepared:
            self.send(prepared, sequence, now, report)
        return report

    def _prepare(self, sub: Subscriber, d: Delivery, sequence: Sequence, now: datetime
                 ) -> Message | Exception:
        """Render outside the send transaction, so locks are held only while sending."""
        step = sequence.get(d.step_slug)
        try:
            return self.composer.message(
                step.source, sub, key=f"{d.created_at:%Y%m%dT%H%M%S}-{d.step_slug}-{d.public_id}",
                now=now, delivery_id=d.public_id, category=d.step_slug,
            )
        except Exception as exc:  # a broken template must not stop the batch
            log.exception("rendering %s failed", d.step_slug)
            return exc

    def send(self, prepared: dict[int, Message | Exception], sequence: Sequence, now: datetime,
             report: PassReport) -> None:
        with self.sessions() as s:
            # The row lock makes a concurrent unsubscribe wait for us or win outright.
            subs = self._load(s, list(prepared), lock=True)
            work: list[tuple[Subscriber, Delivery, Message]] = []
            for sub in subs:
                d = next((d for d in sub.deliveries if d.state == "sending"), None)
                if d is None or sub.lease_owner != self.name:
                    # Our lease ran out and another worker took this subscriber
                    # over: it decides now, and we must not send as well.
                    continue
                if self._hold(sub, now):
                    sub.deliveries.remove(d)  # withdrawn before it left: nothing was sent
                    report.skipped += 1
                    continue
                msg = prepared[sub.id]
                if isinstance(msg, Exception):
                    self._finish(sub, d, sequence, now, error=f"render failed: {msg}")
                    report.failed += 1
                    continue
                work.append((sub, d, msg))
            size = max(1, self.transport.max_batch)
            start = 0
            try:
                while start < len(work):
                    self._send_chunk(work[start : start + size], sequence, now, report)
                    start += size
            except AuthError:
                # Nothing in this chunk or later was accepted: withdraw those intents
                # (_send_chunk already recorded what the transport settled first).
                for sub, d, _msg in work[start:]:
                    if d.state != "sending":
                        continue
                    sub.deliveries.remove(d)
                    sub.lease_until = None
                s.commit()
                raise
            s.commit()

    def _send_chunk(self, chunk, sequence: Sequence, now: datetime, report: PassReport) -> None:  # type: ignore[no-untyped-def]
        try:
            results = {r.key: r for r in self.transport.send([m for _s, _d, m in chunk])}
        except AuthError as exc:
            settled = {r.key: r for r in exc.results}
            self._record([c for c in chunk if c[2].key in settled], settled, sequence, now, report)
            raise
        except TransientSendError as exc:
            # A transport that sends in several requests reports those that went
            # out before the failure: record them, retry only the rest.
            settled = {r.key: r for r in exc.results}
            self._record([c for c in chunk if c[2].key in settled], settled, sequence, now, report)
            for sub, d, _msg in [c for c in chunk if c[2].key not in settled]:
                if d.attempts >= MAX_ATTEMPTS:
                    self._finish(sub, d, sequence, now, error=f"gave up after {d.attempts} tries: {exc}")
                    report.failed += 1
                else:
                    d.state = "retry"
                    d.error = str(exc)
                    sub.next_due_at = now + backoff(d.attempts, exc.retry_after, self.rng)
                    sub.lease_until = None
                    report.retried += 1
            return
        self._record(chunk, results, sequence, now, report)

    def _record(self, chunk, results, sequence: Sequence, now: datetime,  # type: ignore[no-untyped-def]
                report: PassReport) -> None:
        for sub, d, msg in chunk:
            r = results.get(msg.key)
            if r is not None and r.ok:
                d.message_id = msg.message_id
                d.provider_id = r.provider_id
                self._finish(sub, d, sequence, now)
                report.sent += 1
                report.sent_keys.append(msg.key)
            else:
                self._finish(sub, d, sequence, now,
                             error=(r.error if r else None) or "no answer for this message")
                report.failed += 1

    def _finish(self, sub: Subscriber, d: Delivery, sequence: Sequence, now: datetime,
                error: str | None = None) -> None:
        d.state = "failed" if error else "sent"
        d.error = error
        d.sent_at = now
        self._reschedule(sub, sequence, now)

    # -- running until told to stop ----------------------------------------

    def run_forever(self, stop: threading.Event, clock: Callable[[], datetime],
                    poll_seconds: float, wake: threading.Event | None = None) -> None:
        while not stop.is_set():
            try:
                report = self.run_pass(clock(), stop)
            except AuthError:
                raise
            except Exception:
                log.exception("worker pass failed; trying again shortly")
                report = PassReport()
            if report.claimed == 0:
                waiter = wake or stop
                waiter.wait(poll_seconds)
                if wake is not None:
                    wake.clear()
