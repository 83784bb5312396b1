"""What the admin shows of sequences and rules (issue 25): a few grouped queries
each, never one per subscriber."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funnel.core.sequences import SequenceDef
from funnel.core.states import EnrollmentState
from funnel.models import Delivery, RuleFiring, SequenceEnrollment, Subscriber

E = SequenceEnrollment
SENT_STATES = ("sent", "unknown")


@dataclass(frozen=True)
class StepFigures:
    slug: str
    subject: str
    sent: int         # readers who had it
    waiting: int      # active readers whose latest email of this sequence is the one before
    drop_off: float   # share of those who had the previous step and not this one (settled)


def sequence_figures(session: Session, d: SequenceDef) -> tuple[dict[str, int], list[StepFigures]]:
    """Readers per state, and per step how many had it, who waits for it, drop-off."""
    states = {str(s): 0 for s in EnrollmentState}
    for state, n in session.execute(select(E.state, func.count()).where(E.sequence == d.name)
                                    .group_by(E.state)):
        states[state] = int(n)
    slugs = [s.slug for s in d.steps]
    sent = dict.fromkeys(slugs, 0)
    for slug, n in session.execute(
            select(Delivery.step_slug, func.count()).where(Delivery.step_slug.in_(slugs),
                                                           Delivery.state.in_(SENT_STATES))
            .group_by(Delivery.step_slug)):
        sent[slug] = int(n)
    # Each active reader's number of steps had: who is at which step.
    had = (select(E.subscriber_id, func.count(Delivery.id).label("n"))
           .join(Delivery, (Delivery.subscriber_id == E.subscriber_id)
                 & Delivery.step_slug.in_(slugs) & Delivery.state.in_(SENT_STATES),
                 isouter=True)
           .where(E.sequence == d.name, E.state == EnrollmentState.ACTIVE)
           .group_by(E.subscriber_id).subquery())
    at = dict.fromkeys(range(len(slugs) + 1), 0)
    for n, count in session.execute(select(had.c.n, func.count()).group_by(had.c.n)):
        at[int(n)] = int(count)
    out: list[StepFigures] = []
    before = states[EnrollmentState.ACTIVE] + states[EnrollmentState.FINISHED] \
        + states[EnrollmentState.STOPPED]
    for i, step in enumerate(d.steps):
        settled = before - at.get(i, 0)
        drop = 1 - sent[step.slug] / settled if settled > 0 else 0.0
        out.append(StepFigures(step.slug, step.subject, sent[step.slug], at.get(i, 0),
                               max(drop, 0.0)))
        before = sent[step.slug]
    return states, out


def rule_counts(session: Session) -> dict[str, tuple[int, object]]:
    """Each rule's firings and the last one's time."""
    return {rule: (int(n), last) for rule, n, last in session.execute(
        select(RuleFiring.rule, func.count(), func.max(RuleFiring.fired_at))
        .group_by(RuleFiring.rule))}


def last_firings(session: Session, rule: str, limit: int = 50) -> list[tuple]:
    return list(session.execute(
        select(RuleFiring.fired_at, Subscriber.email, Subscriber.public_id, RuleFiring.trigger)
        .join(Subscriber, Subscriber.id == RuleFiring.subscriber_id)
        .where(RuleFiring.rule == rule)
        .order_by(RuleFiring.fired_at.desc(), RuleFiring.id.desc()).limit(limit)))


def subscriber_history(session: Session, subscriber_id: int) -> tuple[list, list]:
    """Their sequences (name, state, started, ended, why) and rule firings."""
    seqs = list(session.execute(select(E.sequence, E.state, E.started_at, E.ended_at, E.reason)
                                .where(E.subscriber_id == subscriber_id)
                                .order_by(E.started_at)))
    fired = list(session.execute(select(RuleFiring.rule, RuleFiring.fired_at)
                                 .where(RuleFiring.subscriber_id == subscriber_id)
                                 .order_by(RuleFiring.fired_at.desc()).limit(100)))
    return seqs, fired
