"""Admin previews of the email files: the sequence as a timeline, each email as
subscribers will see it (desktop, phone and plain text), and a test send (queued
here, sent by the worker).

Everything is read from disk on every request, and each page polls a small JSON
endpoint with a fingerprint of its files, so an edit shows up without a restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from jinja2 import TemplateError

from funnel import runtime
from funnel.core.rendering import RenderedEmail
from funnel.core.sequence import EmailFileError, EmailSource, read_email_file, step_from_source
from funnel.mail import check as emailcheck
from funnel.mail.check_kept import kept, kept_check
from funnel.mail.check_support import find_source
from funnel.newsletter.scheduling import REASON
from funnel.web.admin import test_sends
from funnel.web.admin.auth import current_admin, login_required

bp = Blueprint("email_previews", __name__, url_prefix="/admin/emails")

NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


@dataclass(frozen=True)
class Entry:
    """One email file as the timeline shows it."""

    path: Path
    slug: str
    subject: str
    preheader: str
    system: bool
    error: str = ""
    broadcast: bool = False
    automation: bool = False  # emails/automations/: sent by a rule of automations.yml
    delay: timedelta | None = None
    offset: timedelta | None = None  # from the first email, if each goes out on time
    window: str = ""

    @property
    def day(self) -> int | None:
        return None if self.offset is None else self.offset.days + 1

    @property
    def delay_text(self) -> str:
        if self.delay is None:
            return ""
        hours = self.delay.total_seconds() / 3600
        if hours % 24 == 0:
            days = int(hours // 24)
            return f"{days} day{'s' if days != 1 else ''}"
        return f"{hours:g} hours"


def _emails_dir() -> Path:
    return Path(runtime.rt().settings.emails_dir)


def _entries() -> list[Entry]:
    """Every email file, parsed on its own so one broken file doesn't hide the rest;
    parsed again only when a file under the emails folder changes."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return list(kept(app, "entries", lambda: tuple(_read_entries())))


def _read_entries() -> list[Entry]:
    settings = runtime.rt().settings
    default_window = f"{settings.window_start}:00-{settings.window_end}:00 their time"
    out: list[Entry] = []
    offset = timedelta(0)
    for path in emailcheck.email_files(_emails_dir()):
        # An automation's email is sent once by a rule, like system mail: no delay.
        automation = path.parent.name == "automations"
        system = path.parent.name == "system" or automation
        broadcast = path.parent.name == "broadcasts"
        try:
            src = read_email_file(path)
        except EmailFileError as exc:
            out.append(Entry(path, "", "", "", system, error=f"line {exc.line}: {exc.message}",
                             broadcast=broadcast))
            continue
        if broadcast:
            out.append(Entry(path, src.slug, src.subject, src.preheader, False, broadcast=True))
            continue
        if system:
            out.append(Entry(path, src.slug, src.subject, src.preheader, True,
                             automation=automation))
            continue
        try:
            step = step_from_source(src)
        except EmailFileError as exc:
            out.append(Entry(path, src.slug, src.subject, src.preheader, False,
                             error=exc.message))
            continue
        offset += step.delay
        window = (default_window if step.window is None else
                  "any time" if step.window == (0, 24) else
                  f"{step.window[0]}:00-{step.window[1]}:00 their time")
        out.append(Entry(path, step.slug, step.subject, src.preheader, False,
                         delay=step.delay, offset=offset, window=window))
    return out


def _find(slug: str) -> EmailSource:
    src = find_source(_emails_dir(), slug)
    if src is None:
        abort(404)
    return src


def _fingerprint(paths: list[Path]) -> str:
    """Changes whenever any of these files (or the layout) changes, is added or removed."""
    layout = sorted((_emails_dir() / "layout").glob("*"))
    h = hashlib.sha256()
    for p in [*paths, *layout]:
        h.update(str(p).encode())
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"\0missing")
    return h.hexdigest()[:20]


def _extra(src: EmailSource) -> dict | None:
    """A broadcast's footer says why the reader gets the newsletter."""
    return {"reason": REASON} if src.path.parent.name == "broadcasts" else None


def _render(src: EmailSource) -> RenderedEmail:
    return runtime.rt().composer.render(src, emailcheck.sample_subscriber(), "preview",
                                        extra=_extra(src))


def _framable(html: str) -> str:
    """Links in a preview open in a new tab instead of inside the frame."""
    return html.replace("<head>", '<head><base target="_blank">', 1)


@bp.get("/")
@login_required
def index():
    entries = _entries()
    problems = kept_check(current_app._get_current_object())
    html = render_template(
        "admin/emails.html", entries=entries, problems=problems,
        broken={p.path for p in problems if p.level == emailcheck.ERROR},
        layout_broken=any(p.level == emailcheck.ERROR and p.path.parent.name == "layout"
                          for p in problems),
        root=_emails_dir(), version=_fingerprint(emailcheck.email_files(_emails_dir())),
        version_url=url_for(".index_version"),
    )
    return html, 200, NO_STORE


@bp.get("/version.json")
@login_required
def index_version():
    return jsonify(version=_fingerprint(emailcheck.email_files(_emails_dir()))), 200, NO_STORE


@bp.get("/<slug>")
@login_required
def preview(slug: str):
    src = _find(slug)
    rendered, render_error = None, ""
    try:
        rendered = _render(src)
    except TemplateError as exc:
        render_error = str(exc)
    problems = [p for p in kept_check(current_app._get_current_object())  # type: ignore[attr-defined]
                if p.path == src.path or p.path.parent.name == "layout"]
    entry = next((e for e in _entries() if e.path == src.path), None)
    html = render_template(
        "admin/emails_preview.html", src=src, entry=entry, rendered=rendered,
        framed=_framable(rendered.html) if rendered else "", render_error=render_error,
        problems=problems, root=_emails_dir(), sample=emailcheck.sample_subscriber(),
        version=_fingerprint([src.path]), version_url=url_for(".preview_version", slug=slug),
        **test_sends.listing(current_admin(), src.slug),
    )
    return html, 200, NO_STORE


@bp.get("/<slug>/version.json")
@login_required
def preview_version(slug: str):
    src = _find(slug)
    return jsonify(version=_fingerprint([src.path])), 200, NO_STORE


def _part(slug: str, part: str, headers: dict[str, str]):
    try:
        rendered = _render(_find(slug))
    except TemplateError as exc:
        return f"does not render: {exc}", 500, {**NO_STORE, "Content-Type": "text/plain"}
    return getattr(rendered, part), 200, {**NO_STORE, **headers}


@bp.get("/<slug>/html")
@login_required
def preview_html(slug: str):
    """The HTML part on its own, e.g. to open full size in a new tab."""
    # No script runs in an email; the sandbox makes sure of it for the preview too.
    return _part(slug, "html", {"Content-Security-Policy": "sandbox allow-popups"})


@bp.get("/<slug>/text")
@login_required
def preview_text(slug: str):
    return _part(slug, "text", {"Content-Type": "text/plain; charset=utf-8"})


@bp.post("/<slug>/send-test")
@login_required
def send_test(slug: str):
    """Queue this email, with the sample reader's data, for one address: the worker
    sends it (its links lead to pages saying it was a test, funnel.web.test_links)."""
    src = _find(slug)
    admin = current_admin()
    assert admin is not None  # login_required
    queued, message = test_sends.queue(admin, src, request.form.get("to", ""),
                                       broadcast=src.path.parent.name == "broadcasts")
    if queued:
        current_app.logger.info("test email %s queued by %s", slug, admin.email)
    flash(message, "done" if queued else "error")
    return redirect(url_for(".preview", slug=slug), code=303)
