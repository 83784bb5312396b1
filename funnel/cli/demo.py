"""``flask --app funnel demo seed``: a month of made-up activity to try the dashboard on."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from funnel.config import is_production
from funnel.core.sequence import load_sequence
from funnel.demo import seed as demo
from funnel.runtime import rt as _rt

demo_cli = AppGroup("demo", help="Demo data for trying the dashboard.")


@demo_cli.command("seed")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.01, 20),
              help="Multiplies the traffic (1 ≈ 400 article visits a day).")
@click.option("--seed", "random_seed", default=2026, show_default=True, type=int,
              help="The same seed gives the same data.")
@click.option("--subscribers", default=None, type=click.IntRange(1, 20_000_000),
              help="Instead: this many subscribers with a year of history, built inside "
                   "PostgreSQL (a million takes minutes).")
def seed_command(days: int, scale: float, random_seed: int, subscribers: int | None) -> None:
    """Fill an empty database with visits, sign-ups, emails and their events."""
    if is_production(current_app.config):
        raise click.ClickException("demo data is never added in production (FUNNEL_ENV)")
    rt = _rt()
    if subscribers is not None:
        _seed_million(rt, subscribers)
        return
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


def _seed_million(rt, n: int) -> None:
    import time

    from funnel.demo.million import seed_million

    started = time.monotonic()
    slugs = [step.slug for step in load_sequence(rt.settings.emails_dir).steps]
    with rt.sessions() as s:
        try:
            report = seed_million(s, n=n, now=rt.clock(), slugs=slugs,
                                  progress=lambda msg: click.echo(
                                      f"[{time.monotonic() - started:6.0f} s] {msg}"))
        except (demo.AlreadySeeded, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"seeded {report.subscribers:,} subscribers, {report.deliveries:,} deliveries, "
               f"{report.events:,} events, {report.visits:,} visits, {report.consents:,} "
               f"consent records in {time.monotonic() - started:.0f} s")
