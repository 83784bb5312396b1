"""``flask --app funnel db …``: migrations."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel import db as database

db_cli = AppGroup("db", help="Database migrations.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (safe to run again) and say what that did."""
    before, after = database.upgrade_reporting(current_app.config["DATABASE_URL"])
    if before is None:
        click.echo(f"created the database at revision {after}")
    elif before == after:
        click.echo(f"already up to date at revision {after}")
    else:
        click.echo(f"upgraded the database from revision {before} to {after}")


