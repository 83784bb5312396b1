"""``flask --app funnel subscribers …``: per-address commands for the marketer."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click
from flask.cli import AppGroup

from funnel.core import lifecycle
from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.sequences import all_steps
from funnel.importing import csv_files, export, importer
from funnel.runtime import rt as _rt
from funnel.subscribers import privacy

subscribers_cli = AppGroup("subscribers", help="Subscribers: privacy requests, import and export.")


# -- the whole list as CSV ------------------------------------------------------

MAX_BAD_SHOWN = 100


def _count_rows(path: Path) -> int:
    """Lines after the header: the progress bar's length (quoted line breaks are rare)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return max(sum(1 for _ in fh) - 1, 0)
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}). In a "
            "spreadsheet, save it as \"CSV UTF-8\"; nothing was imported.") from exc


@subscribers_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--confirmed", is_flag=True,
              help="State that everyone in the file consented to these emails: they are "
                   "imported as confirmed and start the sequence. Without it they are pending "
                   "and sent nothing.")
@click.option("--consent-source", metavar="TEXT",
              help="Where these people's consent came from (required with --confirmed); "
                   "kept in each imported person's consent record.")
def import_command(file: Path, confirmed: bool, consent_source: str | None) -> None:
    """Add subscribers from a CSV file (columns: email, first_name, optional status, source).

    Addresses already on the list are left as they are and suppressed addresses
    are refused, so running the same file again is safe. Bad rows are listed
    with their line numbers; the rest are imported.
    """
    source = " ".join((consent_source or "").split())
    if confirmed and len(source) < 5:
        raise click.UsageError(
            "--confirmed needs --consent-source TEXT: where these people agreed to receive "
            "the plan (for example \"paper sign-up sheet, Spring 10K 2026\"). Nothing was "
            "imported.")
    if len(source) > 300:
        raise click.UsageError("--consent-source: keep it under 300 characters.")
    rt = _rt()
    total = _count_rows(file)
    with file.open(encoding="utf-8-sig", newline="") as fh:
        try:
            names, rows = csv_files.read_csv(fh)
        except csv_files.ImportFileError as exc:
            raise click.ClickException(f"{file.name}: {exc}") from exc
        ignored = [n for n in names if n and n not in importer.KNOWN_COLUMNS]
        if ignored:
            click.echo(f"ignoring columns: {', '.join(ignored)}", err=True)
        with rt.sessions() as s, click.progressbar(
            length=total, label=f"Importing {file.name}", file=sys.stderr, show_pos=True,
        ) as bar:
            report = importer.import_rows(
                s, rows, confirmed=confirmed, now=rt.clock(), settings=rt.settings,
                consent_source=source or None,
                origin=file.name, progress=bar.update,
            )
    for bad in report.bad[:MAX_BAD_SHOWN]:
        click.echo(f"line {bad.line}: {bad.problem}", err=True)
    if len(report.bad) > MAX_BAD_SHOWN:
        click.echo(f"... and {len(report.bad) - MAX_BAD_SHOWN} more bad rows", err=True)
    click.echo(report.summary())
    if (report.added or report.confirmed_now) and confirmed:
        click.echo("confirmed subscribers start the sequence on the worker's next pass")


@subscribers_cli.command("export")
@click.argument("file", required=False, default="-",
                type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--status", type=click.Choice(lifecycle.STATUSES), help="Only this status.")
@click.option("--search", metavar="TEXT", help="Only addresses containing TEXT.")
def export_command(file: str, status: str | None, search: str | None) -> None:
    """Write the list as CSV to FILE (or standard output), ready to import again."""
    rt = _rt()
    with rt.sessions() as s:
        rows = export.export_rows(s, status=status, search=search)
        if file == "-":
            count = csv_files.write_csv(sys.stdout, rows)
        else:
            # Written beside the target and renamed, so a failure never leaves half a file.
            target = Path(file)
            fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                    count = csv_files.write_csv(fh, rows)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
    click.echo(f"exported {count} subscribers", err=True)


# -- privacy requests (issue 6) -------------------------------------------------

def _find(session, email: str):
    """The subscriber with this address; a clear error when there is none."""
    try:
        sub = privacy.find_by_email(session, email)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    if sub is None:
        note = (" It is on the suppression list, so it will not be mailed."
                if privacy.is_suppressed(session, normalise_email(email)) else "")
        raise click.ClickException(f"No personal data is stored for {email.strip()}.{note}")
    return sub


def _waiting_only(session, email: str, then):
    """``then()`` when the address is only in the sign-up intake (the worker has not
    taken it in yet), else None."""
    try:
        address = normalise_email(email)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    if privacy.find_by_email(session, address) is None and privacy.waiting_signups(session, address):
        return then()
    return None


@subscribers_cli.command("export-data")
@click.argument("email")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              show_default=True, help="Write the JSON here instead of to the terminal.")
def export_data_command(email: str, output) -> None:
    """Everything stored about EMAIL (profile, consent, emails sent), as JSON."""
    rt = _rt()
    subjects = all_steps(rt.settings.emails_dir).subjects()
    with rt.sessions() as s:
        data = _waiting_only(s, email, lambda: privacy.export_waiting_only(s, email, now=rt.clock()))
        if data is None:
            data = privacy.export_data(s, _find(s, email), now=rt.clock(), subjects=subjects)
    output.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@subscribers_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(email: str, yes: bool) -> None:
    """Delete everything about EMAIL; keep only a salted hash so it is never mailed again."""
    rt = _rt()
    with rt.sessions() as s:
        if _waiting_only(s, email, lambda: True):
            if not yes:
                click.confirm(f"Erase the waiting sign-ups of {email.strip()}? This cannot be "
                              "undone", abort=True)
            count = privacy.erase_waiting(s, email, rt.clock())
            click.echo(f"erased {count} waiting sign-up(s) of {email.strip()}; only a salted "
                       "hash remains on the suppression list")
            return
        sub = _find(s, email)
        address = sub.email
        if not yes:
            click.confirm(f"Erase all data about {address}? This cannot be undone", abort=True)
        privacy.erase(s, sub, rt.clock())
    click.echo(f"erased {address}; only a salted hash remains on the suppression list")


@subscribers_cli.command("purge-pending")
@click.option("--days", type=int, default=None,
              help="Older than this many days (default PENDING_RETENTION_DAYS).")
def purge_pending(days: int | None) -> None:
    """Delete sign-ups never confirmed (with their IP and user agent) after the retention period.

    The worker does this on its own about hourly; this is for a cron job or by hand."""
    from datetime import timedelta

    from funnel.subscribers import retention

    rt = _rt()
    days = rt.settings.pending_retention_days if days is None else days
    if days < 1:
        raise click.BadParameter("must be at least 1", param_hint="--days")
    with rt.sessions() as s:
        purged = retention.purge_unconfirmed(s, rt.clock(), timedelta(days=days))
    click.echo(f"{purged} unconfirmed sign-up(s) older than {days} days deleted")
