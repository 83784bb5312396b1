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


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
@click.option("--rev-id", help="The revision's id (default: a random one), e.g. 0003.")
@click.option("--autogenerate", is_flag=True,
              help="Compare the models with the database (upgraded first) and write the difference.")
def db_revision(message: str, rev_id: str | None, autogenerate: bool) -> None:
    """Write a new migration file into funnel/migrations/versions/."""
    from alembic import command

    url = current_app.config["DATABASE_URL"]
    if autogenerate:
        database.upgrade(url)  # compare against the latest schema, not an empty file
    script = command.revision(database.alembic_config(url), message=message,
                              autogenerate=autogenerate, rev_id=rev_id)
    for made in script if isinstance(script, list) else [script]:
        if made is not None:
            click.echo(f"wrote {made.path}")
