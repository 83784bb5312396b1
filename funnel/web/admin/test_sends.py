"""Test sends as the admin pages ask for them: checked and queued here, sent by the
worker (``funnel.studio.test_sends``), and the admin's latest tests of an email
shown with how each went, the list following its state while any is still waiting.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from funnel import runtime
from funnel.core.sequence import EmailSource
from funnel.models import AdminUser
from funnel.studio import test_sends
from funnel.web.admin import broadcast_form
from funnel.web.admin.auth import admin_only, current_admin

bp = Blueprint("test_sends", __name__, url_prefix="/admin/test-sends")
admin_only(bp)


def queue(admin: AdminUser, src: EmailSource, address: str, *, broadcast: bool,
          subject: str | None = None) -> tuple[bool, str]:
    """Queue one test; (queued, what to tell the admin)."""
    r = runtime.rt()
    try:
        row = test_sends.queue_test_send(
            runtime.session(), r.composer, r.settings.emails_dir, src, admin_id=admin.id,
            address=address, now=runtime.now(), broadcast=broadcast, subject=subject)
    except test_sends.TestSendRefused as exc:
        return False, str(exc)
    r.wake.set()  # an embedded worker sends it at once
    return True, f"Test queued for {row.address}: it goes out within a minute."


def listing(admin: AdminUser | None, slug: str) -> dict:
    """What ``admin/_test_sends.html`` needs."""
    rows = test_sends.recent(runtime.session(), admin.id, slug) if admin else []
    return {"test_sends": rows, "test_sends_pending": test_sends.pending(rows),
            "test_sends_tz": broadcast_form.admin_zone(admin), "test_sends_slug": slug}


@bp.get("/<slug>.json")
def recent(slug: str):
    """The list again, for the page to follow a test until it has gone out."""
    view = listing(current_admin(), slug)
    html = render_template("admin/_test_sends_list.html", **view)
    return jsonify(html=html, pending=view["test_sends_pending"])
