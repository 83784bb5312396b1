"""The fallback's state in the database: written after each worker pass, read back
by every worker process, the dashboard and ``flask status``.

Not written during a send: the worker then holds SQLite's write lock in the
session that sends, and a second connection would wait on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from funnel.models import AppState
from funnel.transports.fallback import STATE_KEY, FallbackState, FallbackTransport


def fallback_of(transport: Any) -> FallbackTransport | None:
    """The FallbackTransport inside the app's (metered) transport, if any."""
    inner = getattr(transport, "inner", transport)
    return inner if isinstance(inner, FallbackTransport) else None


def load(session: Session) -> FallbackState | None:
    row = session.get(AppState, STATE_KEY)
    return FallbackState.from_json(row.value) if row is not None else None


def sync(sessions: sessionmaker[Session], transport: Any) -> None:
    """Save what this worker learnt, or take what another worker saved."""
    fallback = fallback_of(transport)
    if fallback is None:
        return
    with sessions() as s:
        row = s.get(AppState, STATE_KEY)
        if fallback.dirty:
            if row is None:
                s.add(AppState(key=STATE_KEY, value=fallback.state.to_json()))
            else:
                row.value = fallback.state.to_json()
            s.commit()
            fallback.dirty = False
        elif row is not None:
            fallback.state = FallbackState.from_json(row.value)
