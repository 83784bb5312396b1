"""What one app instance holds: settings, the database, the composer and transport."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from funnel.config import ConfigError, Settings
from funnel.core.sequence import SequenceFiles
from funnel.db import make_engine, make_intake_engine, make_sessionmaker
from funnel.drip.planner import Rules
from funnel.drip.store import Store
from funnel.drip.worker import Worker
from funnel.hooks import capture
from funnel.hooks.dispatch import Dispatcher, HookSettings
from funnel.mail.compose import Composer
from funnel.newsletter.work import BroadcastWork
from funnel.sending import MAX_ATTEMPTS
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
    # How the worker delivers webhooks (timeouts, caps, private addresses).
    hook_settings: HookSettings = field(default_factory=HookSettings)
    # The sign-up form's one INSERT (funnel.db.make_intake_engine); None: ``engine``.
    intake_engine: Engine | None = None

    def intake(self) -> Engine:
        return self.intake_engine or self.engine


def init_app(app: Flask) -> None:
    settings = Settings.from_config(app.config)
    from funnel.operations.wiring import MeteredTransport

    try:
        # DATABASE_NULL_POOL (tests): every session closes its connection, so the many
        # short-lived apps of a test run never pile up idle server connections.
        pool: dict[str, Any] = {"poolclass": NullPool} if app.config.get("DATABASE_NULL_POOL") else {}
        engine = make_engine(app.config["DATABASE_URL"],
                             busy_timeout=float(app.config.get("SQLITE_BUSY_TIMEOUT", 5.0)),
                             connect_timeout=float(app.config.get("DATABASE_CONNECT_TIMEOUT", 5.0)),
                             **pool)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(f"DATABASE_URL cannot be used: {str(exc).splitlines()[0]}") from exc
    clock = app.config.get("CLOCK") or utcnow
    transport = MeteredTransport(app.config.get("TRANSPORT") or make_transport(app.config),
                                 str(app.config.get("MAIL_TRANSPORT", "outbox")))
    sessions = make_sessionmaker(engine)
    # Every event the app's sessions flush is written to the webhook outbox with it.
    capture.install(sessions, clock)
    app.extensions["funnel"] = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        composer=Composer(settings, clock),
        transport=transport,
        clock=clock,
        wake=threading.Event(),
        hook_settings=HookSettings.from_config(app.config),
        intake_engine=make_intake_engine(
            engine, float(app.config.get("DATABASE_CONNECT_TIMEOUT", 5.0)),
            async_commit=bool(app.config.get("SIGNUP_ASYNC_COMMIT"))),
    )
    app.teardown_appcontext(_close_session)


def rt() -> Runtime:
    """The current app's runtime: for views and CLI commands."""
    return current_app.extensions["funnel"]


def make_worker(runtime: Runtime, *, transport: Transport | None = None,
                composer: Composer | None = None,
                clock: Callable[[], datetime] | None = None) -> Worker:
    """A worker wired to this app's database, transport and settings; each part
    can be swapped (tests inject faults through ``transport`` or ``composer``)."""
    settings = runtime.settings
    transport = transport or runtime.transport
    clock = clock or runtime.clock
    store = Store(
        runtime.sessions,
        owner=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
        batch_size=settings.batch_size, lease_seconds=settings.lease_seconds,
    )
    rules = Rules(
        window=(settings.window_start, settings.window_end),
        min_gap=timedelta(hours=settings.catchup_min_gap_hours),
        max_attempts=MAX_ATTEMPTS, default_timezone=settings.default_timezone,
        resend_interrupted=transport.idempotent,
    )
    # Its own composer: the web threads' one caches templates unsynchronised.
    composer = composer or Composer(settings, clock)
    # The newsletter's broadcasts go through the same send step, on their own to-do list.
    broadcasts = BroadcastWork(runtime.sessions, composer, transport, owner=store.owner,
                               emails_dir=settings.emails_dir, batch_size=settings.batch_size,
                               lease_seconds=settings.lease_seconds, max_attempts=MAX_ATTEMPTS,
                               default_timezone=settings.default_timezone)
    from funnel.control import chores

    return Worker(store, composer, transport, clock,
                  sequence=SequenceFiles(settings.emails_dir), rules=rules,
                  pending_retention=timedelta(days=settings.pending_retention_days),
                  after_pass=lambda now: chores.after_pass(runtime.sessions, settings, transport,
                                                           now),
                  # The webhook outbox is delivered as one more step of each pass.
                  hooks=Dispatcher(runtime.sessions, runtime.hook_settings),
                  pieces=[broadcasts.run])


def session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = rt().sessions()
    return g.db_session


def now() -> datetime:
    """The time of this request: read once, so every decision in it agrees
    (two readings a few milliseconds apart once kept a failed send from retrying)."""
    if not has_request_context():
        return rt().clock()
    if "request_now" not in g:
        g.request_now = rt().clock()
    return g.request_now


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
