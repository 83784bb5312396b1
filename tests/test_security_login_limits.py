"""Per-account sign-in limits (issue 27): a guesser is slowed down exponentially on
the account it attacks, and neither it nor a crowd of strangers can lock the owner
out of their own connection."""

from __future__ import annotations

import re

import pytest

from funnel.web.admin import login_limits
from tests.admin_support import ADMIN, PASSWORD
from tests.conftest import csrf_token

OWNER_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.66"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RATELIMIT_LOGIN": "10000 per minute"}


@pytest.fixture
def wall(monkeypatch):
    """The limits' own clock (wall time), moved by hand."""
    from funnel.http import ratelimits

    now = [2_000_000.0]
    monkeypatch.setattr(ratelimits, "time",
                        type("Clock", (), {"time": staticmethod(lambda: now[0])}))
    return now


def log_in(app, ip: str, password: str, email: str = ADMIN):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    token = csrf_token(client, "/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password,
                                             "csrf_token": token})


def waited(resp) -> int:
    m = re.search(r"Wait (\d+) seconds", resp.get_data(as_text=True))
    assert m and resp.status_code == 429, resp.get_data(as_text=True)[:300]
    return int(m.group(1))


def test_each_failure_doubles_the_wait_of_that_client_on_that_account(app, admin, wall):
    statuses = [log_in(app, ATTACKER_IP, f"guess {i}").status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    delays = []
    for i in range(5):
        delay = waited(log_in(app, ATTACKER_IP, PASSWORD))  # even the right one waits
        delays.append(delay)
        wall[0] += delay
        assert log_in(app, ATTACKER_IP, f"more {i}").status_code == 401
    assert delays == [1, 2, 4, 8, 16]


def test_the_owner_signs_in_from_their_connection_while_a_guesser_waits(app, admin, wall):
    for i in range(10):
        assert log_in(app, ATTACKER_IP, f"guess {i}").status_code == 401
        wall[0] += 600
    wall[0] -= 600
    assert waited(log_in(app, ATTACKER_IP, "again")) == 2 ** 7
    assert log_in(app, OWNER_IP, PASSWORD).status_code == 302


def test_a_crowd_of_strangers_is_capped_but_the_owners_known_connection_is_not(
        app, admin, wall):
    assert log_in(app, OWNER_IP, PASSWORD).status_code == 302  # known from now on
    for i in range(login_limits.STRANGER_FAILURES):
        assert log_in(app, f"192.0.2.{i + 1}", "botnet guess").status_code == 401
    assert waited(log_in(app, "192.0.2.250", PASSWORD)) <= login_limits.STRANGER_WINDOW
    assert log_in(app, OWNER_IP, PASSWORD).status_code == 302
    wall[0] += login_limits.STRANGER_WINDOW + 1
    assert log_in(app, "192.0.2.250", PASSWORD).status_code == 302


def test_unknown_accounts_are_slowed_the_same_way(app, admin, wall):
    """No difference between an account that exists and one that does not."""
    for email in (ADMIN, "nobody@example.com"):
        assert [log_in(app, ATTACKER_IP, "x", email).status_code for _ in range(3)] == [401] * 3
        assert waited(log_in(app, ATTACKER_IP, "x", email)) == 1
