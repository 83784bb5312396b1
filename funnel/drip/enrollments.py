"""Who is in which sequence, as plain rows of a worker batch (issue 25).

Loaded with the batch (one SELECT) and written with it (``flush``: one INSERT of
new rows, ON CONFLICT DO NOTHING since the set-based starts of
``funnel.automation`` may have made the same row meanwhile, and one UPDATE per
settled row), in the batch's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from funnel.core.states import EnrollmentState
from funnel.drip.multiplan import Change, EnrollmentView
from funnel.models import SequenceEnrollment

E = SequenceEnrollment


@dataclass(slots=True, eq=False)
class EnrollmentRow:
    subscriber_id: int
    sequence: str
    state: str
    started_at: datetime
    ended_at: datetime | None = None
    reason: str | None = None
    stored: tuple | None = None  # (state, ended_at, reason) as read; None: a new row

    def view(self) -> EnrollmentView:
        return EnrollmentView(self.sequence, self.state, self.started_at)

    def values(self) -> tuple:
        return (self.state, self.ended_at, self.reason)


def load(conn: Connection, ids: list[int]) -> dict[int, list[EnrollmentRow]]:
    out: dict[int, list[EnrollmentRow]] = {i: [] for i in ids}
    if not ids:
        return out
    for row in conn.execute(select(E.subscriber_id, E.sequence, E.state, E.started_at,
                                   E.ended_at, E.reason).where(E.subscriber_id.in_(ids))):
        r = EnrollmentRow(*row)
        r.stored = r.values()
        out[r.subscriber_id].append(r)
    return out


def apply(rows: list[EnrollmentRow], changes: tuple[Change, ...]) -> None:
    for change in changes:
        for r in rows:
            if r.sequence == change.sequence and r.state != EnrollmentState.STOPPED:
                ended = None if change.state == EnrollmentState.ACTIVE else change.at
                r.state, r.ended_at, r.reason = change.state, ended, change.reason[:200]


def start(rows: list[EnrollmentRow], subscriber_id: int, sequence: str, at: datetime) -> None:
    if not any(r.sequence == sequence for r in rows):
        rows.append(EnrollmentRow(subscriber_id, sequence, EnrollmentState.ACTIVE, at))


def _insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(E)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(E)


def flush(session: Session, rows: list[EnrollmentRow]) -> None:
    new = [r for r in rows if r.stored is None]
    if new:
        session.execute(_insert(session).on_conflict_do_nothing(), [
            {"subscriber_id": r.subscriber_id, "sequence": r.sequence, "state": r.state,
             "started_at": r.started_at, "ended_at": r.ended_at, "reason": r.reason}
            for r in new])
    changed = [r for r in rows if r.stored is not None and r.stored != r.values()]
    for r in changed:
        assert r.stored is not None
        # Only the state we read is changed: a rule's ``stop`` made meanwhile stays.
        session.execute(update(E).where(E.subscriber_id == r.subscriber_id,
                                        E.sequence == r.sequence,
                                        E.state == r.stored[0])
                        .values(state=r.state, ended_at=r.ended_at, reason=r.reason))
    for r in rows:
        r.stored = r.values()


def seen_since(session: Session, names: list[str], now: datetime) -> dict[str, datetime]:
    """When each sequence first appeared (recorded on first sight, by whichever
    worker is first): a sequence that starts on confirming takes only people
    confirmed from then on. The caller commits."""
    from funnel.models import AppState

    keys = [f"sequence_seen:{n}" for n in names]
    missing = set(keys) - {k for (k,) in session.execute(
        select(AppState.key).where(AppState.key.in_(keys)))}
    if missing:
        stmt = _insert_state(session).on_conflict_do_nothing()
        session.execute(stmt, [{"key": k, "value": now.isoformat()} for k in sorted(missing)])
    found = {k: v for k, v in session.execute(
        select(AppState.key, AppState.value).where(AppState.key.in_(keys)))}
    return {n: datetime.fromisoformat(found.get(f"sequence_seen:{n}", now.isoformat()))
            for n in names}


def _insert_state(session: Session):
    from funnel.models import AppState

    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(AppState)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(AppState)
