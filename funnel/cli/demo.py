"""``flask --app funnel demo seed``: a month of made-up activity to try the dashboard on."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel import demo
from funnel.config import is_production
from funnel.core.sequence import load_sequence
from funnel.runtime import rt as _rt

demo_cli = AppGroup("demo", help="Demo data for trying the dashboard.")


@demo_cli.command("seed")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.01, 20),
              help="Multiplies the traffic (1 ≈ 400 article visits a day).")
@click.option("--seed", "random_seed", default=2026, show_default=True, type=int,
              help="The same seed gives the same data.")
def seed_command(days: int, scale: float, random_seed: int) -> None:
    """Fill an empty database with visits, sign-ups, emails and their events."""
    if is_production(current_app.config):
        raise click.ClickException("demo data is never added in production (FUNNEL_ENV)")
    rt = _rt()
    with rt.sessions() as s:
        try:
            report = demo.seed(s, now=rt.clock(), settings=rt.settings,
                               sequence=load_sequence(rt.settings.emails_dir), days=days,
                               scale=scale, seed=random_seed)
        except demo.AlreadySeeded as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"seeded {days} days: {report.article_visits} article visits, "
        f"{report.landing_visits} landing page visits, {report.signups} sign-ups, "
        f"{report.confirmations} confirmations, {report.sent} emails sent, "
        f"{report.opened} opened, {report.clicked} clicked"
    )
    click.echo("see it at /admin/ (make an account: flask --app funnel admin create EMAIL)")
