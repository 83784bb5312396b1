"""``MAIL_FALLBACK=smtp``: SMTP takes over while SendGrid keeps failing, then hands back.

SendGrid counts as failing when it answers 5xx or cannot be reached (timeouts,
refused connections); a 429 or a 400 is not an outage. The first failure starts
the clock; once SendGrid has failed for ``FALLBACK_AFTER`` minutes with no
success in between, mail goes through SMTP. Every ``FALLBACK_PROBE_MINUTES`` one
batch is offered to SendGrid first; when it is accepted, SendGrid is back.

Never a second copy: only messages SendGrid certainly did not take (it answered
5xx, or the connection was refused) may go through SMTP. A request that timed
out may have been accepted unseen: its messages are recorded ``unknown`` and
never sent again, on either transport.

The state (which transport, since when, why) is kept here while sending and
written to the database (``app_state``, key ``mail_fallback``) after each worker
pass (funnel/control/mail_state.py: not during a send, when the worker holds
SQLite's write lock), so every worker process agrees, a restart keeps it, and the
dashboard and ``flask status`` show it. Each switch is logged as a warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from funnel.transports import Message, SendResult, TransientSendError, Transport

log = logging.getLogger(__name__)

STATE_KEY = "mail_fallback"


@dataclass
class FallbackState:
    active: bool = False  # SMTP is carrying the mail
    failing_since: str | None = None  # ISO time of the first failure of this streak
    switched_at: str | None = None  # when SMTP last took over
    returned_at: str | None = None  # when SendGrid last came back
    last_probe: str | None = None
    reason: str = ""  # SendGrid's last failure

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> FallbackState:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields}) if isinstance(data, dict) \
            else cls()


def outage(exc: TransientSendError) -> bool:
    """5xx, or no answer at all: what counts towards switching over."""
    return exc.status is None or exc.status >= 500


class FallbackTransport:
    idempotent = False

    def __init__(self, primary: Transport, secondary: Transport, *, after_minutes: float,
                 probe_minutes: float, clock: Callable[[], datetime] | None = None,
                 names: tuple[str, str] = ("SendGrid", "SMTP")) -> None:
        self.primary, self.secondary = primary, secondary
        self.after = timedelta(minutes=after_minutes)
        self.probe = timedelta(minutes=probe_minutes)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state = FallbackState()
        self.dirty = False  # changed since the database last saw it
        self.names = names
        self.max_batch = primary.max_batch

    def send(self, messages: list[Message]) -> list[SendResult]:
        now = self.clock()
        state = FallbackState(**asdict(self.state))
        if state.active and not self._probe_due(state, now):
            return self.secondary.send(messages)
        if state.active:
            state.last_probe = now.isoformat()
        try:
            results = self.primary.send(messages)
        except TransientSendError as exc:
            if not outage(exc):
                self._save_if_changed(state)
                raise
            return self._failed(messages, exc, state, now)
        if state.active:
            log.warning("%s accepts mail again: switching back from %s", *self.names)
            state.active, state.returned_at = False, now.isoformat()
        state.failing_since, state.reason = None, ""
        self._save_if_changed(state)
        return results

    # -- SendGrid failed ------------------------------------------------------

    def _failed(self, messages: list[Message], exc: TransientSendError, state: FallbackState,
                now: datetime) -> list[SendResult]:
        settled = list(exc.results)
        unsure = set(exc.unsure) - {r.key for r in settled}
        settled += [SendResult(key, False, unknown=True,
                               error=f"{self.names[0]} did not answer in time ({exc}); it may have "
                                     "gone out, so it is not sent again anywhere")
                    for key in sorted(unsure)]
        done = {r.key for r in settled}
        rest = [m for m in messages if m.key not in done]
        state.reason = str(exc)[:300]
        if state.failing_since is None:
            state.failing_since = now.isoformat()
        if not state.active and now - datetime.fromisoformat(state.failing_since) >= self.after:
            log.warning("%s has failed since %s (%s): %s takes over", self.names[0],
                        state.failing_since, state.reason, self.names[1])
            state.active, state.switched_at = True, now.isoformat()
        self._save(state)
        if not state.active:
            raise TransientSendError(str(exc), retry_after=exc.retry_after, results=settled,
                                     status=exc.status)
        if not rest:
            return settled
        try:
            return settled + self.secondary.send(rest)
        except TransientSendError as smtp_exc:
            smtp_exc.results = settled + list(smtp_exc.results)
            raise

    def _probe_due(self, state: FallbackState, now: datetime) -> bool:
        last = state.last_probe or state.switched_at
        return last is None or now - datetime.fromisoformat(last) >= self.probe

    def _save_if_changed(self, state: FallbackState) -> None:
        if state != self.state:
            self._save(state)

    def _save(self, state: FallbackState) -> None:
        self.state, self.dirty = state, True


def describe(state: FallbackState) -> str:
    """One line for the dashboard and ``flask status``."""
    if state.active:
        return (f"SMTP is sending: SendGrid failing since {state.failing_since} "
                f"(switched {state.switched_at}; last error: {state.reason or 'none'})")
    if state.failing_since:
        return f"SendGrid failing since {state.failing_since} ({state.reason}); SMTP not yet needed"
    if state.returned_at:
        return f"SendGrid is sending (back from SMTP since {state.returned_at})"
    return "SendGrid is sending"
