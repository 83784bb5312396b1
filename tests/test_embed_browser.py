"""The embedded form in Chromium, on a page served from a second local origin."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from funnel.models import ConsentRecord, Subscriber
from funnel.web.public.embed import iframe_snippet, snippet
from tests.conftest import taken_in

pytestmark = pytest.mark.browser


def serve(html: str) -> ThreadingHTTPServer:
    """The coach's blog: a tiny server on another port that serves one page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def blog(app, live_server):
    """The article page with the snippet pasted in, on http://localhost:PORT (another
    origin, and another site, than the app on 127.0.0.1)."""
    servers: list[ThreadingHTTPServer] = []

    def make(body: str, allowed: bool = True) -> str:
        server = serve(f"<!doctype html><html lang='en'><title>Blog</title><body><main>"
                       f"<h1>Lateral hip stretch</h1>{body}</main></body></html>")
        servers.append(server)
        origin = f"http://localhost:{server.server_port}"
        if allowed:
            app.config["EMBED_ORIGINS"] = [*app.config.get("EMBED_ORIGINS", []), origin]
        return origin + "/lateral-hip-stretch"

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_reader_signs_up_through_the_form_on_the_blog(app, live_server, blog, page, db, outbox):
    url = blog(snippet(live_server))
    page.goto(url)
    page.get_by_label("Your email address").fill("blog.reader@example.com")
    page.get_by_label("First name (optional)").fill("Kit")
    page.get_by_role("button", name="Send me the free plan").click()
    page.wait_for_url(live_server + "/check-your-inbox")
    assert page.locator("h1").inner_text() == "Check your inbox"
    taken_in(app, db, "blog.reader@example.com")  # the worker's step, or the live server's
    app.extensions["funnel"].wake.set()  # and let the live server's worker send what it queued
    db.rollback()
    sub = db.scalar(select(Subscriber))
    assert (sub.email, sub.first_name, sub.status) == ("blog.reader@example.com", "Kit", "pending")
    assert sub.timezone == page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    consent = db.scalar(select(ConsentRecord))
    assert consent.page.startswith(url.split("/lateral")[0])  # the blog's origin is on record
    [mail] = outbox.wait_for("blog.reader@example.com")  # the embedded worker sends it
    page.goto(live_server + outbox.link(mail, "confirm"))
    page.get_by_role("button", name="Yes, confirm my address").click()
    assert "Welcome" in page.locator("h1").inner_text()


def test_fetch_from_the_blog_reads_the_json_answer(app, live_server, blog, page, db):
    page.goto(blog("<p>fetch demo</p>"))
    result = page.evaluate("""async (action) => {
        const body = new FormData();
        body.append("email", "fetch.reader@example.com");
        const r = await fetch(action, {method: "POST", body, headers: {Accept: "application/json"}});
        return {status: r.status, json: await r.json()};
    }""", live_server + "/embed/subscribe")
    assert result["status"] == 200 and result["json"]["ok"] is True
    taken_in(app, db, "fetch.reader@example.com")
    assert db.scalar(select(Subscriber.email)) == "fetch.reader@example.com"


def test_a_site_not_on_the_list_is_refused(live_server, blog, page, db, outbox):
    page.goto(blog(snippet(live_server), allowed=False))
    page.get_by_label("Your email address").fill("stranger@example.com")
    page.get_by_role("button", name="Send me the free plan").click()
    page.wait_for_url(live_server + "/embed/subscribe")
    assert "only be used on the sites the coach has allowed" in page.content()
    db.rollback()
    assert db.scalars(select(Subscriber)).all() == [] and len(outbox) == 0


def test_the_iframe_variant_signs_up_inside_the_blog(app, live_server, blog, page, db):
    page.goto(blog(iframe_snippet(live_server)))
    frame = page.frame_locator("iframe")
    frame.get_by_label("Your email address").fill("iframe.reader@example.com")
    frame.get_by_role("button", name="Send me the free plan").click()
    # The frame navigates after the click: wait for the answer, not for the old page.
    expect(frame.get_by_role("heading")).to_have_text("Check your inbox")
    taken_in(app, db, "iframe.reader@example.com")
    assert db.scalar(select(Subscriber.email)) == "iframe.reader@example.com"
