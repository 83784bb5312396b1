"""Admin sessions can be ended: logout and a password change end every copy of
the cookie, and no session outlives its absolute lifetime however busy."""

from __future__ import annotations

from sqlalchemy import select

from funnel.models import AdminUser
from tests.conftest import csrf_token
from tests.test_admin import ADMIN, PASSWORD, admin, log_in, logged_in  # noqa: F401


def copy_of(app, client):
    """A second browser holding a copy of CLIENT's session cookie (a stolen cookie)."""
    thief = app.test_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value, domain=cookie.domain or "localhost")
    return thief


def test_logout_ends_every_copy_of_the_cookie(app, logged_in):  # noqa: F811
    thief = copy_of(app, logged_in)
    assert thief.get("/admin/").status_code == 200  # the copy works while logged in ...
    resp = logged_in.post("/admin/logout", data={"csrf_token": csrf_token(logged_in, "/admin/")})
    assert resp.status_code == 302
    assert logged_in.get("/admin/").status_code == 302
    assert thief.get("/admin/").status_code == 302  # ... and not after the logout


def test_a_password_change_ends_every_session(app, runner, logged_in):  # noqa: F811
    thief = copy_of(app, logged_in)
    result = runner.invoke(args=["admin", "create", ADMIN], input="a brand new password\n" * 2)
    assert result.exit_code == 0, result.output
    assert thief.get("/admin/").status_code == 302
    assert logged_in.get("/admin/").status_code == 302
    fresh = app.test_client()
    assert log_in(fresh, password="a brand new password").status_code == 302
    assert fresh.get("/admin/").status_code == 200


def test_a_busy_session_still_ends_after_its_absolute_lifetime(logged_in, clock):  # noqa: F811
    for _ in range(12):  # in use every hour: the idle timeout never fires
        clock.advance(hours=1)
        assert logged_in.get("/admin/").status_code == 200
    clock.advance(hours=1)
    resp = logged_in.get("/admin/")
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]


def test_a_new_login_after_logout_does_not_revive_the_old_cookie(app, client, admin):  # noqa: F811
    log_in(client)
    thief = copy_of(app, client)
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    log_in(client)
    assert client.get("/admin/").status_code == 200
    assert thief.get("/admin/").status_code == 302


def test_admin_create_never_takes_the_password_as_an_option(runner, db):
    result = runner.invoke(args=["admin", "create", "new@example.com",
                                 "--password", "a long password here"])
    assert result.exit_code != 0 and "No such option" in result.output
    db.rollback()
    assert db.scalar(select(AdminUser).where(AdminUser.email == "new@example.com")) is None


def test_admin_create_reads_the_password_from_a_prompt(runner, db):
    result = runner.invoke(args=["admin", "create", "new@example.com"],
                           input="a long password here\na long password here\n")
    assert result.exit_code == 0, result.output
    assert "a long password here" not in result.output  # the prompt hides it


def test_admin_create_reads_the_password_from_stdin(runner, db):
    result = runner.invoke(args=["admin", "create", "new@example.com", "--password-stdin"],
                           input="a long password here\n")
    assert result.exit_code == 0, result.output
    db.rollback()
    assert db.scalar(select(AdminUser).where(AdminUser.email == "new@example.com")) is not None
    short = runner.invoke(args=["admin", "create", "x@example.com", "--password-stdin"],
                          input="short\n")
    assert short.exit_code != 0 and "at least 10 characters" in short.output
