"""``flask --app funnel status``: what /readyz says, for a shell, plus the backlog."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from funnel.control import mail_health
from funnel.operations import health
from funnel.runtime import rt


@click.command("status")
@with_appcontext
def status_command() -> None:
    """Database, migrations, worker heartbeat and backlog; exit 1 when not ready."""
    cfg = current_app.config
    runtime = rt()
    results = health.checks(runtime.engine, float(cfg["READY_WORKER_MAX_AGE"]),
                            busy_ms=int(float(cfg["SQLITE_BUSY_TIMEOUT"]) * 1000))
    for c in results:
        click.echo(f"{c.name:<11} {'ok' if c.ok else 'NOT READY':<10} {c.detail}")
    try:
        with runtime.sessions() as s:
            count, age = health.backlog(s, runtime.clock())
        click.echo(f"{'due now':<11} {count:<10} oldest {age:.0f} s late")
    except SQLAlchemyError:
        click.echo(f"{'due now':<11} unknown")
    try:
        with runtime.sessions() as s:
            health_lines = mail_health.read(s, bool(runtime.settings.mail_fallback)).lines
    except SQLAlchemyError:
        health_lines = []
    for level, text in health_lines:
        click.echo(f"{'sending':<11} {level:<10} {text}")
    if not all(c.ok for c in results):
        sys.exit(1)
