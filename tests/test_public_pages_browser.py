"""In Chromium: a page on another site cannot post the sign-up form (the browser's
own Sec-Fetch-Site and Origin headers give it away), the site's own page can, and
the pages' hashed scripts credit the site the reader came from."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel.models import Subscriber
from tests.artefacts import artefact_dir
from tests.conftest import take_in, taken_in

pytestmark = pytest.mark.browser

EVIL = "http://evil.test"


def _csp_problems(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return problems


def test_a_cross_site_form_is_refused_and_the_sites_own_form_signs_up(app, db, live_server,
                                                                       page):
    # Another site's page (served to Chromium by Playwright as evil.test) with a
    # copy of our form, sent by the visitor's own browser.
    attack = (f'<form method="post" action="{live_server}/free-plan">'
              '<input name="email" value="victim@example.com"><button>Go</button></form>')
    page.route(EVIL + "/", lambda route: route.fulfill(status=200, content_type="text/html",
                                                      body=attack))
    page.goto(EVIL + "/")
    with page.expect_navigation():
        page.click("button")
    assert "can only be sent from the Run Stronger site" in page.content()
    page.screenshot(path=str(artefact_dir() / "cross-site-signup-refused.png"))
    take_in(app)
    db.rollback()
    assert db.scalars(select(Subscriber)).all() == []

    problems = _csp_problems(page)
    page.goto(live_server + "/free-plan")
    page.fill("#email", "own@example.com")
    page.click("button[type=submit]")
    page.wait_for_url("**/check-your-inbox")
    assert taken_in(app, db, "own@example.com") is not None
    assert db.scalars(select(Subscriber.email)).all() == ["own@example.com"]
    assert problems == []


def test_the_pages_scripts_credit_the_referring_site(app, db, live_server, page):
    problems = _csp_problems(page)
    page.route(EVIL + "/", lambda route: route.fulfill(
        status=200, content_type="text/html", body=f'<a href="{live_server}/">article</a>'))
    page.goto(EVIL + "/")
    with page.expect_navigation():
        page.click("a")
    # The article's link gains ref=evil.test in the browser; its bytes did not.
    link = page.get_attribute("a.cta", "href")
    assert link == "/free-plan?via=article&ref=evil.test"
    page.click("a.cta")
    page.wait_for_url("**/free-plan?via=article&ref=evil.test")
    assert page.input_value("#referrer") == "evil.test" and page.input_value("#tz") != ""
    page.fill("#email", "credited@example.com")
    page.click("button[type=submit]")
    page.wait_for_url("**/check-your-inbox")
    sub = taken_in(app, db, "credited@example.com")
    assert (sub.referrer, sub.arrived_via) == ("evil.test", "article")
    assert problems == []
