"""Each admin account sees where it is signed in and can sign out any session, or
everywhere else at once (issue 27)."""

from __future__ import annotations

import re

from tests.admin_support import ADMIN, PASSWORD
from tests.conftest import csrf_token


def browser(app, agent: str, ip: str):
    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    token = csrf_token(client, "/admin/login")
    resp = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD,
                                             "csrf_token": token})
    assert resp.status_code == 302
    return client


def test_the_account_sees_its_sessions_and_ends_one(app, admin, db):
    laptop = browser(app, "Laptop Firefox", "198.51.100.1")
    phone = browser(app, "Phone Safari", "198.51.100.2")
    page = laptop.get("/admin/sessions").get_data(as_text=True)
    assert "Laptop Firefox" in page and "(this browser)" in page
    assert "Phone Safari" in page and "198.51.100.2" in page
    sid = re.search(r'<tr id="session-([0-9a-f]+)">\s*<td>Phone Safari', page).group(1)
    resp = laptop.post(f"/admin/sessions/{sid}/end",
                       data={"csrf_token": csrf_token(laptop, "/admin/sessions")})
    assert resp.status_code == 303
    assert phone.get("/admin/").status_code == 302  # the phone is signed out
    assert laptop.get("/admin/").status_code == 200  # the laptop is not
    assert "Phone Safari" not in laptop.get("/admin/sessions").get_data(as_text=True)


def test_sign_out_everywhere_else(app, admin):
    laptop = browser(app, "Laptop Firefox", "198.51.100.1")
    others = [browser(app, f"Stolen cookie {i}", f"203.0.113.{i}") for i in range(3)]
    resp = laptop.post("/admin/sessions/end-others",
                       data={"csrf_token": csrf_token(laptop, "/admin/sessions")})
    assert resp.status_code == 303
    assert all(o.get("/admin/").status_code == 302 for o in others)
    page = laptop.get("/admin/sessions").get_data(as_text=True)
    assert laptop.get("/admin/").status_code == 200
    assert "Stolen cookie" not in page and page.count('id="session-') == 1


def test_another_accounts_session_cannot_be_ended(app, admin, db, clock):
    from funnel.accounts.passwords import hash_password
    from funnel.models import AdminSession, AdminUser

    db.add(AdminUser(email="other@example.com", password_hash=hash_password(PASSWORD),
                     created_at=clock.now))
    db.commit()
    other = app.test_client()
    token = csrf_token(other, "/admin/login")
    other.post("/admin/login", data={"email": "other@example.com", "password": PASSWORD,
                                     "csrf_token": token})
    db.rollback()
    [theirs] = [r.public_id for r in db.query(AdminSession).all()]
    mine = browser(app, "Laptop Firefox", "198.51.100.1")
    mine.post(f"/admin/sessions/{theirs}/end",
              data={"csrf_token": csrf_token(mine, "/admin/sessions")})
    assert other.get("/admin/").status_code == 200
