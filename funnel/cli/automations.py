"""``flask --app funnel automations dry-run [--now ISO]``: what the rules would do."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import AppGroup

from funnel.automation import Automation
from funnel.core.automations import RulesFileError, load_rules
from funnel.core.sequences import load_sequences
from funnel.runtime import rt as _rt

automations_cli = AppGroup("automations", help="The rules in emails/automations.yml.")


@automations_cli.command("dry-run")
@click.option("--now", "at", default=None, metavar="ISO",
              help="Pretend it is this time (UTC unless it carries an offset).")
def dry_run_command(at: str | None) -> None:
    """Say which rules would fire, for whom, without doing anything."""
    rt = _rt()
    try:
        now = datetime.fromisoformat(at) if at else rt.clock()
    except ValueError as exc:
        raise click.BadParameter(f"{at!r} is not an ISO date-time, e.g. "
                                 "2026-12-01T09:00:00Z", param_hint="--now") from exc
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    emails_dir = rt.settings.emails_dir
    try:
        rules = load_rules(emails_dir)
    except RulesFileError as exc:
        raise click.ClickException(f"{exc} (nothing would fire)") from exc
    if not rules:
        click.echo("no rules (emails/automations.yml is missing or empty)")
        return
    report = Automation(rt.sessions, emails_dir)(load_sequences(emails_dir), now, dry_run=True)
    for rule in rules:
        if rule.name in report.held:
            click.echo(f"{rule.name}: HELD, {report.held[rule.name]}")
            continue
        n = report.fired.get(rule.name, 0)
        actions = ", ".join(f"{a} {v}" for a, v in rule.then)
        click.echo(f"{rule.name}: would fire for {n} ({rule.describe()}; then {actions})")
        for email in report.who.get(rule.name, []):
            click.echo(f"  {email}")
        if n > len(report.who.get(rule.name, [])):
            click.echo(f"  … and {n - len(report.who[rule.name])} more")
