"""Shared arrangements for the admin tests: an account, a login, a subscriber."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from funnel.accounts.passwords import hash_password
from funnel.models import AdminUser, Subscriber
from tests.conftest import csrf_token

ADMIN = "coach@example.com"
PASSWORD = "correct horse battery"
# Screenshots the browser tests keep (ignored by git): test-artifacts/ at the repo root.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def admin(db, clock):
    db.add(AdminUser(email=ADMIN, password_hash=hash_password(PASSWORD), created_at=clock.now))
    db.commit()
    return ADMIN


@pytest.fixture
def logged_in(client, admin):
    token = csrf_token(client, "/admin/login")
    resp = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD,
                                             "csrf_token": token})
    assert resp.status_code == 302
    return client


def token_on(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def post(client, path: str, page: str, **data):
    return client.post(path, data={"csrf_token": token_on(client, page), **data})


def reload(db, sub: Subscriber) -> Subscriber | None:
    db.rollback()
    db.expunge_all()
    return db.get(Subscriber, sub.id)


def a_subscriber(db, clock, email="someone@example.com", status="confirmed",
                 tz="UTC") -> Subscriber:
    sub = Subscriber(email=email, status=status, timezone=tz, created_at=clock.now,
                     confirmed_at=clock.now if status == "confirmed" else None,
                     next_due_at=clock.now if status == "confirmed" else None)
    db.add(sub)
    db.commit()
    return sub


def browser_log_in(page, base: str, path: str = "/admin/") -> None:
    page.goto(base + path)
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
