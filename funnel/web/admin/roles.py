"""Which role each admin page needs, checked before every admin request.

One table, ``NEEDS``, maps every admin endpoint to the least role that may use it
(a test walks ``app.url_map`` and fails on an admin endpoint missing here). An
endpoint not in the table needs an owner: a page added without thinking about
roles is closed, not open. The login itself is checked by ``web.auth`` as before;
this runs first and only judges signed-in accounts.
"""

from __future__ import annotations

from flask import Flask, g, render_template, request

from funnel.accounts.team import may
from funnel.core.states import AdminRole
from funnel.web.admin.auth import current_admin

OWNER, EDITOR, VIEWER = AdminRole.OWNER.value, AdminRole.EDITOR.value, AdminRole.VIEWER.value

# No role: reached before signing in.
PUBLIC = frozenset({"auth.login"})

NEEDS: dict[str, str] = {
    # Anyone signed in: the dashboard, the figures, their own time zone, logging out.
    "auth.logout": VIEWER,
    "admin.dashboard": VIEWER,
    "admin.stats_csv": VIEWER,
    "broadcasts.index": VIEWER,
    "broadcasts.show": VIEWER,
    "broadcasts.figures_csv": VIEWER,
    "broadcast_studio.audience_json": VIEWER,
    "broadcast_studio.timezone": VIEWER,
    "admin_sessions.index": VIEWER,       # each account's own sessions and two-factor
    "admin_sessions.end": VIEWER,
    "admin_sessions.end_others": VIEWER,
    "two_factor.code": VIEWER,
    "two_factor.manage": VIEWER,
    "automation.sequences": VIEWER,       # the sequences' figures
    "automation.sequence": VIEWER,
    "sending.page": VIEWER,               # the deliverability check-up and the brakes
    # Editors: write, preview, test and schedule.
    "email_previews.index": EDITOR,
    "email_previews.index_version": EDITOR,
    "email_previews.preview": EDITOR,
    "email_previews.preview_version": EDITOR,
    "email_previews.preview_html": EDITOR,
    "email_previews.preview_text": EDITOR,
    "email_previews.send_test": EDITOR,
    "email_editor.edit": EDITOR,
    "email_editor.edit_post": EDITOR,
    "email_editor.check": EDITOR,
    "email_editor.pictures": EDITOR,
    "email_editor.restore": EDITOR,
    "email_editor.static": EDITOR,
    "broadcasts.schedule": EDITOR,
    "broadcasts.cancel": EDITOR,
    "broadcast_studio.new": EDITOR,
    "broadcast_studio.send_test": EDITOR,
    "broadcast_studio.move": EDITOR,
    "test_sends.recent": EDITOR,
    # Owners: people's data (export, erase, import), settings and the team.
    "admin.subscribers": OWNER,
    "admin.subscribers_csv": OWNER,
    "admin.subscriber": OWNER,
    "admin.erase": OWNER,
    "admin.unsubscribe": OWNER,
    "admin.suppression": OWNER,
    "admin.suppression_action": OWNER,
    "admin_subscriber.confirm_by_hand": OWNER,
    "admin_subscriber.pause": OWNER,
    "admin_subscriber.edit_profile": OWNER,
    "admin_subscriber.resend_confirmation": OWNER,
    "admin_subscriber.resume": OWNER,
    "admin_subscriber.retry_subscriber": OWNER,
    "admin_subscriber.retry_step": OWNER,
    "admin_import.index": OWNER,
    "admin_import.upload": OWNER,
    "admin_import.job": OWNER,
    "admin_import.job_json": OWNER,
    "admin_import.confirm": OWNER,
    "admin_import.mapping": OWNER,
    "admin_import.request_optin": OWNER,
    "admin_import.preview": OWNER,
    "connect.embed_page": OWNER,
    "connect.webhooks": OWNER,
    "connect.webhooks_add": OWNER,
    "connect.webhooks_change": OWNER,
    "connect.webhooks_again": OWNER,
    "admin_tags.add": OWNER,
    "admin_tags.remove": OWNER,
    "automation.rule": OWNER,             # lists the people a rule fired for
    "connect.webhooks_reveal": OWNER,
    "sending.resume": OWNER,              # an owner resumes what the brakes paused
    "team.index": OWNER,
    "team.add": OWNER,
    "team.change": OWNER,
    "team.remove": OWNER,
}

ROLE_WORDS = {
    OWNER: "an owner (everything)",
    EDITOR: "an editor (write, preview, test and schedule newsletters)",
    VIEWER: "a viewer (the dashboard and the figures)",
}


def needed(endpoint: str | None) -> str:
    return NEEDS.get(endpoint or "", OWNER)


def is_admin_endpoint(app: Flask, endpoint: str) -> bool:
    return any(r.rule.startswith("/admin") for r in app.url_map.iter_rules(endpoint=endpoint))


def init_app(app: Flask) -> None:
    admin_endpoints: set[str] = set()

    @app.before_request
    def _check_role():
        endpoint = request.endpoint
        if endpoint is None or endpoint in PUBLIC:
            return None
        if not admin_endpoints:
            admin_endpoints.update(r.endpoint for r in app.url_map.iter_rules()
                                   if r.rule.startswith("/admin"))
        if endpoint not in admin_endpoints:
            return None
        admin = current_admin()
        if admin is None:
            return None  # web.auth sends them to the login page
        role = needed(endpoint)
        if may(admin.role, role):
            return None
        return render_template("admin/forbidden.html", admin=admin, needed=role,
                               words=ROLE_WORDS), 403, {"Cache-Control": "no-store"}

    @app.context_processor
    def _roles():
        def admin_may(endpoint: str) -> bool:
            """For the menu: show only what this account may open."""
            if "admin_role" not in g:
                admin = current_admin() if request.path.startswith("/admin") else None
                g.admin_role = admin.role if admin is not None else None
            return g.admin_role is not None and may(g.admin_role, needed(endpoint))

        return {"admin_may": admin_may}
