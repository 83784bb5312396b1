"""Done when: from a received email, in headless Chromium, a subscriber opens their
preferences, pauses (the worker skips them until the pause ends), resumes,
downloads their data and erases it; an import of the address is then refused."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from funnel.importing.importer import import_rows
from funnel.models import Subscriber, Suppression
from funnel.runtime import make_worker
from funnel.subscribers.privacy import is_suppressed

EMAIL = "browser.runner@example.com"


def test_subscriber_controls_their_plan_and_data_from_an_email(
        live_server, page, outbox, app, clock, db):
    worker = make_worker(app.extensions["funnel"])

    def run_worker() -> None:
        worker.run_pass(clock.now)

    def received() -> list[str]:
        return [m["Subject"] for m in outbox.to(EMAIL)][1:]  # after the confirmation

    # Sign up and confirm, then the worker sends email 1.
    page.goto(live_server + "/free-plan")
    page.get_by_label("Your email address").fill(EMAIL)
    page.get_by_role("button", name="Send me the free plan").click()
    page.goto(live_server + outbox.link(outbox.wait_for(EMAIL)[0], "confirm"))
    page.get_by_role("button", name="Yes, confirm my address").click()
    assert "Welcome" in page.locator("h1").inner_text()
    run_worker()
    [first] = outbox.to(EMAIL)[1:]
    assert first["Subject"].startswith("Part 1")

    # Open the email as the mail client would show it and follow its footer link.
    page.set_content(outbox.html(first))
    page.get_by_role("link", name="Pause or change your preferences").click()
    page.wait_for_url(live_server + "/preferences/**")
    prefs_url = page.url
    assert page.locator("h1").inner_text() == "Your email preferences"

    # Details: a name, and the time zone emails are timed in.
    page.get_by_label("First name (optional)").fill("Robin")
    page.get_by_label("Your time zone").select_option("Europe/London")
    page.get_by_role("button", name="Save my details").click()
    assert "Saved" in page.get_by_role("status").inner_text()

    # Pause for a week: email 2 (due on day 3) waits until the pause ends.
    page.get_by_label("For one week").check()
    page.get_by_role("button", name="Pause emails").click()
    assert "paused until Tuesday 8 December 2026" in page.get_by_role("status").inner_text()
    pause_end = clock.now + timedelta(weeks=1)
    for _ in range(6):
        clock.advance(days=1)
        run_worker()
    clock.now = pause_end - timedelta(minutes=1)
    run_worker()
    assert len(received()) == 1
    clock.now = pause_end + timedelta(minutes=1)
    run_worker()
    assert received()[-1].startswith("Part 2")
    assert "Hi Robin," in outbox.text(outbox.to(EMAIL)[-1])

    # Pause until resumed: nothing for ten days; resume and the next one comes.
    page.goto(prefs_url)
    page.get_by_label("Until I resume them").check()
    page.get_by_role("button", name="Pause emails").click()
    assert "paused until you resume" in page.get_by_role("status").inner_text()
    for _ in range(10):
        clock.advance(days=1)
        run_worker()
    assert len(received()) == 2
    page.get_by_role("button", name="Resume my emails").click()
    assert "back on" in page.get_by_role("status").inner_text()
    run_worker()
    assert received()[-1].startswith("Part 3")

    # Download everything we hold: the export wants a link from the last day, so
    # from the email that just came (docs/security.md).
    page.set_content(outbox.html(outbox.to(EMAIL)[-1]))
    page.get_by_role("link", name="Pause or change your preferences").click()
    page.wait_for_url(live_server + "/preferences/**")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download my data (JSON)").click()
    download = download_info.value
    assert download.suggested_filename == "run-stronger-my-data.json"
    data = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert data["profile"]["email"] == EMAIL and data["profile"]["first_name"] == "Robin"
    assert [c["action"] for c in data["consent"]] == ["signup", "confirm"]
    drip = [e for e in data["emails"] if e["kind"] == "drip"]  # the confirmation is "system"
    assert [e["subject"][:6] for e in drip] == ["Part 1", "Part 2", "Part 3"]
    assert all(e["sent_at"] for e in data["emails"])

    # Erase: asked once more, then done.
    page.get_by_role("link", name="Erase my data…").click()
    assert page.locator("h1").inner_text() == "Erase your data?"
    page.get_by_role("button", name="Yes, erase my data").click()
    assert page.locator("h1").inner_text() == "Your data is erased"
    db.rollback()
    assert db.scalar(select(Subscriber).where(Subscriber.email == EMAIL)) is None
    assert [s.reason for s in db.scalars(select(Suppression))] == ["erased"]
    page.goto(prefs_url)
    assert page.locator("h1").inner_text() == "Page not found"

    # An import of the same address is refused, and so is a new sign-up.
    report = import_rows(db, [(2, {"email": EMAIL.upper()})], confirmed=True, now=clock.now)
    assert (report.added, report.suppressed) == (0, 1)
    assert is_suppressed(db, EMAIL)
    sent_before = len(outbox.to(EMAIL))
    page.goto(live_server + "/free-plan")
    page.get_by_label("Your email address").fill(EMAIL)
    page.get_by_role("button", name="Send me the free plan").click()
    expect(page.locator("h1")).to_have_text("Check your inbox")
    clock.advance(days=1)
    run_worker()
    db.rollback()
    assert db.scalar(select(Subscriber).where(Subscriber.email == EMAIL)) is None
    assert len(outbox.to(EMAIL)) == sent_before
