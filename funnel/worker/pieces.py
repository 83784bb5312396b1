"""The interface every piece of a worker pass has, and the wrapper that runs a
piece at most once in a while (the purge hourly, the folding of tallies each
minute)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from funnel.worker.report import PassReport

Stop = threading.Event | None


class Piece(Protocol):
    """One kind of work: does what is due at ``now`` (stopping early when ``stop``
    is set) and says what it did."""

    name: str

    def __call__(self, now: datetime, stop: Stop) -> PassReport: ...


@dataclass
class Step:
    """A piece made of a plain function. ``urgent`` pieces also run in the short
    passes that only take in sign-ups and send their confirmations."""

    name: str
    run: Callable[[datetime, Stop], PassReport]
    urgent: bool = False

    def __call__(self, now: datetime, stop: Stop) -> PassReport:
        return self.run(now, stop)


class Every:
    """Runs ``piece`` at most once per ``seconds`` of real time (its work reads much
    and rarely finds anything, so every pass would be waste)."""

    def __init__(self, seconds: float, piece: Step) -> None:
        self.seconds = seconds
        self.piece = piece
        self.name = piece.name
        self.urgent = piece.urgent
        self._ran_at: float | None = None

    def __call__(self, now: datetime, stop: Stop) -> PassReport:
        if self._ran_at is not None and time.monotonic() - self._ran_at < self.seconds:
            return PassReport()
        self._ran_at = time.monotonic()
        return self.piece(now, stop)
