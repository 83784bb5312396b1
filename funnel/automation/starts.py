"""Sequences that start on a tag or on finishing another sequence: set-based.

Each pass, per such sequence, one ``INSERT … SELECT … ON CONFLICT DO NOTHING``
enters everyone whose trigger happened since the sequence's mark (minus a lag
for transactions that committed late), and one ``UPDATE`` makes them due now, so
the drip claims them in the same pass. 100,000 people tagged at once are two
statements, not 100,000 round trips. The PRIMARY KEY (subscriber, sequence)
makes a second start, by another worker or a rerun, a no-op: a sequence is
entered at most once per subscriber.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, literal, or_, select, update
from sqlalchemy.orm import Session

from funnel.core.sequences import SequenceDef, Sequences
from funnel.core.states import EnrollmentState, SubscriberStatus
from funnel.models import AppState, SequenceEnrollment, Subscriber, SubscriberTag
from funnel.models.base import UTCDateTime

# A trigger stamped before its transaction committed is still seen by the next pass.
LAG = timedelta(minutes=10)
E = SequenceEnrollment


def dialect_insert(session: Session, model):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model)


def _mark(session: Session, key: str, default: datetime) -> datetime:
    value = session.scalar(select(AppState.value).where(AppState.key == key))
    return datetime.fromisoformat(value) if value else default


def _set_mark(session: Session, key: str, now: datetime) -> None:
    stmt = dialect_insert(session, AppState).values(key=key, value=now.isoformat())
    session.execute(stmt.on_conflict_do_update(index_elements=["key"],
                                               set_={"value": now.isoformat()}))


def triggered(d: SequenceDef, since: datetime) -> Select | None:
    """Who set off ``d``'s start since ``since`` (subscriber ids), or None."""
    if d.start.kind == "tag":
        return (select(SubscriberTag.subscriber_id)
                .where(SubscriberTag.tag == d.start.value, SubscriberTag.added_at >= since))
    if d.start.kind == "finished":
        return (select(E.subscriber_id)
                .where(E.sequence == d.start.value, E.state == EnrollmentState.FINISHED,
                       E.ended_at >= since))
    return None  # "confirmed" and "source" are entered by the drip as it confirms them


def enter(session: Session, name: str, who: Select, now: datetime) -> int:
    """Put everyone ``who`` selects into sequence ``name`` (once) and make them due."""
    rows = (select(Subscriber.id, literal(name), literal(str(EnrollmentState.ACTIVE)),
                   literal(now, UTCDateTime()))
            .where(Subscriber.id.in_(who)))
    stmt = (dialect_insert(session, E)
            .from_select(["subscriber_id", "sequence", "state", "started_at"], rows)
            .on_conflict_do_nothing().returning(E.subscriber_id))
    entered = len(session.execute(stmt).all())
    if entered:
        just_in = select(E.subscriber_id).where(E.sequence == name, E.started_at == now,
                                                E.state == EnrollmentState.ACTIVE)
        session.execute(update(Subscriber).where(Subscriber.id.in_(just_in))
                        .where(or_(Subscriber.next_due_at.is_(None),
                                   Subscriber.next_due_at > now))
                        .where(Subscriber.status == SubscriberStatus.CONFIRMED)
                        .values(next_due_at=now))
    return entered


def start_sequences(session: Session, sequences: Sequences, now: datetime) -> dict[str, int]:
    """Every tag- or finish-started sequence's new entrants; the caller commits."""
    out: dict[str, int] = {}
    for d in sequences.defs:
        seen = _mark(session, f"sequence_seen:{d.name}", now)
        since = _mark(session, f"sequence_mark:{d.name}", seen)
        who = triggered(d, max(seen, since - LAG))
        if who is None:
            continue
        out[d.name] = enter(session, d.name, who, now)
        _set_mark(session, f"sequence_mark:{d.name}", now)
    return out
