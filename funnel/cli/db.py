"""``flask --app funnel db …``: migrations."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from funnel import db as database
from funnel.operations import backup

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

@db_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(path: Path) -> None:
    """Copy the SQLite database to PATH while everything keeps running."""
    url = current_app.config["DATABASE_URL"]
    try:
        source = backup.sqlite_path(url)
        if source is None:
            raise click.ClickException(backup.pg_dump_hint(url))
        size = backup.backup_sqlite(
            source, path, busy_ms=int(float(current_app.config["SQLITE_BUSY_TIMEOUT"]) * 1000))
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backed up {source} to {path} ({size / 1024:.0f} KiB)")
