"""The coach's editor in headless Chromium at 375 and 1280 px: a typo in the front
matter is flagged as it is typed (no reload), a picture goes in where the cursor is,
the save goes live; an earlier revision of a plan email is restored from the page.
Screenshots for docs/studio.md go to the artefacts folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.admin_support import browser_log_in
from tests.artefacts import artefact_dir
from tests.conftest import serious_violations
from tests.studio_support import STEP, STEP_FILE, copy_emails, png

pytestmark = pytest.mark.browser


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def shot(page, name: str) -> None:
    page.screenshot(path=str(artefact_dir() / f"{name}.png"), full_page=True)


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= "
                         "document.documentElement.clientWidth")


@pytest.mark.parametrize("width", [375, 1280])
def test_typo_flagged_as_typed_picture_inserted_and_saved(page, live_server, admin, emails_dir,
                                                          width):
    page.set_viewport_size({"width": width, "height": 900})
    browser_log_in(page, live_server, "/admin/emails/")
    page.get_by_role("link", name="Edit").first.click()
    expect(page.get_by_role("heading", name=f"Edit plan step: {STEP_FILE}")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    source = page.locator("#source")
    # The typo: "subject" loses its "e" on line 3, typed as a person types.
    source.click()
    source.press("Control+Home")
    for _ in range(2):
        source.press("ArrowDown")
    source.press("Home")
    for _ in range(4):
        source.press("ArrowRight")
    source.press("Delete")
    notes = page.locator("#notes")
    expect(notes).to_contain_text(f"{STEP_FILE}:3: warning: unknown front matter key 'subjct' "
                                  "(did you mean 'subject'?)")
    expect(notes).to_contain_text(f"{STEP_FILE}:1: error: front matter needs 'subject'")
    assert page.evaluate("window.__sameDocument") is True
    assert no_sideways_scroll(page)
    shot(page, f"studio-typo-{width}")
    source.press("e")  # put right
    expect(page.locator("#check-status")).to_have_text("No problems found.")

    # A picture at the end of the email, where the cursor is.
    source.press("Control+End")
    source.type("\n\n")
    page.locator("#picture").set_input_files(
        files=[{"name": "hill-run.png", "mimeType": "image/png", "buffer": png(400, 240)}])
    page.get_by_label("What it shows").fill("A runner on a hill")
    page.get_by_role("button", name="Upload picture").click()
    expect(page.locator("#picture-status")).to_contain_text("Picture saved as images/hill-run.png")
    value = source.input_value()
    assert value.endswith("\n\n![A runner on a hill](images/hill-run.png)")
    expect(page.locator("#check-status")).to_have_text("No problems found.")
    frame = page.frame_locator("iframe.preview").first
    expect(frame.get_by_role("img", name="A runner on a hill")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True
    assert serious_violations(page) == []
    shot(page, f"studio-picture-{width}")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Saved: {STEP_FILE} is live.")).to_be_visible()
    assert (emails_dir / STEP_FILE).read_text().endswith(
        "![A runner on a hill](images/hill-run.png)")
    assert (emails_dir / "images" / "hill-run.png").exists()
    expect(page.locator(".revisions li")).to_have_count(1)
    shot(page, f"studio-saved-{width}")


def test_an_earlier_revision_of_a_plan_email_is_restored_from_the_page(page, live_server, admin,
                                                                       emails_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    browser_log_in(page, live_server, f"/admin/emails/{STEP}/edit")
    live = emails_dir / STEP_FILE
    original = live.read_text()
    source = page.locator("#source")
    for words in ("Welcome to the first version.", "Welcome to the second version."):
        source.fill(original.replace("Welcome to the plan.", words))
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text(f"Saved: {STEP_FILE} is live.")).to_be_visible()
    assert "second version" in live.read_text()
    first = page.locator(".revisions li").last
    first.locator("summary").click()
    expect(first.locator(".diff")).to_contain_text("+Welcome to the first version.")
    shot(page, "studio-history-1280")
    first.get_by_role("button", name="Restore").click()
    expect(page.get_by_text("restored: sequences/plan/01-stretch.md is live.")).to_be_visible()
    assert live.read_text() == original.replace("Welcome to the plan.",
                                                "Welcome to the first version.")
    expect(page.locator(".revisions li")).to_have_count(3)
    expect(page.locator(".revisions li").first).to_contain_text("restored #1")
    shot(page, "studio-restored-1280")


def test_without_javascript_preview_and_save_still_work(_browser, live_server, admin, emails_dir):
    context = _browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 900})
    page = context.new_page()
    try:
        browser_log_in(page, live_server, f"/admin/emails/{STEP}/edit")
        live = emails_dir / STEP_FILE
        original = live.read_text()
        page.locator("#source").fill(original.replace("subject:", "subjet:", 1))
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("#notes")).to_contain_text("(did you mean 'subject'?)")
        assert live.read_text() == original
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Kept as a draft")).to_be_visible()
        assert live.read_text() == original
        shot(page, "studio-draft-nojs-375")
    finally:
        context.close()
