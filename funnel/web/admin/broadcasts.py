"""Admin pages for the newsletter: schedule a broadcast (seeing who gets it before
confirming), watch it go out, cancel it, and read its figures (also as CSV).

Scheduling writes rows only; the worker sends, never the web request.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from funnel import runtime
from funnel.core.broadcast import (
    broadcast_files,
    fingerprint,
    parse_at,
    parse_local_time,
    parse_where,
    read_broadcast,
)
from funnel.core.sequence import EmailFileError, read_email_file
from funnel.core.states import BroadcastStatus
from funnel.mail.check import run_check
from funnel.newsletter import audience as aud
from funnel.newsletter import scheduling
from funnel.reporting import stats
from funnel.web.admin.auth import admin_only

bp = Blueprint("broadcasts", __name__, url_prefix="/admin/broadcasts")
admin_only(bp)

FIGURES = ("delivered", "opened", "clicked", "unsubscribed", "bounced", "complained")
FIGURE_LABELS = {"complained": "spam"}


def _emails_dir() -> str:
    return runtime.rt().settings.emails_dir


def _item(slug: str):
    try:
        item = read_broadcast(_emails_dir(), slug)
    except (EmailFileError, UnicodeDecodeError):
        return None
    return item


def figures(row) -> dict[str, int]:
    """Sent, delivered, opened, clicked, unsubscribed, bounced and spam for one broadcast."""
    s = runtime.session()
    end = runtime.now() + timedelta(days=1)
    [step] = [r for r in stats.per_step(s, row.created_at - timedelta(days=1), end,
                                        steps=[(row.slug, row.subject)]) if r.slug == row.slug]
    return {"sent": step.sent, **{name: step.count(name) for name in FIGURES}}


@bp.get("/")
def index():
    s = runtime.session()
    rows = {r.slug: r for r in s.scalars(scheduling.select_all())}
    now = runtime.now()
    entries = []
    for path in broadcast_files(_emails_dir()):
        try:
            slug = read_email_file(path).slug or path.stem
        except (EmailFileError, UnicodeDecodeError) as exc:
            entries.append({"slug": path.stem, "status": "broken", "note": str(exc)})
            continue
        row = rows.pop(slug, None)
        item = _item(slug)
        if row is None:
            size = (aud.would_get(s, item.audience, aud.plan_last_step(_emails_dir()), now)
                    if item else 0)
            entries.append({"slug": slug, "status": "draft", "audience": size,
                            "subject": item.subject if item else ""})
        else:
            p = scheduling.progress(s, row)
            entries.append({"slug": slug, "status": row.status, "audience": row.audience_size,
                            "sent": p.sent, "failed": p.failed, "subject": row.subject})
    for slug, row in rows.items():
        p = scheduling.progress(s, row)
        entries.append({"slug": slug, "status": row.status, "audience": row.audience_size,
                        "sent": p.sent, "failed": p.failed, "subject": row.subject,
                        "note": "file removed"})
    return render_template("admin/broadcasts.html", entries=entries)


@bp.get("/<slug>")
def show(slug: str):
    s = runtime.session()
    row = scheduling.find(s, slug)
    item = _item(slug)
    if row is None and item is None:
        abort(404)
    now = runtime.now()
    edited = bool(row and item and fingerprint(item.source.path.read_text(encoding="utf-8"))
                  != fingerprint(row.source))
    b = aud.breakdown(s, item.audience, aud.plan_last_step(_emails_dir()), now) if item else None
    return render_template(
        "admin/broadcast.html", slug=slug, row=row, item=item, edited=edited, breakdown=b,
        progress=scheduling.progress(s, row) if row else None,
        figures=figures(row) if row else None, labels=FIGURE_LABELS,
        refresh=bool(row and row.status in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING)),
    )


def _plan_from_form(item):
    """The form's choices, checked; raises ValueError with a message for the page."""
    now = runtime.now()
    at_text = request.form.get("at", "").strip()
    local_text = request.form.get("local", "").strip()
    where = [w.strip() for w in request.form.get("where", "").split(",") if w.strip()]
    at = parse_at(at_text, now) if at_text else None
    local = parse_local_time(local_text) if local_text else None
    flt = item.audience.merged(parse_where(where))
    return at, local, flt, {"at": at_text, "local": local_text,
                            "where": request.form.get("where", "").strip()}


@bp.post("/<slug>/schedule")
def schedule(slug: str):
    item = _item(slug)
    if item is None:
        abort(404)
    back = redirect(url_for(".show", slug=slug), code=303)
    try:
        at, local, flt, form = _plan_from_form(item)
    except ValueError as exc:
        flash(f"Not scheduled: {exc}")
        return back
    from flask import current_app

    errors = [p.display() for p in run_check(current_app._get_current_object())  # type: ignore[attr-defined]
              if p.level == "error" and (p.path == item.source.path
                                        or p.path.parent.name == "layout")]
    if errors:
        flash("Not scheduled: the file has errors. " + " ".join(errors))
        return back
    s = runtime.session()
    now = runtime.now()
    if request.form.get("confirm") != "yes":
        b = aud.breakdown(s, flt, aud.plan_last_step(_emails_dir()), now)
        return render_template("admin/broadcast_confirm.html", slug=slug, item=item, flt=flt,
                               breakdown=b, form=form, at=at, local=local)
    try:
        done = scheduling.schedule(s, item, audience=flt, now=now, at=at, local=local,
                                   default_timezone=runtime.rt().settings.default_timezone,
                                   last_step=aud.plan_last_step(_emails_dir()))
    except scheduling.ScheduleError as exc:
        flash(f"Not scheduled: {exc}")
        return back
    runtime.rt().wake.set()
    flash(f"Scheduled '{slug}' for {done.recipients} subscribers. The worker sends it.")
    return back


@bp.post("/<slug>/cancel")
def cancel(slug: str):
    s = runtime.session()
    try:
        c = scheduling.cancel(s, slug, runtime.now())
    except scheduling.ScheduleError as exc:
        flash(f"Not cancelled: {exc}")
    else:
        flash(f"Cancelled '{slug}': {c.sent} went out, {c.stopped} will not get it"
              + (f", {c.in_flight} were being handed over and may still go." if c.in_flight
                 else "."))
    return redirect(url_for(".show", slug=slug), code=303)


@bp.get("/<slug>/figures.csv")
def figures_csv(slug: str):
    row = scheduling.find(runtime.session(), slug)
    if row is None:
        abort(404)
    f = figures(row)
    p = scheduling.progress(runtime.session(), row)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["slug", "subject", "status", "audience", "sent", "failed", "skipped",
                "cancelled", *[FIGURE_LABELS.get(k, k) for k in FIGURES]])
    subject = row.subject
    if subject[:1] in ("=", "+", "-", "@"):
        subject = "'" + subject  # a spreadsheet must not run it as a formula
    w.writerow([row.slug, subject, row.status, row.audience_size, p.sent, p.failed,
                p.skipped, p.cancelled, *[f[k] for k in FIGURES]])
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="broadcast-{slug}-{stamp}.csv"'})
