"""The send step: hand prepared emails to the transport and record what happened.

It knows nothing about sequences, so the drip worker, one-off broadcasts and
system mail (confirmations) share it. The caller:

1. commits a ``Delivery`` row per email in state ``sending`` *before* calling
   (the intent: a crash then leaves a trace instead of a silent duplicate);
2. renders each ``Message`` (outside any lock);
3. loads the recipients again under a row lock, in the session it passes here,
   and calls ``send(session, transport, items, now=...)``. The session is an ORM
   ``Session`` or anything else with ``delete(row)`` and ``commit()`` (the drip
   worker's ``Batch`` of plain rows, written set-based).

``send`` then, for each ``Outgoing(recipient, delivery, message)``:

- asks ``hold(recipient, delivery)`` (re-checked under that lock): True withdraws
  the intent (the row is deleted, nothing is sent), e.g. after an unsubscribe;
- sends in chunks of ``transport.max_batch``;
- records the result on the row: ``sent`` (``sent_at``, ``message_id``,
  ``provider_id``), ``failed`` with the provider's reason, or on a temporary
  failure (``TransientSendError``) ``retry`` with ``retry_at`` set by exponential
  backoff with jitter, never sooner than ``Retry-After``; after ``max_attempts``
  tries it is ``failed``. What a transport settled before failing is recorded, never
  retried.
- any other exception from the transport: retried like a temporary failure when
  the transport is idempotent, else ``unknown`` (it may have gone out: never twice);
- ``AuthError`` (credentials refused): records what was settled, withdraws every
  intent not yet sent, commits and re-raises: stop the worker, lose nothing;
- calls ``after(recipient, delivery_or_None)`` once per item when done with it
  (None: the intent was withdrawn), e.g. for the drip to plan its next step;
- commits the session once at the end (row locks are held while sending, so an
  unsubscribe that commits meanwhile waits for this send and stops the next one).

``delivery.attempts`` is the caller's to count (it increments it with the intent).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from funnel.core.states import DeliveryKind, DeliveryState
from funnel.transports import AuthError, Message, SendResult, TransientSendError, Transport

log = logging.getLogger(__name__)

# Delivery states and kinds, from the one set in core.states (CHECK constraints).
QUEUED = DeliveryState.QUEUED      # waiting for its first try (system mail queued by a web request)
SENDING = DeliveryState.SENDING    # intent committed; being handed to the transport
RETRY = DeliveryState.RETRY        # a temporary failure; tried again at retry_at
HELD = DeliveryState.HELD          # could not be rendered; tried again until the file is fixed
SENT = DeliveryState.SENT
FAILED = DeliveryState.FAILED
UNKNOWN = DeliveryState.UNKNOWN    # interrupted mid-send on a provider that could deliver twice
STATES = tuple(DeliveryState)
DONE_STATES = (SENT, FAILED, UNKNOWN)

# The drip plans only its own kind; unique per (subscriber, kind, slug).
DRIP = DeliveryKind.DRIP
BROADCAST = DeliveryKind.BROADCAST
SYSTEM = DeliveryKind.SYSTEM
KINDS = tuple(DeliveryKind)

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)


@dataclass(frozen=True)
class Outgoing:
    recipient: Any  # a Subscriber (anything the hooks understand)
    delivery: Any  # a Delivery, or the worker's DeliveryRow
    message: Message


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    withdrawn: int = 0
    sent_keys: list[str] = field(default_factory=list)


Hold = Callable[[Any, Any], bool]
After = Callable[[Any, Any], None]


class Ledger(Protocol):
    """Where the outcomes are written: a Session, or the worker's Batch of rows."""

    def delete(self, instance: Any) -> None: ...

    def commit(self) -> None: ...


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    base = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    wait = base * rng.uniform(0.5, 1.5)
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=retry_after))
    return wait


def send(
    session: Ledger,
    transport: Transport,
    items: Sequence[Outgoing],
    *,
    now: datetime,
    hold: Hold | None = None,
    after: After | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    rng: random.Random | None = None,
) -> SendReport:
    """Send ``items`` once each and record the outcome (see the module docstring)."""
    run = _Run(session, now, after or (lambda _r, _d: None), max_attempts, rng or random.Random())
    work: list[Outgoing] = []
    for item in items:
        if hold is not None and hold(item.recipient, item.delivery):
            run.withdraw(item)
        else:
            work.append(item)
    size = max(1, transport.max_batch)
    start = 0
    try:
        while start < len(work):
            run.chunk(transport, work[start : start + size])
            start += size
    except AuthError:
        for item in work[start:]:
            if item.delivery.state == SENDING:
                run.withdraw(item)
        session.commit()
        raise
    session.commit()
    return run.report


class _Run:
    def __init__(self, session: Ledger, now: datetime, after: After, max_attempts: int,
                 rng: random.Random) -> None:
        self.session, self.now, self.after = session, now, after
        self.max_attempts, self.rng = max_attempts, rng
        self.report = SendReport()

    def withdraw(self, item: Outgoing) -> None:
        """Nothing left: the intent goes, as if it had never been written."""
        self.session.delete(item.delivery)
        self.report.withdrawn += 1
        self.after(item.recipient, None)

    def chunk(self, transport: Transport, chunk: list[Outgoing]) -> None:
        try:
            results = {r.key: r for r in transport.send([i.message for i in chunk])}
        except AuthError as exc:
            self.record([i for i in chunk if i.message.key in _keys(exc.results)], exc.results)
            raise
        except TransientSendError as exc:
            # A transport that sends in several requests reports those that went
            # out before the failure: record them, retry only the rest.
            settled = _keys(exc.results)
            self.record([i for i in chunk if i.message.key in settled], exc.results)
            for item in chunk:
                if item.message.key not in settled:
                    self.retry(item, str(exc), exc.retry_after)
            return
        except Exception as exc:  # a transport bug or an unmapped error: nothing twice
            log.exception("the transport failed unexpectedly")
            for item in chunk:
                if transport.idempotent:
                    self.retry(item, f"transport error: {exc}", None)
                else:
                    self.finish(item, UNKNOWN, f"transport error: {exc}; not resent so it "
                                               "cannot arrive twice")
                    self.report.failed += 1
            return
        self.record(chunk, list(results.values()))

    def record(self, chunk: list[Outgoing], results: Sequence[SendResult]) -> None:
        by_key = {r.key: r for r in results}
        for item in chunk:
            r = by_key.get(item.message.key)
            d = item.delivery
            if r is not None and r.unknown:
                self.finish(item, UNKNOWN, r.error or "outcome unknown; not resent")
                self.report.failed += 1
            elif r is not None and r.ok:
                d.message_id = item.message.message_id
                d.provider_id = r.provider_id
                self.finish(item, SENT, None)
                self.report.sent += 1
                self.report.sent_keys.append(item.message.key)
            else:
                self.finish(item, FAILED, (r.error if r else None) or "no answer for this message")
                self.report.failed += 1

    def retry(self, item: Outgoing, error: str, retry_after: float | None) -> None:
        d = item.delivery
        if d.attempts >= self.max_attempts:
            self.finish(item, FAILED, f"gave up after {d.attempts} tries: {error}")
            self.report.failed += 1
            return
        d.state, d.error = RETRY, error
        d.retry_at = self.now + backoff(d.attempts, retry_after, self.rng)
        self.report.retried += 1
        self.after(item.recipient, d)

    def finish(self, item: Outgoing, state: str, error: str | None) -> None:
        d = item.delivery
        d.state, d.error, d.sent_at, d.retry_at = state, error, self.now, None
        self.after(item.recipient, d)


def _keys(results: Sequence[SendResult]) -> set[str]:
    return {r.key for r in results}
