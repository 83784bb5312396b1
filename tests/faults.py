"""A transport for fault tests: it records what it is given and plays a script.

Each ``send`` call pops the next scripted action: ``"ok"`` (accept all),
``"reject"`` (a permanent per-message failure), an exception instance to raise
(``TransientSendError``, ``AuthError``, or ``Crash`` to play the worker process
dying mid-send, after its intents were committed), or a callable run first
(e.g. to unsubscribe someone or move the clock while the batch is in hand).
"""

from __future__ import annotations

from funnel.transports import Message, SendResult


class Crash(BaseException):
    """The process died here: nothing after this line of the worker runs."""


class ScriptedTransport:
    def __init__(self, *, idempotent: bool = False, max_batch: int = 50,
                 inner=None) -> None:  # type: ignore[no-untyped-def]
        self.idempotent = idempotent
        self.max_batch = max_batch
        self.inner = inner  # a real transport to hand accepted messages to
        self.sent: list[Message] = []
        self.calls: list[list[Message]] = []
        self.script: list = []

    def send(self, messages: list[Message]) -> list[SendResult]:
        self.calls.append(list(messages))
        action = self.script.pop(0) if self.script else "ok"
        while callable(action) and not isinstance(action, BaseException):
            action()
            action = self.script.pop(0) if self.script else "ok"
        if isinstance(action, BaseException):
            raise action
        if action == "reject":
            return [SendResult(m.key, False, error="400 invalid address") for m in messages]
        self.sent.extend(messages)
        if self.inner is not None:
            return self.inner.send(messages)
        return [SendResult(m.key, True, provider_id="pid-" + m.key[-6:]) for m in messages]

    def subjects(self) -> list[str]:
        return [m.subject for m in self.sent]



class InterruptingComposer:
    """The real composer, with ``during`` run once as the first email is rendered:
    the batch is claimed and its intents committed, and no lock is held yet (the
    moment a concurrent unsubscribe or a stall past the lease would strike)."""

    def __init__(self, inner, during) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.during = during

    def _first(self) -> None:
        if self.during is not None:
            during, self.during = self.during, None
            during()

    def message(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._first()
        return self.inner.message(*args, **kwargs)

    def messages(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._first()
        return self.inner.messages(*args, **kwargs)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)
