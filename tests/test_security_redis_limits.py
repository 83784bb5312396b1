"""RATELIMIT_STORAGE_URI=redis://… : the limits are counted in Redis, so several
web processes share them and a restart does not reset them."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import csrf_token

REDIS_URL = os.environ.get("FUNNEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")


@pytest.fixture
def redis_url():
    redis = pytest.importorskip("redis", reason="the redis extra is not installed")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis server at {REDIS_URL} (set FUNNEL_TEST_REDIS_URL)")
    return REDIS_URL


@pytest.fixture
def app_config(app_config, redis_url):
    # A fresh key prefix per test: counters from other runs never interfere.
    return {**app_config, "RATELIMIT_STORAGE_URI": redis_url,
            "RATELIMIT_KEY_PREFIX": f"funnel-test-{uuid.uuid4().hex}",
            "RATELIMIT_SIGNUP": "3 per minute", "RATELIMIT_LOGIN": "2 per minute"}


def post(client, email):
    return client.post("/free-plan", data={"email": email, "csrf_token": csrf_token(client)})


def test_two_web_processes_share_one_count(app, app_config):
    from funnel import create_app

    other = create_app(app_config)  # a second process: its own app, the same Redis
    first, second = app.test_client(), other.test_client()
    statuses = [post(c, f"r{i}@example.com").status_code
                for i, c in enumerate([first, second, first, second])]
    assert statuses == [303, 303, 303, 429]
    other.extensions["funnel"].engine.dispose()


def test_counts_are_in_redis(app, redis_url, app_config):
    import redis

    post(app.test_client(), "r@example.com")
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"*{app_config['RATELIMIT_KEY_PREFIX']}*"))
    assert keys, "no rate-limit counter was written to Redis"


def test_admin_login_limit_uses_redis_too(app):
    # Its own address: Flask-Limiter is one object shared by every app in this process.
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"2001:db8:{uuid.uuid4().int % 65536:x}::1"
    token = csrf_token(client, "/admin/login")
    statuses = [client.post("/admin/login", data={"email": "x@example.com", "password": "nope",
                                                  "csrf_token": token}).status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429]
