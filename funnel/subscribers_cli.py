"""``flask --app funnel subscribers …``: per-address commands for the marketer."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel.runtime import Runtime

subscribers_cli = AppGroup("subscribers", help="Subscribers: privacy requests, import and export.")


def _rt() -> Runtime:
    return current_app.extensions["funnel"]


# The whole list as CSV (issue 7) lives in its own module.
from funnel.list_cli import export_command, import_command

subscribers_cli.add_command(import_command)
subscribers_cli.add_command(export_command)


# -- privacy requests (issue 6) -------------------------------------------------

def _find(session, email: str):  # type: ignore[no-untyped-def]
    """The subscriber with this address; a clear error when there is none."""
    from funnel import privacy, services

    try:
        sub = privacy.find_by_email(session, email)
    except services.FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    if sub is None:
        note = (" It is on the suppression list, so it will not be mailed."
                if services.is_suppressed(session, services.normalise_email(email)) else "")
        raise click.ClickException(f"No personal data is stored for {email.strip()}.{note}")
    return sub


@subscribers_cli.command("export-data")
@click.argument("email")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              show_default=True, help="Write the JSON here instead of to the terminal.")
def export_data_command(email: str, output) -> None:  # type: ignore[no-untyped-def]
    """Everything stored about EMAIL (profile, consent, emails sent), as JSON."""
    import json

    from funnel import privacy
    from funnel.core.sequence import load_sequence

    rt = _rt()
    subjects = load_sequence(rt.settings.emails_dir).subjects()
    with rt.sessions() as s:
        sub = _find(s, email)
        data = privacy.export_data(s, sub, now=rt.clock(), subjects=subjects)
    output.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@subscribers_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(email: str, yes: bool) -> None:
    """Delete everything about EMAIL; keep only a salted hash so it is never mailed again."""
    from funnel import privacy

    rt = _rt()
    with rt.sessions() as s:
        sub = _find(s, email)
        address = sub.email
        if not yes:
            click.confirm(f"Erase all data about {address}? This cannot be undone", abort=True)
        privacy.erase(s, sub, rt.clock())
    click.echo(f"erased {address}; only a salted hash remains on the suppression list")
