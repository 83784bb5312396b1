"""The article and the landing page are the same bytes for every visitor, so they
may be cached, and no request can poison what the next visitor gets: the prefix
and port headers are not believed, the cache key holds the scheme, host and
prefix, and the shipped nginx config clears those headers (issue 27, High)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from funnel import create_app
from funnel.models import Subscriber
from tests.conftest import take_in

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["/", "/free-plan", "/?utm_source=club", "/free-plan?via=article&utm_source=club"]
POISON = {"X-Forwarded-Prefix": "//evil.example", "X-Forwarded-Port": "666",
          "X-Forwarded-Proto": "https", "X-Forwarded-Host": "news.example.com",
          "X-Forwarded-For": "203.0.113.9"}
PLAIN = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "news.example.com",
         "X-Forwarded-For": "198.51.100.7"}


@pytest.fixture
def proxied_app(app_config, db):
    """As deployed: one trusted proxy hop (deploy/nginx.conf) in front of the app."""
    app = create_app({**app_config, "TRUSTED_PROXIES": 1})
    yield app
    app.extensions["funnel_visits"].close()
    app.extensions["funnel"].engine.dispose()


def links(html: str) -> list[str]:
    return re.findall(r'(?:href|src|action)="([^"]*)"', html)


@pytest.mark.parametrize("path", PAGES)
def test_two_visitors_get_the_same_bytes(app, db, path):
    first = app.test_client().get(path, headers={
        "Referer": "https://www.strava.com/clubs/1", "User-Agent": "Firefox",
        "Cookie": "session=x; _ga=1", "Accept-Language": "fr"})
    second = Client(app).get(path, headers={"User-Agent": "curl/8", "X-Request-ID": "abc12345"})
    assert first.status_code == second.status_code == 200
    assert first.get_data() == second.get_data()
    assert first.headers["Content-Security-Policy"] == second.headers["Content-Security-Policy"]
    for resp in (first, second):
        assert "Set-Cookie" not in resp.headers and "nonce" not in resp.get_data(as_text=True)
        assert "csrf_token" not in resp.get_data(as_text=True)
        assert "'nonce-" not in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", PAGES)
def test_a_forwarded_prefix_cannot_poison_the_next_visitors_page(proxied_app, path):
    poisoner = proxied_app.test_client()
    poisoned = poisoner.get(path, headers=POISON)
    assert "evil.example" not in poisoned.get_data(as_text=True)
    for _ in range(2):  # the first plain visitor may be Flask's, the second the fast layer's
        page = proxied_app.test_client().get(path, headers=PLAIN).get_data(as_text=True)
        assert "evil.example" not in page and ":666" not in page
        assert all(not link.startswith("//") for link in links(page))
    if path.startswith("/free-plan"):
        assert 'action="/free-plan"' in page


def test_the_cache_key_holds_the_prefix_scheme_and_host(app, db):
    """An app really mounted under a prefix (SCRIPT_NAME from the server, not a
    header) gets its own pages; the root's are not made with it, nor the reverse."""
    client = app.test_client()
    mounted = client.get("/", base_url="http://localhost/blog/").get_data(as_text=True)
    assert 'href="/blog/free-plan?via=article"' in mounted
    for _ in range(2):
        root = client.get("/").get_data(as_text=True)
        assert "/blog/" not in root and 'href="/free-plan?via=article"' in root
    again = client.get("/", base_url="http://localhost/blog/").get_data(as_text=True)
    assert again == mounted
    landing = client.get("/free-plan", base_url="http://localhost/blog/")
    assert 'action="/blog/free-plan"' in landing.get_data(as_text=True)
    assert 'action="/free-plan"' in client.get("/free-plan").get_data(as_text=True)
    # Scheme and host are in the key too: a page made for one is not served for another.
    from funnel.web.public import site

    keys = {site.landing_key(site.page_origin(env), {}, "direct") for env in (
        {"wsgi.url_scheme": "http", "HTTP_HOST": "a.example"},
        {"wsgi.url_scheme": "https", "HTTP_HOST": "a.example"},
        {"wsgi.url_scheme": "https", "HTTP_HOST": "b.example"},
        {"wsgi.url_scheme": "https", "HTTP_HOST": "b.example", "SCRIPT_NAME": "/p"})}
    assert len(keys) == 4


def test_the_shipped_nginx_config_clears_the_headers_and_keys_its_cache_fully():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    live = "\n".join(line.split("#")[0] for line in conf.splitlines())
    for header in ("X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server"):
        assert re.search(rf'proxy_set_header\s+{header}\s+"";', live), header
    # The cache's lines (docs/pages.md, and commented in the shipped config) key
    # on everything a page depends on.
    docs = (ROOT / "docs" / "pages.md").read_text()
    for text in (docs, conf):
        keys = re.findall(r"proxy_cache_key\s+([^;]+);", text)
        assert keys and all(k == '"$scheme://$host$request_uri"' for k in keys), keys
    assert re.search(r'proxy_set_header\s+X-Forwarded-Prefix\s+"";', docs)


def test_a_cross_site_post_is_refused_and_a_same_site_one_signs_up(app, client, db, outbox):
    page = client.get("/free-plan").get_data(as_text=True)
    hidden = dict(re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', page))
    form = {**hidden, "email": "runner@example.com"}
    refused = client.post("/free-plan", data=form, headers={
        "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "can only be sent from the Run Stronger site" in refused.get_data(as_text=True)
    take_in(app)
    assert db.scalars(select(Subscriber)).all() == []
    ok = client.post("/free-plan", data=form, headers={
        "Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"})
    assert ok.status_code == 303
    take_in(app)
    db.rollback()
    assert db.scalars(select(Subscriber.email)).all() == ["runner@example.com"]


def test_an_allowed_embedding_site_may_post_the_landing_form(app_config, db):
    app = create_app({**app_config, "EMBED_ORIGINS": ["https://blog.runstronger.example"]})
    try:
        resp = app.test_client().post("/free-plan", data={"email": "blog@example.com"}, headers={
            "Sec-Fetch-Site": "cross-site", "Origin": "https://blog.runstronger.example"})
        assert resp.status_code == 303
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()
