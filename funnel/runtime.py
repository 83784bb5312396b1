"""What one app instance holds: settings, the database, the composer and transport."""

from __future__ import annotations

import logging
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

from funnel.automation import Automation
from funnel.config import ConfigError, Settings
from funnel.core.sequences import SequencesFiles
from funnel.db import make_engine, make_intake_engine, make_sessionmaker
from funnel.drip.batches import Batches
from funnel.drip.planner import Rules
from funnel.drip.store import Store
from funnel.hooks import capture
from funnel.hooks.dispatch import Dispatcher, HookSettings
from funnel.mail.compose import Composer
from funnel.mail.sending import MAX_ATTEMPTS
from funnel.newsletter.work import BroadcastWork
from funnel.transports import Transport, make_transport
from funnel.worker.loop import Worker
from funnel.worker.pieces import Every, Step, Stop
from funnel.worker.report import PassReport

log = logging.getLogger(__name__)

# How often a worker folds the tallies inside a long pass (a send): each email
# adds delta rows, and reads sum every row not yet folded.
FOLD_IN_PASS_SECONDS = 10.0


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
    from funnel.transports.metered import MeteredTransport

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
    from funnel.control.mail_state import fallback_of

    fallback = fallback_of(transport)
    if fallback is not None:
        fallback.clock = clock  # FALLBACK_AFTER counts on the app's clock
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
        intake_engine=_intake_engine(engine, app.config),
    )
    app.teardown_appcontext(_close_session)


def _intake_engine(engine: Engine, config: Any) -> Engine:
    """The sign-up INSERT's engine (``funnel.db.make_intake_engine``). On PostgreSQL
    its rows go through a writer thread per process that commits the rows of
    concurrent requests together (SIGNUP_GROUP_COMMIT, on by default;
    ``funnel.subscribers.intake_writer``): SQLite's intake is the app's engine."""
    intake = make_intake_engine(engine, float(config.get("DATABASE_CONNECT_TIMEOUT", 5.0)),
                                async_commit=bool(config.get("SIGNUP_ASYNC_COMMIT")))
    if intake is not engine and config.get("SIGNUP_GROUP_COMMIT", True):
        from funnel.subscribers import intake_writer

        intake_writer.group(intake)
    return intake


def rt() -> Runtime:
    """The current app's runtime: for views and CLI commands."""
    return current_app.extensions["funnel"]


def planner_rules(settings: Settings, transport: Transport) -> Rules:
    """The drip planner's rules, from the settings and what the transport promises."""
    return Rules(
        window=(settings.window_start, settings.window_end),
        min_gap=timedelta(hours=settings.catchup_min_gap_hours),
        max_attempts=MAX_ATTEMPTS, default_timezone=settings.default_timezone,
        resend_interrupted=transport.idempotent,
    )


def make_worker(runtime: Runtime, *, transport: Transport | None = None,
                composer: Composer | None = None,
                clock: Callable[[], datetime] | None = None,
                purge: bool = True) -> Worker:
    """A worker wired to this app's database, transport and settings; each part
    can be swapped (tests inject faults through ``transport`` or ``composer``).
    Its pieces, in the order of a pass: the purge of old unconfirmed sign-ups
    (hourly) and the folding of the dashboard's tallies (each minute), the sign-up
    intake, system mail (confirmations), the admins' test sends, the drip, the
    newsletter's broadcasts, the chores (imports, alerts) and the webhook outbox.
    ``purge=False`` leaves the unconfirmed sign-ups alone (a rehearsal with a future
    ``--now``)."""
    settings = runtime.settings
    sessions = runtime.sessions
    transport = transport or runtime.transport
    clock = clock or runtime.clock
    store = Store(
        sessions,
        owner=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
        batch_size=settings.batch_size, lease_seconds=settings.lease_seconds,
    )
    # Its own composer: the web threads' one caches templates unsynchronised.
    composer = composer or Composer(settings, clock)
    from funnel.reporting import tallies

    def fold(_now: datetime, _stop: Stop) -> PassReport:
        with sessions() as s:
            folded = tallies.compact(s)
            s.commit()
        if folded:
            tallies.vacuum(runtime.engine)
        return PassReport()

    # Within a long pass too (an issue to a million readers is one pass): the triggers
    # write a delta row per email, and the dashboard and the page sum them.
    fold_in_pass = Every(FOLD_IN_PASS_SECONDS, Step("fold tallies in the pass", fold))

    def between_batches() -> None:
        try:
            fold_in_pass(clock(), None)
        except Exception:  # the send goes on; the pass's own fold tries again
            log.exception("folding the tallies between batches failed")

    batches = Batches(store, composer, transport, sequence=SequencesFiles(settings.emails_dir),
                      rules=planner_rules(settings, transport), between_batches=between_batches)
    # The newsletter's broadcasts go through the same send step, on their own to-do list.
    from funnel.control import brakes

    broadcasts = BroadcastWork(sessions, composer, transport, owner=store.owner,
                               emails_dir=settings.emails_dir, batch_size=settings.batch_size,
                               lease_seconds=settings.lease_seconds, max_attempts=MAX_ATTEMPTS,
                               allowance=lambda at: brakes.newsletter_allowance(
                                   sessions, settings, transport, at),
                               default_timezone=settings.default_timezone,
                               fast=settings.fast_newsletter, clock=runtime.clock,
                               between_batches=between_batches)
    hooks = Dispatcher(sessions, runtime.hook_settings)
    automation = Automation(sessions, settings.emails_dir)
    from funnel.control import chores, mail_state
    from funnel.studio import test_sends
    from funnel.subscribers import intake as signup_intake
    from funnel.subscribers import retention

    try:  # a restarted worker carries on with the transport the others are using
        mail_state.sync(sessions, transport)
    except Exception:  # no schema yet: the first pass will tell
        pass
    retain = timedelta(days=settings.pending_retention_days)

    def purge_pending(now: datetime, _stop: Stop) -> PassReport:
        with sessions() as s:
            purged = retention.purge_unconfirmed(s, now, retain)
            tests = test_sends.forget_old(s, now)
        if purged:
            log.info("deleted %d sign-ups never confirmed", purged)
        if tests:
            log.info("deleted %d finished test sends over a month old", tests)
        return PassReport(purged=purged)

    def intake(_now: datetime, stop: Stop) -> PassReport:
        # Sign-ups first, so their confirmations go out in this same pass.
        report = PassReport()
        while not (stop and stop.is_set()):
            taken = signup_intake.take_intake(sessions, limit=settings.batch_size)
            report.taken_in += taken.taken
            if taken.taken + taken.refused < settings.batch_size:
                break
        return report

    def rules(now: datetime, _stop: Stop) -> PassReport:
        # Set-based starts of sequences and the coach's rules, before the drip so
        # what they start is claimed in this same pass.
        automation(batches.load_sequence(), now)
        return PassReport()

    def drip(now: datetime, stop: Stop) -> PassReport:
        # The brakes pause sequences too; confirmations (system mail) never wait.
        if brakes.evaluate(sessions, settings, transport, now).paused:
            return PassReport()
        return batches.drip(now, stop)

    def newsletter(now: datetime, stop: Stop) -> PassReport:
        done = broadcasts.run(now, stop)
        return PassReport(sent=done.sent, failed=done.failed, retried=done.retried,
                          skipped=done.skipped, claimed=done.claimed)

    def chore(now: datetime, _stop: Stop) -> PassReport:
        chores.after_pass(sessions, settings, transport, now)
        return PassReport()

    def tests(now: datetime, stop: Stop) -> PassReport:
        done = test_sends.drain(sessions, composer, transport, settings.emails_dir, now,
                                owner=store.owner, lease_seconds=settings.lease_seconds,
                                stop=stop)
        return PassReport(sent=done.sent, failed=done.failed, retried=done.retried,
                          claimed=done.claimed)

    def webhooks(now: datetime, stop: Stop) -> PassReport:
        return PassReport(hooks=hooks.run(now, stop))

    # Storage limitation, at most hourly: the query reads the whole pending list.
    return Worker([
        *([Every(3600, Step("purge", purge_pending, urgent=True))] if purge else []),
        # Folding keeps the dashboard's reads cheap; once a minute is enough.
        Every(60, Step("fold tallies", fold, urgent=True)),
        Step("intake", intake, urgent=True),
        Step("system mail", batches.system_mail, urgent=True),
        # A coach waiting for a test sees it within seconds; the brakes never hold it.
        Step("test sends", tests, urgent=True),
        Step("rules", rules),
        Step("drip", drip),
        Step("newsletter", newsletter),
        Step("chores", chore),
        Step("webhooks", webhooks),
    ], clock, name=store.owner, guarded=frozenset({"intake"}), on_stop=(hooks.cancel.cancel,))


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
