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
from funnel.core import timezones
from funnel.core.broadcast import broadcast_files, fingerprint, read_broadcast
from funnel.core.sequence import EmailFileError, read_email_file
from funnel.core.states import BroadcastStatus
from funnel.mail.check_kept import kept_check
from funnel.newsletter import audience as aud
from funnel.newsletter import scheduling, subject_tests
from funnel.reporting import stats
from funnel.web.admin import broadcast_form, test_sends
from funnel.web.admin.auth import admin_only, current_admin

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
    # Who would get it and the audience menus read the whole list: only for the form
    # that schedules it, never while it is sent (a million readers, every 15 seconds).
    form = item is not None and (row is None or row.status == BroadcastStatus.CANCELLED)
    b = aud.breakdown(s, item.audience, aud.plan_last_step(_emails_dir()), now) if form else None
    admin = current_admin()
    return render_template(
        "admin/broadcast.html", slug=slug, row=row, item=item, edited=edited, breakdown=b,
        tz=broadcast_form.admin_zone(admin), admin=admin,
        choices=broadcast_form.choices() if form else {},
        test_figures=subject_tests.figures(s, row) if row else [],
        admin_has_zone=bool(admin and admin.timezone), zone_groups=timezones.grouped,
        progress=scheduling.progress(s, row) if row else None,
        figures=figures(row) if row else None, labels=FIGURE_LABELS,
        refresh=bool(row and row.status in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING)),
        **test_sends.listing(admin, slug),
    )


@bp.post("/<slug>/schedule")
def schedule(slug: str):
    item = _item(slug)
    if item is None:
        abort(404)
    back = redirect(url_for(".show", slug=slug), code=303)
    admin = current_admin()
    try:
        plan = broadcast_form.plan_from_form(item, admin)
    except ValueError as exc:
        flash(f"Not scheduled: {exc}")
        return back
    at, local, flt, form = plan.at, plan.local, plan.flt, plan.form
    from flask import current_app

    errors = [p.display() for p in kept_check(current_app._get_current_object())  # type: ignore[attr-defined]
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
                               breakdown=b, form=form, at=at, local=local, plan=plan,
                               tz=broadcast_form.admin_zone(admin))
    try:
        done = scheduling.schedule(s, item, audience=flt, now=now, at=at, local=local,
                                   default_timezone=runtime.rt().settings.default_timezone,
                                   last_step=aud.plan_last_step(_emails_dir()), test=plan.test)
    except scheduling.ScheduleError as exc:
        flash(f"Not scheduled: {exc}")
        return back
    runtime.rt().wake.set()
    flash(f"Scheduled '{slug}' for {done.recipients} subscribers. The worker sends it."
          + (f" {done.test_note}" if done.test_note else ""))
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
