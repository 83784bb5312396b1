"""Writing a newsletter in the browser: the new-issue page (with the editor's picture
upload), a test send to yourself, moving a schedule, the live audience count and the
admin's time zone.

The file written is ``emails/broadcasts/SLUG.md`` (``newsletter.drafting``); the
scheduling itself stays on the broadcast's own page (``web.broadcasts``).
"""

from __future__ import annotations

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
from funnel.core import timezones
from funnel.core.broadcast import parse_local_time, parse_where, read_broadcast
from funnel.core.sequence import EmailFileError, parse_email_text
from funnel.mail import check as emailcheck
from funnel.newsletter import audience as aud
from funnel.newsletter import drafting, rescheduling, scheduling
from funnel.studio.files import StudioError
from funnel.studio.service import Studio
from funnel.web.admin import broadcast_form, picture_upload, test_sends
from funnel.web.admin.auth import admin_only, current_admin
from funnel.web.errors import render_error

bp = Blueprint("broadcast_studio", __name__, url_prefix="/admin")
admin_only(bp)


# The new page's form carries a picture (its Upload button without JavaScript).
@bp.url_value_preprocessor
def _limits(endpoint, _values) -> None:
    if endpoint == "broadcast_studio.new":
        picture_upload.allow_upload()


@bp.errorhandler(413)
def _too_large(_exc):
    if request.endpoint == "broadcast_studio.new":
        return render_error(413, picture_upload.too_large("the new-newsletter page"))
    return render_error(413)


def _studio() -> Studio:
    return Studio(runtime.rt().settings, runtime.session(), runtime.rt().clock,
                  emailcheck.route_checker(current_app._get_current_object()))  # type: ignore[attr-defined]


def _emails_dir() -> str:
    return runtime.rt().settings.emails_dir


def _preview(draft: drafting.Draft):
    """The draft rendered for the sample reader, as subscribers would see it."""
    src = parse_email_text(drafting.target(_emails_dir(), draft.slug), draft.text())
    return runtime.rt().composer.render(src, emailcheck.sample_subscriber(), "preview",
                                        extra={"reason": scheduling.REASON})


@bp.route("/broadcasts/new", methods=["GET", "POST"])
def new():
    form = {k: request.form.get(k, "") for k in ("subject", "preheader", "body", "slug",
                                                 "other_subjects")}
    if request.method == "GET":
        return _new_page(form)
    error, notice, snippet, problems, rendered = "", "", "", [], None
    if request.form.get("action") == "upload":
        try:
            saved = picture_upload.save_from_form(_studio())
        except StudioError as exc:  # said on this page, so what was typed stays
            return _new_page(form, error=exc.message), exc.status
        # Without the script the cursor is not known: the end of the text, said so.
        snippet = saved.snippet
        body = form["body"].rstrip()
        form["body"] = f"{body}\n\n{snippet}\n" if body else f"{snippet}\n"
        notice = f"{picture_upload.saved_words(saved)} and added at the end of the text."
    try:
        draft = drafting.draft_from_form(form)
        form["slug"] = draft.slug
        app = current_app._get_current_object()
        problems = drafting.problems(
            draft, _emails_dir(), emailcheck.sample_variables(runtime.rt().composer),
            base_url=runtime.rt().settings.base_url, route_exists=emailcheck.route_checker(app))
        if not emailcheck.has_errors(problems):
            rendered = _preview(draft)
        if request.form.get("action") == "save":
            admin = current_admin()
            path = drafting.save_new(draft, _studio(), problems, admin.email if admin else "")
            flash(f"Saved as emails/broadcasts/{path.name}. Send yourself a test, then "
                  "schedule it below.")
            return redirect(url_for("broadcasts.show", slug=draft.slug), code=303)
    except (drafting.DraftError, StudioError, EmailFileError, TemplateError) as exc:
        error = str(exc)
    status = 422 if error else 200
    return _new_page(form, problems=problems, rendered=rendered, error=error, notice=notice,
                     snippet=snippet), status


def _new_page(form: dict[str, str], *, problems=(), rendered=None, error: str = "",
              notice: str = "", snippet: str = "") -> str:
    return render_template("admin/broadcast_new.html", form=form, problems=problems,
                           rendered=rendered, error=error, notice=notice, snippet=snippet)


@bp.post("/broadcasts/<slug>/send-test")
def send_test(slug: str):
    """The email, [TEST] in front, queued for the signed-in admin's own address."""
    try:
        item = read_broadcast(_emails_dir(), slug)
    except (EmailFileError, UnicodeDecodeError):
        item = None
    if item is None:
        abort(404)
    back = redirect(url_for("broadcasts.show", slug=slug), code=303)
    admin = current_admin()
    assert admin is not None  # admin_only
    subject = None
    variant = request.form.get("subject_variant", "")
    if variant:
        if not (item.subjects and variant.isdigit() and int(variant) < len(item.subjects)):
            flash(f"Not queued: this newsletter has no subject number {variant[:8]!r}.")
            return back
        subject = item.subjects[int(variant)]
    queued, message = test_sends.queue(admin, item.source, admin.email, broadcast=True,
                                       subject=subject)
    if queued:
        message += (" Every link in it works; the unsubscribe and preferences links say "
                    "it was a test.")
    flash(message)
    return back


@bp.post("/broadcasts/<slug>/move")
def move(slug: str):
    back = redirect(url_for("broadcasts.show", slug=slug), code=303)
    admin = current_admin()
    tz = broadcast_form.admin_zone(admin)
    now = runtime.now()
    try:
        at_text = request.form.get("at", "").strip()
        local_text = request.form.get("local", "").strip()
        at = broadcast_form.parse_when(at_text, tz, now) if at_text else None
        local = parse_local_time(local_text) if local_text else None
        row = rescheduling.move(runtime.session(), slug, at=at, local=local, now=now,
                                default_timezone=runtime.rt().settings.default_timezone)
    except ValueError as exc:  # ScheduleError is one
        flash(f"Not moved: {exc}")
        return back
    runtime.rt().wake.set()
    shown = row.send_at.astimezone(tz)
    flash(f"Moved: now due from {shown:%d %b %Y %H:%M} ({tz.key})"
          + (f", at {row.local_time} in each reader's time zone." if row.local_time else "."))
    return back


@bp.get("/broadcasts/<slug>/audience.json")
def audience_json(slug: str):
    """The live count for the audience controls: who would get it, and why not."""
    try:
        item = read_broadcast(_emails_dir(), slug)
        where = broadcast_form.where_text(request.args)
        flt = item.audience.merged(parse_where([w for w in where.split(",") if w.strip()])) \
            if item else None
    except (EmailFileError, UnicodeDecodeError, ValueError) as exc:
        return jsonify(error=str(exc)), 400
    if flt is None:
        abort(404)
    b = aud.breakdown(runtime.session(), flt, aud.plan_last_step(_emails_dir()), runtime.now())
    return jsonify(where=where, describe=flt.describe(), would_get=b.would_get,
                   lines=[[label, n] for label, n in b.lines()])


@bp.post("/account/timezone")
def timezone():
    """The admin's own zone: guessed once by the browser, or chosen on the page."""
    name = (request.form.get("timezone") or "").strip()
    if name not in timezones.accepted_zones():
        if request.form.get("guess"):
            return jsonify(error="unknown time zone"), 400
        flash(f"Not changed: '{name[:64]}' is not a time zone we know.")
        return _back_to(request.form.get("back") or "")
    admin = current_admin()
    assert admin is not None  # admin_only
    if request.form.get("guess") and admin.timezone:
        return jsonify(timezone=admin.timezone)  # a guess never overrides a choice
    admin.timezone = name
    runtime.session().commit()
    if request.form.get("guess"):
        return jsonify(timezone=name)
    flash(f"Times are now shown in {name}.")
    return _back_to(request.form.get("back") or "")


def _back_to(path: str):
    """Back to the admin page the form was on (never to another site)."""
    return redirect(path if path.startswith("/admin/") else url_for("admin.dashboard"), code=303)
