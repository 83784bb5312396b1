"""The whole sign-up and confirmation, driven in a real headless Chromium."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from funnel.models import Subscriber


def test_reader_signs_up_and_confirms_in_a_browser(live_server, page, outbox, db):
    page.goto(live_server + "/?utm_source=blog&utm_campaign=itb")
    assert page.locator("h1").inner_text() == "Lateral Hip & Low Back Stretch for Runners"
    page.get_by_role("link", name="Run stronger – free plan").click()
    assert page.url.startswith(live_server + "/free-plan?utm_source=blog")

    # Labels are wired to their inputs, so these lookups are what a screen reader sees.
    page.get_by_label("Your email address").fill("Browser.Runner@Example.com")
    page.get_by_label("First name (optional)").fill("Robin")
    page.get_by_role("button", name="Send me the free plan").click()
    expect(page.locator("h1")).to_have_text("Check your inbox")

    [confirmation] = outbox.wait_for("browser.runner@example.com")
    page.goto(live_server + outbox.link(confirmation, "confirm"))
    page.get_by_role("button", name="Yes, confirm my address").click()
    expect(page.locator("h1")).to_contain_text("Welcome")

    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "browser.runner@example.com"))
    assert sub.status == "confirmed"
    assert sub.first_name == "Robin"
    assert (sub.utm_source, sub.utm_campaign) == ("blog", "itb")
    # The browser told us its time zone through the optional script.
    assert sub.timezone == page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")


def test_form_errors_are_announced_and_focusable(live_server, page, outbox):
    page.goto(live_server + "/free-plan")
    page.get_by_label("Your email address").fill("nope")
    page.get_by_role("button", name="Send me the free plan").click()
    alert = page.get_by_role("alert")
    assert "look right" in alert.first.inner_text()
    assert page.get_by_label("Your email address").get_attribute("aria-invalid") == "true"
    assert len(outbox) == 0


def test_pages_fit_a_phone_without_horizontal_scroll(live_server, _browser):
    context = _browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    for path in ("/", "/free-plan", "/check-your-inbox", "/missing"):
        page.goto(live_server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    context.close()


def test_public_pages_have_no_serious_accessibility_violations(live_server, page, outbox):
    from tests.conftest import serious_violations

    page.goto(live_server + "/")
    assert serious_violations(page) == []
    page.goto(live_server + "/free-plan")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Send me the free plan").click()  # empty form: errors shown
    assert page.get_by_role("alert").count() > 0
    assert serious_violations(page) == []
    page.get_by_label("Your email address").fill("a11y@example.com")
    page.get_by_role("button", name="Send me the free plan").click()
    assert serious_violations(page) == []  # check your inbox
    page.goto(live_server + outbox.link(outbox.wait_for("a11y@example.com")[0], "confirm"))
    assert serious_violations(page) == []  # the confirm button
    page.get_by_role("button", name="Yes, confirm my address").click()
    assert serious_violations(page) == []  # welcome
    page.goto(live_server + "/no-such-page")
    assert serious_violations(page) == []
