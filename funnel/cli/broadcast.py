"""``flask --app funnel broadcast list|audience|send|cancel|test``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from jinja2 import TemplateError

from funnel.core.broadcast import (
    Broadcast,
    Filter,
    broadcast_files,
    fingerprint,
    parse_at,
    parse_local_time,
    parse_where,
    read_broadcast,
)
from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.sequence import EmailFileError, read_email_file
from funnel.core.states import BroadcastStatus
from funnel.mail.check import run_check
from funnel.newsletter import audience as aud
from funnel.newsletter import scheduling, subject_tests
from funnel.newsletter.test_send import test_message
from funnel.runtime import Runtime

broadcast_cli = AppGroup("broadcast", help="Send one-off newsletters from emails/broadcasts/.")
TEST_PREFIX = "[TEST] "
WHERE_HELP = ("Narrow the audience, KEY=VALUE, repeatable: plan=finished|in-plan, "
              "signed_up_before=YYYY-MM-DD, signed_up_after=YYYY-MM-DD, source=S, campaign=C, "
              "tag=T, without_tag=T, wants_plan=yes|no (also receives the plan, or turned "
              "it off). Overrides the file's 'audience:'.")


def _rt() -> Runtime:
    return current_app.extensions["funnel"]


def _load(slug: str) -> Broadcast:
    rt = _rt()
    try:
        item = read_broadcast(rt.settings.emails_dir, slug)
    except (EmailFileError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{exc}: fix the file, then run `emails check`") from exc
    if item is None:
        known = [p.stem for p in broadcast_files(rt.settings.emails_dir)]
        raise click.ClickException(
            f"no broadcast '{slug}' in {Path(rt.settings.emails_dir, 'broadcasts')}/"
            + (f" (there are: {', '.join(known)})" if known else " (the folder is empty)"))
    return item


def _filter(item: Broadcast, where: tuple[str, ...]) -> Filter:
    try:
        return item.audience.merged(parse_where(where))
    except ValueError as exc:
        raise click.ClickException(f"--where: {exc}") from exc


def check_errors(path: Path) -> list[str]:
    """The check's errors for one broadcast file (and the layout it uses)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return [p.display() for p in run_check(app)
            if p.level == "error" and (p.path == path or p.path.parent.name == "layout")]


@broadcast_cli.command("list")
def list_command() -> None:
    """Each broadcast: status, audience size, sent, failed."""
    rt = _rt()
    with rt.sessions() as s:
        rows = {r.slug: r for r in s.scalars(scheduling.select_all())}
        seen: set[str] = set()
        now = rt.clock()
        click.echo(f"{'slug':<28} {'status':<10} {'audience':>8} {'sent':>6} {'failed':>6}  note")
        for path in broadcast_files(rt.settings.emails_dir):
            try:
                src = read_email_file(path)
                item = read_broadcast(rt.settings.emails_dir, src.slug)
            except (EmailFileError, UnicodeDecodeError) as exc:
                click.echo(f"{path.stem:<28} {'broken':<10} {'-':>8} {'-':>6} {'-':>6}  {exc}")
                continue
            assert item is not None
            seen.add(item.slug)
            row = rows.get(item.slug)
            if row is None:
                size = aud.breakdown(s, item.audience, aud.plan_last_step(rt.settings.emails_dir),
                                     now).would_get
                click.echo(f"{item.slug:<28} {'draft':<10} {size:>8} {0:>6} {0:>6}  "
                           "not scheduled")
                continue
            note = ""
            if fingerprint(path.read_text(encoding="utf-8")) != fingerprint(row.source):
                note = "file edited since scheduling: the scheduled copy is what goes out"
            _row_line(s, row, note)
        for slug, row in rows.items():
            if slug not in seen:
                _row_line(s, row, "file removed: the scheduled copy is kept")


def _row_line(s, row, note: str) -> None:
    p = scheduling.progress(s, row)
    if row.status == BroadcastStatus.SCHEDULED:
        note = note or f"due from {row.send_at:%Y-%m-%d %H:%M} UTC" + (
            f", {row.local_time} in each reader's zone" if row.local_time else "")
    elif row.status == BroadcastStatus.SENDING:
        note = note or f"{p.done} of {p.audience} done"
    click.echo(f"{row.slug:<28} {row.status:<10} {row.audience_size:>8} {p.sent:>6} "
               f"{p.failed:>6}  {note}".rstrip())


@broadcast_cli.command("audience")
@click.argument("slug")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help=WHERE_HELP)
def audience_command(slug: str, where: tuple[str, ...]) -> None:
    """How many would get SLUG now, and why the others would not."""
    rt = _rt()
    item = _load(slug)
    flt = _filter(item, where)
    with rt.sessions() as s:
        b = aud.breakdown(s, flt, aud.plan_last_step(rt.settings.emails_dir), rt.clock())
    click.echo(f"audience: {flt.describe()}")
    for label, n in b.lines():
        click.echo(f"{n:>8}  {label}")


@broadcast_cli.command("send")
@click.argument("slug")
@click.option("--at", "at_text", metavar="ISO", help="When to send (UTC unless an offset is "
              "given), e.g. 2026-12-01T09:00. Default: as soon as the worker runs.")
@click.option("--local", "local_text", metavar="HH:MM",
              help="Deliver at this hour in each subscriber's own time zone.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help=WHERE_HELP)
@click.option("--test-sample", "test_sample", metavar="PERCENT",
              help="A file with 'subjects:' runs a subject test on this share of the "
              f"audience (1-100, default {subject_tests.DEFAULT_SAMPLE}).")
@click.option("--test-wait", "test_wait", metavar="TIME",
              help="How long the test runs before the winner goes to the rest, e.g. 4h, "
              "90m, 1d (default 4h).")
def send_command(slug: str, at_text: str | None, local_text: str | None,
                 where: tuple[str, ...], test_sample: str | None,
                 test_wait: str | None) -> None:
    """Schedule SLUG for its audience; the worker sends it."""
    rt = _rt()
    now = rt.clock()
    item = _load(slug)
    flt = _filter(item, where)
    try:
        at = parse_at(at_text, now) if at_text else None
        local = parse_local_time(local_text) if local_text else None
        test = subject_tests.TestPlan(
            sample_percent=subject_tests.parse_sample(test_sample),
            wait=subject_tests.parse_wait(test_wait),
            min_per_subject=current_app.config.get("SUBJECT_TEST_MIN_PER_SUBJECT",
                                                   subject_tests.MIN_PER_SUBJECT))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if (test_sample or test_wait) and not item.subjects:
        raise click.ClickException(
            f"'{slug}' has one subject: a subject test needs 2 to 4 under 'subjects:' in "
            "its front matter")
    errors = check_errors(item.source.path)
    if errors:
        for line in errors:
            click.echo(line, err=True)
        raise click.ClickException(f"'{slug}' has errors: not scheduled. Fix them "
                                   "(`flask --app funnel emails check`) and send again.")
    with rt.sessions() as s:
        try:
            done = scheduling.schedule(
                s, item, audience=flt, now=now, at=at, local=local,
                default_timezone=rt.settings.default_timezone,
                last_step=aud.plan_last_step(rt.settings.emails_dir), test=test)
        except scheduling.ScheduleError as exc:
            raise click.ClickException(str(exc)) from exc
        when = (f"at {local.strftime('%H:%M')} in each subscriber's time zone, from "
                if local else "from ")
        when += f"{done.row.send_at:%Y-%m-%d %H:%M} UTC" if at else "now"
        click.echo(f"scheduled '{slug}' for {done.recipients} subscribers ({flt.describe()}), "
                   f"{when}; the worker sends it.")
        if done.test_note:
            click.echo(done.test_note)
        if done.already_had:
            click.echo(f"{done.already_had} already had it from before the cancel and are "
                       "left out.")
    rt.wake.set()


@broadcast_cli.command("cancel")
@click.argument("slug")
def cancel_command(slug: str) -> None:
    """Stop what has not gone out yet, and say how many went."""
    rt = _rt()
    with rt.sessions() as s:
        try:
            c = scheduling.cancel(s, slug, rt.clock())
        except scheduling.ScheduleError as exc:
            raise click.ClickException(str(exc)) from exc
    msg = f"cancelled '{slug}': {c.sent} went out, {c.stopped} will not get it"
    if c.in_flight:
        msg += f", {c.in_flight} were being handed over and may still go"
    click.echo(msg + ".")


@broadcast_cli.command("test")
@click.argument("slug")
@click.option("--to", "to", required=True, metavar="EMAIL", help="Where to send the test.")
def test_command(slug: str, to: str) -> None:
    """Send SLUG once to EMAIL, with the sample reader's data and [TEST] in the subject."""
    rt = _rt()
    item = _load(slug)
    try:
        address = normalise_email(to)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        msg = test_message(rt.composer, item.source, address, rt.clock(), broadcast=True)
    except TemplateError as exc:
        raise click.ClickException(f"{item.source.path}: does not render: {exc}") from exc
    [result] = rt.transport.send([msg])
    if not result.ok:
        raise click.ClickException(f"not sent: {result.error}")
    click.echo(f"test of '{slug}' sent to {address}")
