"""Every email in headless Chromium: fits a 375 px phone with no sideways scroll,
and every image has alt text. The admin preview picks up an edit by itself."""

from __future__ import annotations

import base64
import shutil
import struct
import threading
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import expect

from funnel.accounts.passwords import hash_password
from funnel.mail.check import sample_subscriber
from funnel.models import AdminUser
from funnel.runtime import make_worker
from tests.test_emails import ALL_SLUGS, EMAILS, composer, source

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}
FITS = """() => ({
  scroll: document.documentElement.scrollWidth,
  width: document.documentElement.clientWidth,
  missingAlt: [...document.images].filter(i => !(i.getAttribute("alt") || "").trim())
                                  .map(i => i.src),
  images: document.images.length,
})"""


def show(page, html: str) -> dict:
    page.route("**/*", lambda route: route.abort())  # an email preview loads nothing
    page.set_viewport_size(PHONE)
    page.set_content(html)
    return page.evaluate(FITS)


@pytest.mark.parametrize("slug", ALL_SLUGS)
def test_email_fits_a_phone_and_images_have_alt(page, slug):
    html = composer().render(source(slug), sample_subscriber(), "d-1").html
    result = show(page, html)
    assert result["width"] == 375
    assert result["scroll"] <= result["width"], f"{slug} scrolls sideways: {result}"
    assert result["missingAlt"] == []
    # The footer is there and readable on the phone, not pushed off-screen.
    unsubscribe = page.get_by_role("link", name="Unsubscribe")
    box = unsubscribe.bounding_box()
    assert box and 0 <= box["x"] and box["x"] + box["width"] <= 375


def _wide_png(width: int = 1200, height: int = 40) -> str:
    """A real PNG far wider than a phone, as a data URL."""
    raw = b"".join(b"\x00" + b"\xb3\x26\x1e" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
           + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_what_a_marketer_might_add_still_fits_a_phone(page, tmp_path):
    emails = Path(shutil.copytree(EMAILS, tmp_path / "emails"))
    path = emails / "sequences" / "plan" / "02-hip-mobility.md"
    path.write_text(path.read_text() + (
        "\nA long address: https://runstronger.example/" + "a-very-long-path-" * 12 + "\n\n"
        "Supercalifragilisticexpialidocious" * 4 + "\n\n"
        f"![A wide chart of weekly mileage]({_wide_png()})\n\n"
        "    an indented code block that is much wider than any phone screen can show\n"
    ))
    html = composer(emails_dir=emails).render(source("hip-mobility", emails), sample_subscriber(),
                                               "d-1").html
    result = show(page, html)
    # The email's drawing, the coach's photo and the wide chart.
    assert result["images"] == 3 and result["missingAlt"] == []
    assert result["scroll"] <= result["width"] == 375, result
    img = page.get_by_role("img", name="A wide chart of weekly mileage").bounding_box()
    assert img and img["width"] <= 375


@pytest.fixture
def app_config(app_config, tmp_path):
    emails = shutil.copytree(EMAILS, tmp_path / "emails-live")
    return {**app_config, "EMAILS_DIR": str(emails)}


def test_preview_reloads_itself_when_the_file_changes(live_server, page, db, clock, app):
    db.add(AdminUser(email="coach@example.com", password_hash=hash_password("long enough pw"),
                     created_at=clock.now))
    db.commit()
    page.goto(live_server + "/admin/emails/hip-mobility")
    page.get_by_label("Email").fill("coach@example.com")
    page.get_by_label("Password").fill("long enough pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Part 2: ten minutes of hip mobility before you run")
    phone = page.locator("iframe.phone")
    assert phone.bounding_box()["width"] == 375
    frame = phone.element_handle().content_frame()
    frame.wait_for_load_state()
    fits = frame.evaluate(FITS)
    assert fits["scroll"] <= fits["width"]
    expect(page.frame_locator("iframe.desktop").get_by_text("Hi Alex,")).to_be_visible()
    # The marketer edits the Markdown; the open page shows it without a restart or a click.
    path = Path(app.config["EMAILS_DIR"]) / "sequences" / "plan" / "02-hip-mobility.md"
    path.write_text(path.read_text().replace("How is the stretch going?",
                                             "How are your hips today?"))
    expect(page.locator("#text-part")).to_contain_text("How are your hips today?", timeout=10_000)
    expect(page.frame_locator("iframe.phone").get_by_text("How are your hips today?")
           ).to_be_visible()


class _Deaf(threading.Event):
    """A wake-up the live server's worker never hears: the test runs the worker."""

    def set(self) -> None:
        pass


def test_a_test_send_is_queued_and_the_page_follows_it(live_server, page, db, clock, app,
                                                      outbox):
    rt = app.extensions["funnel"]
    rt.wake = _Deaf()
    db.add(AdminUser(email="coach@example.com", password_hash=hash_password("long enough pw"),
                     created_at=clock.now))
    db.commit()
    page.goto(live_server + "/admin/emails/staying-strong")
    page.get_by_label("Email").fill("coach@example.com")
    page.get_by_label("Password").fill("long enough pw")
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Send to").fill("me@example.com")
    page.get_by_role("button", name="Send test email").click()
    expect(page.get_by_text("Test queued for me@example.com: it goes out within a minute.")
           ).to_be_visible()
    expect(page.locator("#test-sends")).to_contain_text("To me@example.com")
    expect(page.locator("#test-sends strong")).to_have_text("queued")
    assert len(outbox) == 0  # the click only queued it
    page.evaluate("window.stillTheSamePage = true")
    assert make_worker(rt).run_pass(clock.now).sent == 1
    # The open page shows the outcome by itself, without a reload.
    expect(page.locator("#test-sends strong")).to_have_text(f"sent at {clock.now:%H:%M}",
                                                            timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True
    [msg] = outbox.to("me@example.com")
    assert msg["Subject"].startswith("[TEST] ")
