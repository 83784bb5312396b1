"""What one app instance holds: settings, the database, the composer and transport."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from funnel.config import Settings
from funnel.db import make_engine, make_sessionmaker
from funnel.drip.worker import Worker
from funnel.mail.compose import Composer
from funnel.transports import Transport, make_transport


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    composer: Composer
    transport: Transport
    clock: Callable[[], datetime]
    # Set when something becomes due now (a confirmation), so an embedded
    # worker wakes at once instead of at its next poll.
    wake: threading.Event


def init_app(app: Flask) -> None:
    settings = Settings.from_config(app.config)
    engine = make_engine(app.config["DATABASE_URL"])
    clock = app.config.get("CLOCK") or utcnow
    app.extensions["funnel"] = Runtime(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        composer=Composer(settings, clock),
        transport=app.config.get("TRANSPORT") or make_transport(app.config),
        clock=clock,
        wake=threading.Event(),
    )
    app.teardown_appcontext(_close_session)


def rt() -> Runtime:
    """The current app's runtime: for views and CLI commands."""
    return current_app.extensions["funnel"]  # type: ignore[no-any-return]


def make_worker(runtime: Runtime) -> Worker:
    """A drip worker wired to this app's database, transport and settings."""
    return Worker(runtime.sessions, runtime.settings, runtime.transport)


def session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = rt().sessions()
    return g.db_session


def now() -> datetime:
    return rt().clock()


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
