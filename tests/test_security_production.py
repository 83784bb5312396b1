"""FUNNEL_ENV=production: secure cookies and headers, and no start with settings
that would put the site on the open internet half-configured."""

from __future__ import annotations

import re

import pytest

from funnel import create_app
from funnel.config import ConfigError
from tests.conftest import csrf_token, sign_up
from tests.security_support import personal_path

STRONG_KEY = "k" * 48
PUBLIC = "https://runstronger.example"


def production(app_config, **overrides):
    return {**app_config, "FUNNEL_ENV": "production", "SECRET_KEY": STRONG_KEY,
            "FUNNEL_BASE_URL": PUBLIC, "MAIL_TRANSPORT": "sendgrid",
            "SENDGRID_API_KEY": "SG.test", **overrides}


@pytest.fixture
def prod_app(app_config):
    app = create_app(production(app_config))
    yield app
    app.extensions["funnel"].engine.dispose()


@pytest.mark.parametrize("overrides, says", [
    ({"SECRET_KEY": "short-key"}, "SECRET_KEY is 9 characters; set at least 32"),
    ({"FUNNEL_BASE_URL": "http://runstronger.example"}, "FUNNEL_BASE_URL is 'http://"),
    ({"FUNNEL_BASE_URL": "https://localhost:5000"}, "public https:// address"),
    ({"FUNNEL_BASE_URL": "https://127.0.0.1"}, "public https:// address"),
    ({"FUNNEL_BASE_URL": "https://[::1]:8443"}, "public https:// address"),
    ({"MAIL_TRANSPORT": "outbox"}, "set MAIL_TRANSPORT=sendgrid"),
])
def test_production_refuses_to_start_half_configured(app_config, overrides, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        create_app(production(app_config, **overrides))


def test_every_problem_is_named_at_once(app_config):
    with pytest.raises(ConfigError) as err:
        create_app(production(app_config, SECRET_KEY="x", FUNNEL_BASE_URL="http://localhost:5000",
                              MAIL_TRANSPORT="outbox"))
    message = str(err.value)
    assert "SECRET_KEY" in message and "FUNNEL_BASE_URL" in message and "MAIL_TRANSPORT" in message


def test_development_still_starts_with_the_defaults(app_config):
    app = create_app({**app_config, "SECRET_KEY": "short"})  # the negative control
    app.extensions["funnel"].engine.dispose()


def test_secure_cookies_and_hsts_in_production(prod_app):
    client = prod_app.test_client()
    resp = client.get("/admin/login", base_url="https://runstronger.example")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_no_hsts_or_secure_cookie_in_development(client):
    resp = client.get("/admin/login")
    assert "Strict-Transport-Security" not in resp.headers
    assert "Secure" not in resp.headers["Set-Cookie"]


def test_content_security_policy_with_a_nonce_per_response(prod_app):
    """Pages made per response (here the admin's login) allow their scripts by a nonce
    of that response's own."""
    client = prod_app.test_client()
    csps = [client.get("/admin/login", base_url="https://runstronger.example")
            .headers["Content-Security-Policy"] for _ in range(2)]
    for csp in csps:
        assert "default-src 'self'" in csp and "object-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert csps[0] != csps[1] or "'nonce-" not in csps[0]  # a new nonce each time, if any


@pytest.mark.parametrize("path", ["/", "/free-plan"])
def test_public_pages_allow_exactly_their_own_scripts_by_hash(prod_app, path):
    """The article and the landing page are the same for everyone: no nonce, each
    inline script allowed by its SHA-256, nothing else inline."""
    import base64
    import hashlib

    client = prod_app.test_client()
    first = client.get(path, base_url="https://runstronger.example")
    second = client.get(path, base_url="https://runstronger.example")
    csp = first.headers["Content-Security-Policy"]
    assert second.headers["Content-Security-Policy"] == csp
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    html = first.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(attrs == "" for attrs, _ in scripts)
    script_src = csp.split("script-src")[1].split(";")[0].split()
    wanted = {"'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
              for _, body in scripts}
    assert set(script_src) == {"'self'", *wanted}


def test_permissions_policy(prod_app):
    resp = prod_app.test_client().get("/", base_url="https://runstronger.example")
    policy = resp.headers["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy


def test_pages_reached_by_a_personal_link_are_never_cached(app, client, db):
    sign_up(client, "pat@example.com")
    paths = [personal_path(app, db, "pat@example.com", p)
             for p in ("confirm", "unsubscribe", "preferences")]
    for path in [*paths, paths[0] + "x", "/preferences/not-a-token"]:
        resp = client.get(path)
        assert resp.headers.get("Cache-Control") == "no-store", (path, resp.status_code)
    resp = client.post(paths[0], data={"csrf_token": csrf_token(client, paths[0])})
    assert resp.headers.get("Cache-Control") == "no-store"
    # Public pages may be cached: the header is about personal links only.
    assert client.get("/free-plan").headers.get("Cache-Control") != "no-store"
