"""``flask --app funnel emails check|preview``: lint and preview the email files."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from jinja2 import TemplateError

from funnel.config import PROJECT_ROOT
from funnel.core.sequence import EmailFileError, read_email_file
from funnel.mail import check as emailcheck
from funnel.mail.check import run_check
from funnel.mail.check_support import find_source
from funnel.runtime import Runtime

emails_cli = AppGroup("emails", help="Check and preview the email files in emails/.")


@emails_cli.command("check")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def check_command(strict: bool) -> None:
    """Lint every email and the layout; exit 1 if anything is wrong."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    emails_dir = Path(app.extensions["funnel"].settings.emails_dir)
    problems = run_check(app)
    root = Path.cwd() if Path.cwd() in emails_dir.resolve().parents else PROJECT_ROOT
    for p in problems:
        click.echo(p.display(root))
    errors = sum(p.level == emailcheck.ERROR for p in problems)
    warnings = len(problems) - errors
    files = len(emailcheck.email_files(emails_dir))
    click.echo(f"{files} emails checked: {errors} error(s), {warnings} warning(s)", err=True)
    # Drafts are not sent and not checked as live emails, but the coach should know.
    for draft in sorted(emails_dir.glob("**/*.draft")):
        click.echo(f"{draft.relative_to(emails_dir)}: a draft saved in the browser's editor "
                   "(it had errors); the live file beside it is what gets sent", err=True)
    if errors or (strict and warnings):
        raise SystemExit(1)


@emails_cli.command("preview")
@click.argument("slug")
@click.option("--text", "as_text", is_flag=True, help="Print the plain-text part.")
def preview_command(slug: str, as_text: bool) -> None:
    """Render one email (by slug) for a sample reader; HTML to stdout unless --text."""
    rt: Runtime = current_app.extensions["funnel"]
    src = find_source(rt.settings.emails_dir, slug)
    if src is None:
        known = []
        for path in emailcheck.email_files(rt.settings.emails_dir):
            try:
                known.append(read_email_file(path).slug)
            except EmailFileError:
                pass
        raise click.ClickException(f"no email with slug '{slug}'. Known: {', '.join(known)}")
    try:
        rendered = rt.composer.render(src, emailcheck.sample_subscriber(), "preview")
    except TemplateError as exc:  # say which file, not a traceback
        raise click.ClickException(f"{src.path}: does not render: {exc}") from exc
    if as_text:
        click.echo(f"Subject: {rendered.subject}\nPreheader: {rendered.preheader}\n")
        click.echo(rendered.text, nl=False)
    else:
        click.echo(rendered.html)


@emails_cli.command("history")
@click.argument("slug")
@click.option("--diff", "with_diff", is_flag=True, help="Print each change in full.")
@click.option("--limit", default=50, show_default=True, help="How many saves to list.")
def history_command(slug: str, with_diff: bool, limit: int) -> None:
    """List the saves of one email made in the browser's editor, newest first."""
    from funnel.studio import Studio, StudioError

    rt: Runtime = current_app.extensions["funnel"]
    with rt.sessions() as session:
        studio = Studio(rt.settings, session, rt.clock)
        try:
            file = studio.file(slug)
            revisions = studio.history(file, limit=limit)
        except StudioError as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(f"{file.rel} ({file.kind}): {len(revisions)} save(s) from the editor")
    for r in revisions:
        click.echo(r.summary())
        if with_diff:
            for line in r.diff:
                click.echo("    " + line)
