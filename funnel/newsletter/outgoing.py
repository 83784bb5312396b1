"""What both ways of sending a newsletter batch share (the ORM objects of
``plain_batch`` and the plain rows of ``row_batch``): who must not get it now,
the delivery's key, and the issue's emails composed a batch at a time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from funnel.core import lifecycle
from funnel.core.sequence import EmailSource
from funnel.models import OUTCOME_LEFT, OUTCOME_PAUSED, Broadcast
from funnel.newsletter import subject_tests
from funnel.newsletter.scheduling import REASON, frozen_source, mark_finished
from funnel.transports import Message

# A broadcast whose frozen copy cannot be rendered (it passed the check when it
# was scheduled, so this means a bug or a changed layout) is looked at again later.
RENDER_RECHECK = timedelta(minutes=5)


@dataclass
class BroadcastReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    decided: list[str] = field(default_factory=list)  # slugs whose subject test was decided


def delivery_key(d: Any) -> str:
    """Outbox file name and provider key: stable, so a resend replaces, never adds."""
    return f"{d.created_at:%Y%m%dT%H%M%S}-{d.step_slug}-{d.public_id}"


def settle(rec: Any, outcome: str) -> None:
    """The reader's turn is over: nothing more to send them of this issue."""
    rec.outcome, rec.due_at, rec.lease_until = outcome, None, None


def finish_issues(sessions: sessionmaker[Session], touched: set[int], now: datetime) -> None:
    """After a batch: the issues with nobody left to do are sent."""
    with sessions() as s:
        for row_id in touched:
            mark_finished(s, row_id, now)
        s.commit()


def why_not(sub: Any, now: datetime) -> str | None:
    """The outcome for someone who must not get a broadcast now, else None."""
    if sub.status != lifecycle.CONFIRMED or not sub.wants_newsletter:
        return OUTCOME_LEFT
    if sub.paused_until is not None and sub.paused_until > now:
        return OUTCOME_PAUSED  # the pause means no email: not kept for later
    return None


# One email to make: the issue, the reader's subject (a subject test's variant or
# None), the reader (a Subscriber or a row with the same fields) and the delivery.
Wanted = tuple[Broadcast, int | None, Any, Any]


class Issues:
    """The issues' frozen copies, read once per worker, composed a batch at a time."""

    def __init__(self, composer, emails_dir: str) -> None:
        self.composer = composer
        self.emails_dir = emails_dir
        self._sources: dict[tuple[int, str, int | None], EmailSource] = {}

    def source(self, row: Broadcast, variant: int | None = None) -> EmailSource:
        """The issue's frozen copy, with the reader's subject in a subject test."""
        key = (row.id, row.source, variant)
        src = self._sources.get(key)
        if src is None:
            src = frozen_source(row, self.emails_dir)
            if variant is not None:
                # The reader's subject in a subject test, fixed on their row before sending.
                subject = subject_tests.subjects_of(row)[variant]
                src = dataclasses.replace(src, meta={**src.meta, "subject": subject})
            self._sources[key] = src
        return src

    def render(self, wanted: list[Wanted], now: datetime) -> list[Message | Exception]:
        """Each email, in order; one that cannot be made is its exception. The
        readers of one issue are composed together (``Composer.messages``), so what
        they share (the files, the layout, the shared body's template) is worked
        out once, as the plan's step does."""
        out: list[Message | Exception] = [ValueError("not rendered")] * len(wanted)
        # One group per issue and subject: a subject test's readers differ only there.
        groups: dict[tuple[int, int | None], list[int]] = {}
        for i, (row, variant, _sub, _d) in enumerate(wanted):
            groups.setdefault((row.id, variant), []).append(i)
        for (_issue, variant), places in groups.items():
            row = wanted[places[0]][0]
            try:
                src = self.source(row, variant)
            except Exception as exc:  # noqa: BLE001  (the frozen copy is broken: all held)
                for i in places:
                    out[i] = exc
                continue
            made = self.composer.messages(
                src, [(wanted[i][2], delivery_key(wanted[i][3]), wanted[i][3].public_id)
                      for i in places],
                now=now, category=row.slug, extra={"reason": REASON})
            for i, msg in zip(places, made, strict=True):
                out[i] = msg
        return out
