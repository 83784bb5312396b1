"""``flask --app funnel db …``: migrations."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel import db as database

db_cli = AppGroup("db", help="Database migrations.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (safe to run again)."""
    database.upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is up to date")


