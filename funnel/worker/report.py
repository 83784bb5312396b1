"""What one pass of the worker, or one piece of it, did."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

_COUNTS = ("sent", "skipped", "retried", "failed", "held", "rescheduled", "claimed", "taken_in",
           "purged")


@dataclass
class PassReport:
    sent: int = 0
    skipped: int = 0      # withdrawn or held back by a rule (paused, unsubscribed...)
    retried: int = 0
    failed: int = 0
    held: int = 0         # could not be rendered: waits for its file to be fixed
    rescheduled: int = 0
    claimed: int = 0      # rows leased for this pass: nonzero means there may be more
    taken_in: int = 0     # sign-ups taken from the intake
    purged: int = 0       # sign-ups never confirmed, deleted after PENDING_RETENTION_DAYS
    # Counts only: a pass of a million-reader issue once kept every key it sent
    # here, and a worker's memory grew with the audience.
    hooks: Any = None     # the webhook piece's detail (hooks.dispatch.HookReport)

    def add(self, other: PassReport) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.hooks is not None:
            self.hooks = other.hooks

    @property
    def busy(self) -> bool:
        """Work was found: the next pass starts at once instead of waiting."""
        return bool(self.claimed or self.taken_in)


assert set(_COUNTS) < {f.name for f in fields(PassReport)}
