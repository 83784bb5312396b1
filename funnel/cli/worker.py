"""``flask --app funnel worker|serve|sequence|schedule``: the drip engine from a shell."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import Engine, event

from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.sequence import load_sequence
from funnel.core.states import SubscriberStatus
from funnel.drip import planner
from funnel.drip.batches import view
from funnel.operations.health import Heartbeat
from funnel.runtime import make_worker, planner_rules
from funnel.runtime import rt as _rt
from funnel.subscribers import queries
from funnel.transports import AuthError


def parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)  # 3.11 reads a trailing "Z" itself
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _patient_on_sqlite(engine: Engine) -> None:
    """A standalone worker waits up to WORKER_SQLITE_BUSY_TIMEOUT (120 s) for SQLite's one
    write lock: other workers hold it in turn, and no visitor's request waits on it (web
    processes keep SQLITE_BUSY_TIMEOUT, far below gunicorn's timeout)."""
    if engine.dialect.name != "sqlite":
        return
    wait_ms = int(float(os.environ.get("WORKER_SQLITE_BUSY_TIMEOUT") or 120) * 1000)

    @event.listens_for(engine, "connect")
    def _wait(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={wait_ms}")
        cur.close()

    engine.dispose()  # connections made from now on wait that long


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Do one pass, then exit.")
@click.option("--now", "now_text", metavar="ISO-TIME", help="Run as if it were this time.")
def worker_command(once: bool, now_text: str | None) -> None:
    """Send what is due; runs until SIGTERM (finishing its batch first)."""
    from funnel.operations import preflight

    rt = _rt()
    problems = preflight.problems(current_app.config)
    if problems:
        raise click.ClickException("; ".join(problems))
    _patient_on_sqlite(rt.engine)
    fixed = parse_now(now_text)
    clock = (lambda: fixed) if fixed else rt.clock
    worker = make_worker(rt, clock=clock)
    heartbeat = Heartbeat(rt.sessions, worker.name)
    if once:
        heartbeat.beat(force=True)
        try:
            report = worker.run_pass()
        except AuthError as exc:
            raise click.ClickException(f"the mail provider refused our credentials: {exc}") from exc
        click.echo(
            f"sent {report.sent}, retrying {report.retried}, failed {report.failed}, "
            f"skipped {report.skipped}"
        )
        return
    stop = threading.Event()
    grace = float(current_app.config["WORKER_STOP_GRACE"])

    def _stop(signum, _frame):
        if stop.is_set():
            return
        click.echo(f"received signal {signum}: finishing the current batch "
                   f"(at most {grace:g} s)", err=True)
        stop.set()
        rt.wake.set()
        # A webhook endpoint that hangs is cut off now; its message goes back.
        worker.stopping()
        overdue = threading.Timer(grace, _overdue)
        overdue.daemon = True
        overdue.start()

    def _overdue() -> None:
        # The last resort when a send outlives the grace (a provider that hangs):
        # what was claimed is safe (leases, intents committed before the send) and
        # the next worker picks it up, so leaving now loses nothing.
        click.echo(f"worker did not stop within WORKER_STOP_GRACE={grace:g} s: exiting now; "
                   "the next worker takes over what was claimed", err=True)
        os._exit(1)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        worker.run_forever(stop, current_app.config["WORKER_POLL_SECONDS"],
                           heartbeat=heartbeat.beat)
    except AuthError as exc:
        raise click.ClickException(f"the mail provider refused our credentials: {exc}") from exc
    click.echo("worker stopped cleanly", err=True)


@click.command("sequence")
@with_appcontext
def sequence_command() -> None:
    """Print the drip sequence: order, slug, delay, window, subject."""
    seq = load_sequence(_rt().settings.emails_dir)
    for i, step in enumerate(seq, 1):
        window = "default" if step.window is None else (
            "any time" if step.window == (0, 24) else f"{step.window[0]}-{step.window[1]}h")
        click.echo(f"{i:>2}  {step.slug:<28} +{_fmt_delay(step.delay):<9} {window:<9} {step.subject}")


def _fmt_delay(td) -> str:
    hours = td.total_seconds() / 3600
    if hours == 0:
        return "0"
    return f"{hours / 24:g}d" if hours % 24 == 0 else f"{hours:g}h"


@click.command("schedule")
@with_appcontext
@click.argument("email")
@click.option("--now", "now_text", metavar="ISO-TIME", help="Plan as if it were this time.")
def schedule_command(email: str, now_text: str | None) -> None:
    """Print when each step went, or will go, out to one subscriber."""
    rt = _rt()
    try:
        address = normalise_email(email)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    now = parse_now(now_text) or rt.clock()
    seq = load_sequence(rt.settings.emails_dir)
    rules = planner_rules(rt.settings, rt.transport)
    with rt.sessions() as s:
        sub = queries.subscriber_by_email(s, address)
        if sub is None:
            raise click.ClickException(f"no subscriber {address}")
        click.echo(f"{sub.email}: {sub.status}, time zone {sub.timezone}")
        for d in sorted(sub.deliveries, key=lambda d: d.id):
            when = d.sent_at or d.created_at
            click.echo(f"  {d.step_slug:<28} {d.state:<8} {when:%Y-%m-%d %H:%M} UTC")
        if sub.status != SubscriberStatus.CONFIRMED:
            click.echo("  (no further emails: not a confirmed subscriber)")
            return
        # Project the rest by pretending each step goes out when it falls due.
        subscriber, history = view(sub)
        for _ in range(10 * len(seq) + 10):  # bounded: each step waits at most twice
            decision = planner.plan(subscriber, history, seq.steps, now, rules)
            if isinstance(decision, planner.WaitUntil):
                now = decision.at
                continue
            if not isinstance(decision, planner.Send) or decision.retry:
                break
            click.echo(f"  {decision.step.slug:<28} planned  {now:%Y-%m-%d %H:%M} UTC")
            history.append(planner.DeliveryView(decision.step.slug, "sent", now, now, 1))


@click.command("serve")
@with_appcontext
@click.option("--host", default="127.0.0.1", envvar="HOST", show_default=True)
@click.option("--port", default=5000, envvar="PORT", show_default=True, type=int)
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Run the drip worker in the same process.")
def serve_command(host: str, port: int, worker: bool) -> None:
    """Development server with an embedded worker, so mail arrives without a second terminal."""
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    rt = _rt()
    if worker:
        w = make_worker(rt)
        stop = threading.Event()
        thread = threading.Thread(
            target=w.run_forever, args=(stop, 1.0, rt.wake, Heartbeat(rt.sessions, w.name).beat),
            daemon=True,
            name="embedded-worker",
        )
        thread.start()
        click.echo(f"embedded worker started; outbox: {app.config['OUTBOX_DIR']}")
    run_simple(host, port, app, threaded=True, use_reloader=False)


