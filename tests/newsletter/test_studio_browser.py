"""In Chromium: an editor writes a new newsletter with a picture (a typo flagged before
saving), sends a test whose links and picture all work, schedules it for 07:00 in their
own zone with two subjects, and after the wait the winner goes to the rest, each
reader getting exactly one copy."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from funnel.accounts.passwords import hash_password
from funnel.models import AdminUser, Broadcast, BroadcastRecipient, Delivery, DeliveryEvent
from tests.admin_support import PASSWORD
from tests.artefacts import artefact_dir
from tests.newsletter_support import add, run_worker
from tests.studio_support import png

EDITOR = "editor@example.com"
ZONE = "Europe/Paris"  # UTC+1 in December: 07:00 there is 06:00 UTC
SUBJECTS = ("Hill repeats without the dread", "Six hills and one coffee")
BODY = ("Hi {{ first_name }},\n\nThis week: six short hills, walking down between them.\n\n"
        "[Your plan]({{ plan_url }})\n")
ALT = "Runners on a short hill"
PICTURE = f"![{ALT}](images/hill-repeats.png)"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "SUBJECT_TEST_MIN_PER_SUBJECT": 5}


@pytest.fixture
def browser_page(_browser, request):
    width = request.param
    context = _browser.new_context(timezone_id=ZONE,
                                   viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page, width
    context.close()


def shot(page, name: str, width: int) -> None:
    page.screenshot(path=str(artefact_dir() / f"studio-{name}-{width}.png"), full_page=True)


def _links(body: str) -> list[str]:
    """Every address of the site in the message: links, and the pictures' src too."""
    return sorted(set(re.findall(r'https?://127\.0\.0\.1:\d+[^\s"<>)\]]*', body)))


@pytest.mark.parametrize("browser_page", [375, 1280], indirect=True)
def test_an_editor_writes_tests_and_schedules_a_subject_test(
        browser_page, live_server, db, clock, runner, outbox, emails_dir):
    page, width = browser_page
    clock.now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    db.add(AdminUser(email=EDITOR, password_hash=hash_password(PASSWORD), created_at=clock.now,
                     role="editor"))
    db.commit()
    for i in range(30):
        add(db, f"reader{i:02d}@example.com", now=clock.now,
            tz=("Europe/London", "America/New_York", "Asia/Tokyo")[i % 3])
    # One pass here first: every engine the workers share makes its first connection
    # now, not in the live server's mailer thread racing this one (SQLAlchemy's
    # first-connect hook is not thread-safe). Nothing is due yet, so nothing is sent.
    run_worker(runner)
    assert len(outbox) == 0

    page.goto(live_server + "/admin/broadcasts/new")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/broadcasts/new")

    # Write it, with a typo the check flags before anything is saved.
    page.get_by_label("Subject", exact=True).fill(SUBJECTS[0])
    assert page.locator("#slug").input_value() == "hill-repeats-without-the-dread"
    page.get_by_label("Preheader").fill("Short hills, long benefits.")
    page.get_by_label("Text (Markdown)").fill(BODY.replace("first_name", "frist_name"))
    page.get_by_label("Other subjects to test").fill(SUBJECTS[1])
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#problems")).to_contain_text("did you mean")
    assert not (emails_dir / "broadcasts" / "hill-repeats-without-the-dread.md").exists()
    shot(page, "typo-flagged", width)
    body = page.get_by_label("Text (Markdown)")
    body.fill(BODY)
    # A picture, made here, goes in where the cursor is: at the end, after a blank line.
    body.press("Control+End")
    body.press("Enter")
    page.get_by_label("Picture file").set_input_files(
        files=[{"name": "Hill Repeats.png", "mimeType": "image/png", "buffer": png(600, 300)}])
    page.get_by_label("What it shows").fill(ALT)
    page.get_by_role("button", name="Upload picture").click()
    expect(page.locator("#picture-status")).to_contain_text(
        "Picture saved as images/hill-repeats.png")
    assert body.input_value().endswith(f")\n\n{PICTURE}")
    page.get_by_role("button", name="Preview and check").click()
    expect(page.locator("#check-ok")).to_be_visible()
    expect(page.frame_locator("iframe.desktop").get_by_role("img", name=ALT)).to_be_visible()
    shot(page, "new-preview", width)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/admin/broadcasts/hill-repeats-without-the-dread")
    saved = (emails_dir / "broadcasts" / "hill-repeats-without-the-dread.md").read_text()
    assert saved.endswith(f"{PICTURE}\n")

    # The browser's zone is saved once; the page reloads showing it.
    expect(page.locator("#tz")).to_have_value(ZONE)
    db.rollback()
    assert db.scalar(select(AdminUser.timezone).where(AdminUser.email == EDITOR)) == ZONE

    # A test to the editor's own address; every link in it answers, the picture too.
    # The request only queues it; the live server's worker, woken by it, sends it, and
    # the page follows the test until it says it went out.
    page.get_by_role("button", name="Send me a test").click()
    expect(page.get_by_text(f"Test queued for {EDITOR}")).to_be_visible()
    [msg] = outbox.wait_for(EDITOR)
    expect(page.locator("#test-sends")).to_contain_text(f"To {EDITOR}")
    expect(page.locator("#test-sends")).to_contain_text("sent at")
    links = _links(outbox.text(msg) + outbox.html(msg) + msg["List-Unsubscribe"])
    assert {urlsplit(u).path.split("/")[1] for u in links} >= {"view", "preferences",
                                                                "unsubscribe"}
    [picture] = [u for u in re.findall(r'<img [^>]*src="([^"]+)"', outbox.html(msg))
                 if "hill-repeats" in u]
    assert picture in links and re.search(rf'<img [^>]*alt="{ALT}"', outbox.html(msg))
    reader = page.context.new_page()  # same browser; the links need no admin login
    for url in links:
        resp = reader.goto(url)
        assert resp is not None and resp.status < 400, (url, resp and resp.status)
        if url == picture:
            assert resp.status == 200 and resp.headers["content-type"].startswith("image/")
    reader.close()

    # 07:00 tomorrow morning in the editor's zone, two subjects, a 20 % sample.
    day = (clock.now + timedelta(hours=1)).date().isoformat()
    page.get_by_label(f"Send at, in your time zone ({ZONE}), optional").fill(f"{day}T07:00")
    page.get_by_label("Sample (% of the audience)").fill("20")
    page.get_by_label("Wait before picking the winner").fill("4h")
    page.get_by_role("button", name="Next: see who gets it").click()
    expect(page.locator("#confirm-when")).to_contain_text("07:00 (Europe/Paris)")
    shot(page, "schedule-confirm", width)
    page.get_by_role("button", name=re.compile(r"Send to 30 subscribers")).click()
    expect(page.locator("#status")).to_have_text("scheduled")
    db.rollback()
    row = db.scalar(select(Broadcast))
    assert row.send_at == datetime.fromisoformat(f"{day}T06:00").replace(tzinfo=UTC)
    assert row.test_state == "testing"

    # The sample at 07:00 Paris time; more human clicks for the second subject.
    clock.now = row.send_at
    run_worker(runner)
    sample = [m for m in outbox.messages() if m["To"] != EDITOR]
    assert Counter(m["Subject"] for m in sample) == {SUBJECTS[0]: 5, SUBJECTS[1]: 5}
    db.rollback()
    for d, variant in db.execute(select(Delivery, BroadcastRecipient.variant).join(
            BroadcastRecipient, BroadcastRecipient.subscriber_id == Delivery.subscriber_id)
            .where(Delivery.step_slug == row.slug)):
        db.add(DeliveryEvent(delivery_id=d.id, kind="delivered", step_slug=row.slug,
                             at=d.sent_at))
        if variant == 1:
            db.add(DeliveryEvent(delivery_id=d.id, kind="click", step_slug=row.slug,
                                 at=d.sent_at + timedelta(minutes=5)))
    db.commit()
    clock.advance(hours=4, minutes=1)
    run_worker(runner)
    readers = [m for m in outbox.messages() if m["To"] != EDITOR]
    per_reader = Counter(m["To"] for m in readers)
    assert len(per_reader) == 30 and set(per_reader.values()) == {1}  # exactly one copy each
    assert Counter(m["Subject"] for m in readers)[SUBJECTS[1]] == 25  # 5 in the test + 20

    page.reload()
    if "/admin/login" in page.url:  # the session outlived its idle limit on the moved clock
        page.get_by_label("Email").fill(EDITOR)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/admin/broadcasts/hill-repeats-without-the-dread")
    note = page.locator("#test-note").inner_text()
    assert f"\"{SUBJECTS[1]}\" wins" in note
    assert "winner" in page.locator("#test-figures").inner_text()
    shot(page, "subject-test-decided", width)
