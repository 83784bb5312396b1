"""The admin's tags on one subscriber: shown on their page, added and removed there.

The same use cases as the CLI, the API, the import and the rules (funnel.tagging).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for
from sqlalchemy.orm import Session

from funnel import runtime, tagging
from funnel.automation import report
from funnel.core.inputs import FunnelError
from funnel.core.states import TagSource
from funnel.models import Subscriber
from funnel.subscribers import actions as subscribers
from funnel.web.admin.auth import admin_only, current_admin

bp = Blueprint("admin_tags", __name__, url_prefix="/admin")
admin_only(bp)


def subscriber_panel(session: Session, sub: Subscriber) -> dict[str, Any]:
    """What the subscriber's page shows of tags (merged into its template's values)."""
    sequence_rows, rule_rows = report.subscriber_history(session, sub.id)
    return {"tags": tagging.tags_of(session, sub.id), "sequence_rows": sequence_rows,
            "rule_rows": rule_rows}


def _sub(public_id: str) -> Subscriber:
    sub = subscribers.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        abort(404)
    return sub


def _back(public_id: str):
    return redirect(url_for("admin.subscriber", public_id=public_id) + "#tags", code=303)


@bp.post("/subscribers/<public_id>/tags")
def add(public_id: str):
    sub = _sub(public_id)
    s = runtime.session()
    try:
        tags = tagging.parse_tags(request.form.get("tags", ""))
        reason = tagging.clean_reason(request.form.get("reason", ""))
        if not tags:
            raise FunnelError("Type at least one tag.", "tags")
    except FunnelError as exc:
        flash(f"{exc} Nothing was changed.")
        return _back(public_id)
    admin = current_admin()
    reason = reason or (f"added by {admin.email}"[:200] if admin else None)
    added = [t for t in tags if tagging.add_tag(s, sub.id, t, now=runtime.now(),
                                                 source=TagSource.ADMIN, reason=reason)]
    s.commit()
    runtime.rt().wake.set()  # rules that start on a tag run on the worker's next pass
    had = [t for t in tags if t not in added]
    flash((f"Added: {', '.join(added)}." if added else "")
          + (f" Already there: {', '.join(had)}." if had else ""))
    return _back(public_id)


@bp.post("/subscribers/<public_id>/tags/remove")
def remove(public_id: str):
    sub = _sub(public_id)
    s = runtime.session()
    try:
        tag = tagging.parse_tag(request.form.get("tag", ""))
    except FunnelError as exc:
        flash(f"{exc} Nothing was changed.")
        return _back(public_id)
    removed = tagging.remove_tag(s, sub.id, tag)
    s.commit()
    flash(f"Removed {tag}." if removed else f"They did not have {tag}.")
    return _back(public_id)
