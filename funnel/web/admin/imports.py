"""Import from the browser: upload, map, preview (nothing written), confirm, progress.

The import itself runs in the worker (``import_jobs.run_pending``), never in the
request; the job page polls ``/<id>.json`` for progress.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from funnel import runtime
from funnel.importing import import_jobs
from funnel.importing.import_jobs import ImportInputError
from funnel.models import ImportJob
from funnel.web.admin.auth import admin_only, current_admin

bp = Blueprint("admin_import", __name__, url_prefix="/admin/import")
admin_only(bp)

FIELD_LABELS = (("email", "email address"), ("first_name", "first name"),
                ("status", "status (pending, confirmed, …)"), ("source", "source (kept as UTM source)"))


@bp.url_value_preprocessor
def _room_for_uploads(endpoint, _values):
    """The app caps request bodies at 1 MB; an upload may be larger. This runs before
    the app's CSRF check reads the body."""
    if endpoint == "admin_import.upload":
        request.max_content_length = import_jobs.MAX_BYTES + 64 * 1024


def _job(public_id: str) -> ImportJob:
    job = runtime.session().scalar(select(ImportJob).where(ImportJob.public_id == public_id))
    if job is None:
        abort(404)
    return job


@bp.get("/")
def index():
    jobs = runtime.session().scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(20))
    return render_template("admin/import_upload.html", jobs=list(jobs))


@bp.post("/")
def upload():
    f = request.files.get("file")
    if f is None or not f.filename:
        flash("Choose a CSV file to upload.")
        return redirect(url_for(".index"), code=303)
    data = f.stream.read(import_jobs.MAX_BYTES + 1)
    filename = f.filename.replace("\\", "/").rsplit("/", 1)[-1][:200]
    try:
        text = import_jobs.decode_upload(data, filename)
    except ImportInputError as exc:
        flash(str(exc))
        return redirect(url_for(".index"), code=303)
    header, _rows = import_jobs.sample(text)
    admin = current_admin()
    assert admin is not None
    s = runtime.session()
    job = ImportJob(filename=filename, content=text, state=import_jobs.UPLOADED,
                    mapping=json.dumps(import_jobs.guess_mapping(header)),
                    created_by=admin.email, created_at=runtime.now(),
                    rows_total=sum(1 for _ in import_jobs.mapped_rows(text, [""] * len(header))))
    s.add(job)
    s.commit()
    return redirect(url_for(".mapping", public_id=job.public_id), code=303)


def _editable(job: ImportJob) -> None:
    if job.state not in (import_jobs.UPLOADED, import_jobs.PREVIEWED):
        flash("This import was already confirmed; upload the file again to change it.")
        abort(redirect(url_for(".job", public_id=job.public_id), code=303))


@bp.get("/<public_id>/map")
def mapping(public_id: str):
    job = _job(public_id)
    _editable(job)
    header, rows = import_jobs.sample(job.content)
    return render_template("admin/import_map.html", job=job, header=header, rows=rows,
                           mapping=import_jobs.job_mapping(job), fields=FIELD_LABELS, error="")


@bp.post("/<public_id>/preview")
def preview(public_id: str):
    """Save the mapping and consent statement, then show what would happen."""
    job = _job(public_id)
    _editable(job)
    s = runtime.session()
    header, _rows = import_jobs.sample(job.content)
    chosen = [request.form.get(f"col-{i}", "") for i in range(len(header))]
    confirmed = request.form.get("mode") == "confirmed"
    try:
        import_jobs.check_mapping(header, chosen)
        source = import_jobs.check_consent(confirmed, request.form.get("consent_source", ""))
    except ImportInputError as exc:
        # Show the marketer's choices back, unsaved.
        job.mapping, job.confirmed = json.dumps(chosen), confirmed
        job.consent_source = (request.form.get("consent_source") or "")[:300]
        page = render_template("admin/import_map.html", job=job, header=header,
                               rows=import_jobs.sample(job.content)[1], mapping=chosen,
                               fields=FIELD_LABELS, error=str(exc))
        s.rollback()
        return page, 422
    job.mapping, job.confirmed, job.consent_source = json.dumps(chosen), confirmed, source or None
    job.state = import_jobs.PREVIEWED
    s.commit()
    outcome = import_jobs.preview(s, job, runtime.rt().settings, runtime.now())
    return render_template("admin/import_preview.html", job=job, outcome=outcome, done=False)


@bp.post("/<public_id>/confirm")
def confirm(public_id: str):
    job = _job(public_id)
    if job.state != import_jobs.PREVIEWED:
        flash("Preview the import first." if job.state == import_jobs.UPLOADED
              else "This import was already confirmed.")
        return redirect(url_for(".job", public_id=public_id), code=303)
    job.state = import_jobs.QUEUED
    runtime.session().commit()
    runtime.rt().wake.set()  # an embedded worker starts at once
    return redirect(url_for(".job", public_id=public_id), code=303)


@bp.get("/<public_id>")
def job(public_id: str):
    job = _job(public_id)
    if job.state in (import_jobs.UPLOADED, import_jobs.PREVIEWED):
        return redirect(url_for(".mapping", public_id=public_id))
    s = runtime.session()
    outcome = import_jobs.Outcome.from_json(job.report)
    optin = import_jobs.optin_status(s, job, runtime.rt().settings, runtime.now())
    return render_template("admin/import_job.html", job=job, outcome=outcome, done=True,
                           optin=optin)


@bp.get("/<public_id>.json")
def job_json(public_id: str):
    job = _job(public_id)
    return jsonify(state=job.state, rows_done=job.rows_done or 0, rows_total=job.rows_total or 0)


@bp.post("/<public_id>/optin")
def request_optin(public_id: str):
    job = _job(public_id)
    if job.state != import_jobs.DONE or job.confirmed:
        flash("Opt-in emails are for finished imports of pending people.")
    elif job.optin_requested_at is not None:
        flash("Opt-in emails were already requested for this import; each person gets one.")
    else:
        job.optin_requested_at = runtime.now()
        runtime.session().commit()
        runtime.rt().wake.set()
        flash("Opt-in emails requested: the worker sends them, at most the daily cap a day.")
    return redirect(url_for(".job", public_id=public_id), code=303)
