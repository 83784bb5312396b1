"""A small team: every admin page declares the role it needs; editors and viewers get a
clear 403 on owner pages; owners manage accounts; the last owner stays."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from funnel.accounts.passwords import hash_password
from funnel.models import AdminUser
from funnel.web.admin import roles
from tests.admin_support import ADMIN, PASSWORD, post
from tests.conftest import csrf_token

EDITOR = "editor@example.com"
VIEWER = "viewer@example.com"


def text(resp) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True))))


def _account(db, clock, email: str, role: str) -> AdminUser:
    a = AdminUser(email=email, password_hash=hash_password(PASSWORD), created_at=clock.now,
                  role=role)
    db.add(a)
    db.commit()
    return a


def _log_in(app, email: str):
    client = app.test_client()
    token = csrf_token(client, "/admin/login")
    resp = client.post("/admin/login", data={"email": email, "password": PASSWORD,
                                             "csrf_token": token})
    assert resp.status_code == 302
    return client


def _admin_rules(app):
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/admin")]


def test_every_admin_endpoint_declares_its_role(app):
    missing = sorted({r.endpoint for r in _admin_rules(app)}
                     - set(roles.NEEDS) - roles.PUBLIC)
    assert missing == [], f"admin pages without a role in funnel.web.roles.NEEDS: {missing}"
    stale = sorted(set(roles.NEEDS) - {r.endpoint for r in app.url_map.iter_rules()})
    assert stale == [], f"roles declared for pages that do not exist: {stale}"


def _path(rule) -> str:
    """A URL for the rule, with made-up values (an int where it takes one)."""
    return re.sub(r"<(int:)?([a-z_]+)>", lambda m: "1" if m.group(1) else "x", rule.rule)


@pytest.mark.parametrize("who, role", [(EDITOR, "editor"), (VIEWER, "viewer")])
def test_pages_above_the_role_answer_403_with_a_clear_page(app, db, clock, admin, who, role):
    _account(db, clock, who, role)
    client = _log_in(app, who)
    token = csrf_token(client, "/admin/")
    checked = 0
    for rule in _admin_rules(app):
        if rule.endpoint in roles.PUBLIC:
            continue
        needed = roles.needed(rule.endpoint)
        if needed == role or (role == "editor" and needed == "viewer"):
            continue  # pages the role may open
        method = "GET" if "GET" in rule.methods else "POST"
        resp = client.open(_path(rule), method=method, data={"csrf_token": token})
        assert resp.status_code == 403, (rule.endpoint, resp.status_code)
        assert "This page is not for your role" in text(resp)
        assert f"{who}" in text(resp) and "needs" in text(resp)
        checked += 1
    assert checked > 20
    # Nothing changed: the POSTs above were refused before they ran.
    db.rollback()
    assert db.scalar(select(AdminUser.role).where(AdminUser.email == ADMIN)) == "owner"


def test_an_editor_reaches_write_and_schedule_pages_but_not_export(app, db, clock, admin):
    _account(db, clock, EDITOR, "editor")
    client = _log_in(app, EDITOR)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/broadcasts/new").status_code == 200
    assert client.get("/admin/emails/").status_code == 200
    for path in ("/admin/subscribers.csv", "/admin/import/", "/admin/webhooks", "/admin/team/"):
        assert client.get(path).status_code == 403, path
    menu = client.get("/admin/").get_data(as_text=True)
    assert "Newsletter" in menu and ">Team<" not in menu and ">Import<" not in menu


def test_a_viewer_sees_the_dashboard_and_figures_only(app, db, clock, admin):
    _account(db, clock, VIEWER, "viewer")
    client = _log_in(app, VIEWER)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/broadcasts/").status_code == 200
    assert client.get("/admin/broadcasts/new").status_code == 403
    assert client.get("/admin/subscribers").status_code == 403


def test_an_owner_manages_the_team(logged_in, db):
    client = logged_in
    resp = post(client, "/admin/team/", "/admin/team/", email="Helper@Example.com",
                password="long enough pass", role="editor")
    assert resp.status_code == 303
    page = text(client.get("/admin/team/"))
    assert "Added helper@example.com as editor" in page
    db.rollback()
    helper = db.scalar(select(AdminUser).where(AdminUser.email == "helper@example.com"))
    assert helper.role == "editor"
    helper_id = helper.id
    post(client, f"/admin/team/{helper_id}/role", "/admin/team/", role="viewer")
    db.rollback()
    assert db.scalar(select(AdminUser.role).where(AdminUser.id == helper_id)) == "viewer"
    post(client, f"/admin/team/{helper_id}/remove", "/admin/team/")
    db.rollback()
    assert db.scalar(select(AdminUser.id).where(AdminUser.id == helper_id)) is None


@pytest.mark.parametrize("fields, message", [
    ({"email": "not an address", "password": "long enough pass", "role": "editor"}, "Not added"),
    ({"email": "a@example.com", "password": "short", "role": "editor"}, "at least 10"),
    ({"email": "a@example.com", "password": "long enough pass", "role": "god"}, "role must be"),
    ({"email": ADMIN, "password": "long enough pass", "role": "viewer"}, "has an account"),
])
def test_bad_team_input_is_refused(logged_in, db, fields, message):
    resp = post(logged_in, "/admin/team/", "/admin/team/", **fields)
    assert resp.status_code == 303
    assert message in text(logged_in.get("/admin/team/"))
    db.rollback()
    assert db.scalar(select(AdminUser.email).where(AdminUser.email == "a@example.com")) is None
    assert db.scalar(select(AdminUser.role).where(AdminUser.email == ADMIN)) == "owner"


def test_the_last_owner_cannot_be_removed_or_demoted(logged_in, db):
    me = db.scalar(select(AdminUser).where(AdminUser.email == ADMIN))
    post(logged_in, f"/admin/team/{me.id}/role", "/admin/team/", role="editor")
    assert "is the last owner and cannot be made editor" in text(logged_in.get("/admin/team/"))
    post(logged_in, f"/admin/team/{me.id}/remove", "/admin/team/")
    assert "is the last owner and cannot be removed" in text(logged_in.get("/admin/team/"))
    db.rollback()
    assert db.scalar(select(AdminUser.role).where(AdminUser.email == ADMIN)) == "owner"


def test_cli_creates_an_editor(runner, db):
    result = runner.invoke(args=["admin", "create", "ed@example.com", "--role", "editor",
                                 "--password-stdin"], input="a long password\n")
    assert result.exit_code == 0, result.output
    assert "(role: editor)" in result.output
    assert db.scalar(select(AdminUser.role).where(AdminUser.email == "ed@example.com")) == "editor"
    bad = runner.invoke(args=["admin", "create", "x@example.com", "--role", "boss",
                              "--password-stdin"], input="a long password\n")
    assert bad.exit_code != 0 and "boss" in bad.output
    db.rollback()
    assert db.scalar(select(AdminUser.id).where(AdminUser.email == "x@example.com")) is None


def test_cli_will_not_demote_the_last_owner(runner, db, admin):
    result = runner.invoke(args=["admin", "create", ADMIN, "--role", "viewer",
                                 "--password-stdin"], input="a long password\n")
    assert result.exit_code != 0 and "last owner" in result.output
    db.rollback()
    assert db.scalar(select(AdminUser.role).where(AdminUser.email == ADMIN)) == "owner"
