"""Sends that did not go out: what the dashboard lists, and the marketer's retry.

No Flask in here. A delivery is *failed* when the provider refused it (or the
worker gave up retrying), and *held* when the email could not be rendered: the
engine keeps it until the file is fixed. Both are listed per email with their
reasons, so one typo in one email reads as one line with a count, not as 200
subscriber pages.

Retrying a failed send puts the delivery back in the ``retry`` state and makes
its subscriber due now: the worker sends it on its next pass, through the same
path (lease, lock, re-check of the status) as every other email. So a retry never
reaches someone who unsubscribed, is paused or was erased in between, and a send
that was accepted (``sent``) or may have been (``unknown``) is never retried.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from funnel.core import lifecycle
from funnel.models import Delivery, ProblemTally, Subscriber

FAILED = "failed"
HELD = "held"
RETRY = "retry"
DRIP = "drip"
PROBLEM_STATES = (FAILED, HELD)
MAX_REASONS = 5
REASON_CHARS = 300


@dataclass
class StepProblems:
    """Failed and held sends of one email, with their most common reasons."""

    slug: str
    subject: str = ""
    failed: int = 0
    held: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)
    retryable: int = 0  # failed sends whose subscriber may still be mailed

    @property
    def total(self) -> int:
        return self.failed + self.held


def _reason(error: str | None) -> str:
    text = " ".join((error or "no reason recorded").split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def by_step(session: Session, subjects: dict[str, str] | None = None) -> list[StepProblems]:
    """Every email with failed or held sends, most problems first.

    From ``problem_tally``, kept by triggers (migration 0010): at a million
    subscribers the sends themselves are tens of thousands of rows on scattered
    pages, each to be joined with its subscriber for the retryable count."""
    subjects = subjects or {}
    rows = session.execute(
        select(ProblemTally.step_slug, ProblemTally.state, ProblemTally.error,
               func.sum(ProblemTally.n), func.sum(ProblemTally.retryable))
        .group_by(ProblemTally.step_slug, ProblemTally.kind, ProblemTally.state,
                  ProblemTally.error)
    ).all()
    steps: dict[str, StepProblems] = {}
    reasons: dict[str, Counter[str]] = {}
    for slug, state, error, n, retryable in rows:
        if not n:
            continue
        _add(steps, reasons, subjects, slug, state, error, n, retryable)
    return _listed(steps, reasons)


def _add(steps: dict[str, StepProblems], reasons: dict[str, Counter[str]],
         subjects: dict[str, str], slug: str, state: str, error: str | None, n: int,
         retryable: int) -> None:
    p = steps.setdefault(slug, StepProblems(slug, subjects.get(slug, "")))
    if state == FAILED:
        p.failed += n
        p.retryable += retryable
    else:
        p.held += n
    reasons.setdefault(slug, Counter())[_reason(error)] += n


def _listed(steps: dict[str, StepProblems], reasons: dict[str, Counter[str]]
            ) -> list[StepProblems]:
    for slug, p in steps.items():
        # Ties by their text: the database returns rows in no fixed order, and the
        # panel must read the same on every load.
        p.reasons = sorted(reasons[slug].items(), key=lambda r: (-r[1], r[0]))[:MAX_REASONS]
    return sorted(steps.values(), key=lambda p: (-p.total, p.slug))


def counts(session: Session) -> dict[str, int]:
    """{"failed": n, "held": n} over the whole list (kept by triggers)."""
    got = dict(session.execute(
        select(ProblemTally.state, func.sum(ProblemTally.n)).group_by(ProblemTally.state)
    ).all())
    return {FAILED: int(got.get(FAILED) or 0), HELD: int(got.get(HELD) or 0)}


def retry(session: Session, *, now: datetime, step_slug: str | None = None,
          subscriber_id: int | None = None) -> int:
    """Queue failed sends again (of one email, of one subscriber, or both).

    Only subscribers who may receive the plan are touched; returns how many
    sends were queued. Held sends need no button: the worker sends them by
    itself once the email renders again.
    """
    if step_slug is None and subscriber_id is None:
        raise ValueError("retry needs an email or a subscriber")
    # Only steps of the plan: a confirmation that failed is asked for again by the person.
    where = [Delivery.state == FAILED, Delivery.kind == DRIP,
             Subscriber.status == lifecycle.CONFIRMED]
    if step_slug is not None:
        where.append(Delivery.step_slug == step_slug)
    if subscriber_id is not None:
        where.append(Delivery.subscriber_id == subscriber_id)
    targets = session.execute(
        select(Delivery.id, Delivery.subscriber_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id).where(and_(*where))
    ).all()
    if not targets:
        return 0
    delivery_ids = [d for d, _s in targets]
    subscriber_ids = sorted({s for _d, s in targets})
    session.execute(
        update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.state == FAILED)
        .values(state=RETRY, attempts=0, sent_at=None, retry_at=now,
                error=f"retry asked for at {now:%Y-%m-%d %H:%M} UTC")
    )
    # Due now, unless a pause holds them: the worker then sends when it ends.
    for chunk in range(0, len(subscriber_ids), 500):
        ids = subscriber_ids[chunk:chunk + 500]
        session.execute(
            update(Subscriber).where(Subscriber.id.in_(ids))
            .where((Subscriber.paused_until.is_(None)) | (Subscriber.paused_until <= now))
            .values(next_due_at=now)
        )
        session.execute(
            update(Subscriber).where(Subscriber.id.in_(ids), Subscriber.paused_until > now)
            .values(next_due_at=Subscriber.paused_until)
        )
    session.commit()
    return len(delivery_ids)
