"""The printable plan and the article in headless Chromium: no sideways scroll at
375 px, every picture loaded with alt text; screenshots kept as test artefacts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel.models import Subscriber
from tests.artefacts import artefact_dir
from tests.conftest import sign_up_and_confirm

pytestmark = pytest.mark.browser

PICTURES = """() => [...document.images].map(i => ({src: i.src, alt: i.alt,
                                                    loaded: i.complete && i.naturalWidth > 0}))"""


@pytest.mark.parametrize("width", [375, 1280])
def test_printable_plan_reads_on_phone_and_desktop(live_server, _browser, client, db, outbox,
                                                   width):
    sign_up_and_confirm(client, outbox, "print@example.com", "Robin")
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "print@example.com"))
    url = client.application.extensions["funnel"].composer.links.plan(sub.public_id)
    context = _browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(url)
    assert page.locator("h1").inner_text() == "Your Run Stronger plan"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    pictures = page.evaluate(PICTURES)
    assert len(pictures) >= 9
    assert all(p["loaded"] and p["alt"].strip() for p in pictures), pictures
    for week in range(1, 7):
        assert page.get_by_role("heading", name=f"Week {week}").is_visible()
    path = artefact_dir() / f"plan-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    context.close()


def test_article_shows_the_stretch_step_by_step_on_a_phone(live_server, _browser):
    context = _browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(live_server + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    pictures = page.evaluate(PICTURES)
    assert len(pictures) == 5  # the coach and four steps of the stretch
    assert all(p["loaded"] and p["alt"].strip() for p in pictures), pictures
    page.screenshot(path=str(artefact_dir() / "article-375.png"), full_page=True)
    context.close()
