"""``flask --app funnel deliverability check``: MAIL_FROM's domain against the rules
the big inboxes apply to bulk senders; exit 1 on a fail (for deploy scripts)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel.control import brakes
from funnel.deliverability import checkup as rules
from funnel.deliverability.resolver import checkup
from funnel.runtime import rt

deliverability_cli = AppGroup("deliverability", help="Check that the mail you send can arrive.")


@deliverability_cli.command("check")
def check_command() -> None:
    """SPF, DKIM, DMARC, MX and the provider's records for MAIL_FROM's domain."""
    lines = checkup(current_app.config)
    for line in lines:
        click.echo(f"{line.level.upper():<5} {line.check:<16} {line.detail}")
        if line.record and line.level != rules.PASS:
            click.echo(f"{'':<22} add: {line.record}")
    verdict = rules.worst(lines)
    click.echo(f"{len(lines)} checks: {verdict}", err=True)
    if verdict == rules.FAIL:
        raise SystemExit(1)


@deliverability_cli.command("resume")
@click.option("--by", default="the command line", help="Who resumes (kept with the state).")
def resume_command(by: str) -> None:
    """Lift the brakes: newsletters and sequences go out again."""
    runtime = rt()
    with runtime.sessions() as s:
        state = brakes.load(s)
        if not state.paused:
            click.echo("Sending is not paused; nothing to resume.")
            return
        click.echo("Paused because: " + "; ".join(state.reasons))
        brakes.resume(s, runtime.clock(), by)
    click.echo("Resumed: newsletters and sequences go out again from the next worker pass.")
