"""The coach's editor: ``/admin/emails/<slug>/edit`` over ``funnel.studio``.

The whole file in one field named ``source``; the check and the previews follow the
typing through ``/check`` (static/studio/editor.js), and the same form works without
JavaScript: its Preview, Save and Upload buttons post it back whole, so nothing typed
is lost. Saves, drafts, conflicts and restores are the studio's; this only shows them.
"""

from __future__ import annotations

import difflib

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from funnel import runtime
from funnel.config import PROJECT_ROOT
from funnel.mail.check import route_checker
from funnel.studio import Studio, StudioError
from funnel.studio.checking import Checked
from funnel.studio.files import EmailFile, content_hash
from funnel.studio.service import CONFLICT, DRAFT, SAVED, UNCHANGED, SaveResult
from funnel.web.admin import picture_upload
from funnel.web.admin.auth import current_admin, login_required
from funnel.web.errors import render_error

bp = Blueprint("email_editor", __name__, url_prefix="/admin/emails",
               static_folder=str(PROJECT_ROOT / "static" / "studio"),
               static_url_path="/studio-static")

NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


# A URL value preprocessor, not before_request: those run first, before CSRF
# protection reads the form with the app's 1 MB limit.
@bp.url_value_preprocessor
def _limits(_endpoint, _values) -> None:
    picture_upload.allow_upload()


_wants_json = picture_upload.wants_json


@bp.errorhandler(413)
def _too_large(_exc):
    message = picture_upload.too_large("the editor")
    if _wants_json():
        return jsonify(error=message), 413
    return render_error(413, message)


@bp.errorhandler(StudioError)
def _refused(exc: StudioError):
    if _wants_json():
        return jsonify(error=exc.message), exc.status
    return render_error(exc.status, exc.message)


def _studio() -> Studio:
    r = runtime.rt()
    return Studio(r.settings, runtime.session(), r.clock,
                  route_checker(current_app._get_current_object()))  # type: ignore[attr-defined]


def _author() -> str:
    admin = current_admin()
    return admin.email if admin is not None else "unknown"


def _page(studio: Studio, file: EmailFile, source: str, base: str, draft_base: str, *,
          checked: Checked | None, status: int = 200, notice: str = "", level: str = "notice",
          conflict: SaveResult | None = None, snippet: str = ""):
    live = file.read()
    draft = file.read_draft()
    conflict_diff: list[str] = []
    if conflict is not None:
        conflict_diff = list(difflib.unified_diff(
            (conflict.disk_text or "").splitlines(), source.splitlines(),
            "the draft saved since" if conflict.on_draft else "on disk now", "yours",
            lineterm=""))
    html = render_template(
        "admin/email_edit.html", file=file, source=source, base=base, draft_base=draft_base,
        checked=checked if checked is not None else studio.check(file, source),
        notice=notice, level=level, conflict=conflict, conflict_diff=conflict_diff,
        snippet=snippet, revisions=studio.history(file), has_draft=draft is not None,
        editing_draft=draft is not None and source == draft and draft != live,
        is_live=source == live,
    )
    return html, status, NO_STORE


@bp.get("/<slug>/edit")
@login_required
def edit(slug: str):
    studio = _studio()
    file = studio.file(slug)
    live = file.read() or ""
    draft = file.read_draft()
    return _page(studio, file, draft if draft is not None else live, content_hash(live),
                 content_hash(draft), checked=None)


@bp.post("/<slug>/edit")
@login_required
def edit_post(slug: str):
    """Preview, Save or Upload, posted with the whole form (no JavaScript needed)."""
    studio = _studio()
    file = studio.file(slug)
    source = request.form.get("source")
    base = request.form.get("base", "")
    draft_base = request.form.get("draft_base", "")
    action = request.form.get("action", "preview")
    if action == "save":
        result = studio.save_email_source(file.rel, source, _author(), base,
                                          draft_base=draft_base)
        return _after_save(studio, result, str(source))
    text = source if isinstance(source, str) else ""
    snippet = ""
    notice = ""
    if action == "upload":
        try:
            saved = picture_upload.save_from_form(studio)
        except StudioError as exc:  # said on the editor page, so the typed text stays
            return _page(studio, file, text.replace("\r\n", "\n"), base, draft_base,
                         checked=None,
                         status=exc.status, notice=exc.message, level="warn")
        snippet = saved.snippet
        notice = f"{picture_upload.saved_words(saved)}: copy the line below where it should show."
    checked = studio.check(file, text)
    return _page(studio, file, text.replace("\r\n", "\n"), base, draft_base, checked=checked,
                 snippet=snippet, notice=notice)


def _after_save(studio: Studio, result: SaveResult, source: str):
    if result.outcome in (SAVED, UNCHANGED):
        flash(result.message)
        return redirect(url_for(".edit", slug=result.file.slug), code=303)
    text = source.replace("\r\n", "\n")
    if result.outcome == DRAFT:
        return _page(studio, result.file, text, result.disk_hash, result.draft_hash,
                     checked=result.checked, notice=result.message, level="warn")
    assert result.outcome == CONFLICT
    # The next save goes over the version now shown: the coach has seen both.
    return _page(studio, result.file, text, result.disk_hash, result.draft_hash,
                 checked=result.checked, status=409, notice=result.message, level="warn",
                 conflict=result)


@bp.post("/<slug>/check")
@login_required
def check(slug: str):
    """The check's messages and the previews for the text being typed (JSON)."""
    studio = _studio()
    checked = studio.check(studio.file(slug), request.form.get("source"))
    return jsonify(checked.as_json()), 200, NO_STORE


# Without a slug: from the new-newsletter page, whose file does not exist yet.
@bp.post("/pictures", defaults={"slug": None})
@bp.post("/<slug>/pictures")
@login_required
def pictures(slug: str | None):
    """A picture from an upload panel's script (JSON: the Markdown to insert)."""
    studio = _studio()
    if slug is not None:
        studio.file(slug)
    saved = picture_upload.save_from_form(studio)
    return jsonify(name=saved.name, snippet=saved.snippet, width=saved.width,
                   height=saved.height), 201, NO_STORE


@bp.post("/<slug>/restore")
@login_required
def restore(slug: str):
    studio = _studio()
    try:
        revision = int(request.form.get("revision", ""))
    except ValueError:
        raise StudioError("Choose a revision to restore.") from None
    result = studio.restore(slug, revision, _author(), request.form.get("base", ""),
                            request.form.get("draft_base", ""))
    if result.outcome == SAVED:
        flash(f"Revision #{revision} restored: {result.file.rel} is live.")
        return redirect(url_for(".edit", slug=result.file.slug), code=303)
    current = result.file.read() or ""
    text = next((r.after for r in studio.history(result.file) if r.id == revision), current)
    return _after_save(studio, result, text)
