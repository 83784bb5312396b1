"""Any transport, with each send timed and each message's outcome counted for
Prometheus (``/metrics``)."""

from __future__ import annotations

import time
from typing import Any

from funnel import metrics
from funnel.transports import AuthError, Message, SendResult, TransientSendError, Transport


class MeteredTransport:
    """Any transport, with each send timed and each message's outcome counted."""

    def __init__(self, inner: Transport, name: str) -> None:
        self.inner = inner
        self.name = name
        self.idempotent = inner.idempotent
        self.max_batch = inner.max_batch

    def send(self, messages: list[Message]) -> list[SendResult]:
        started = time.monotonic()
        try:
            results = self.inner.send(messages)
        except (TransientSendError, AuthError) as exc:
            self._count(exc.results)
            settled = {r.key for r in exc.results}
            unsettled = sum(1 for m in messages if m.key not in settled)
            kind = "retry" if isinstance(exc, TransientSendError) else "refused"
            metrics.SENDS.labels(transport=self.name, result=kind).inc(unsettled)
            raise
        finally:
            metrics.PROVIDER_SECONDS.labels(transport=self.name).observe(time.monotonic() - started)
        self._count(results)
        return results

    def _count(self, results: list[SendResult]) -> None:
        ok = sum(1 for r in results if r.ok)
        if ok:
            metrics.SENDS.labels(transport=self.name, result="sent").inc(ok)
        if len(results) - ok:
            metrics.SENDS.labels(transport=self.name, result="failed").inc(len(results) - ok)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
