"""What the welcome and landing pages promise, worked out from the real sequence,
so the promise cannot drift from what the worker sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from funnel.core.sequence import Sequence

NEWSLETTER = "then an occasional newsletter, every few weeks"


@dataclass(frozen=True)
class Cadence:
    emails: int
    weeks: int
    gap_min_days: int
    gap_max_days: int
    first_at_once: bool

    @property
    def plan(self) -> str:
        """E.g. "8 emails over 6 weeks: the first straight away, then about one a week"."""
        if self.emails == 0:
            return "the plan by email"
        head = f"{self.emails} email{'s' if self.emails != 1 else ''}"
        if self.weeks:
            head += f" over {self.weeks} week{'s' if self.weeks != 1 else ''}"
        first = "the first straight away" if self.first_at_once else "the first within a day"
        if self.emails == 1:
            return f"{head}: {first}"
        if self.gap_max_days <= 9 and self.gap_min_days >= 5:
            rest = "then about one a week"
        elif self.gap_min_days == self.gap_max_days:
            rest = f"then one every {self.gap_min_days} days"
        else:
            rest = (f"then one every {self.gap_min_days} to {self.gap_max_days} days "
                    f"(about {'one' if self.gap_max_days >= 5 else 'two'} a week)")
        return f"{head}: {first}, {rest}"

    @property
    def sentence(self) -> str:
        return f"{self.plan}, {NEWSLETTER}."


def cadence(sequence: Sequence) -> Cadence:
    steps = list(sequence.steps)
    if not steps:
        return Cadence(0, 0, 0, 0, True)
    total = sum((s.delay for s in steps), timedelta(0))
    gaps = [s.delay for s in steps[1:]] or [timedelta(0)]
    return Cadence(
        emails=len(steps),
        weeks=max(1, round(total / timedelta(weeks=1))) if total else 0,
        gap_min_days=round(min(gaps) / timedelta(days=1)),
        gap_max_days=round(max(gaps) / timedelta(days=1)),
        first_at_once=steps[0].delay <= timedelta(hours=1),
    )
