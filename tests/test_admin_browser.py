"""The dashboard in a real headless Chromium, on a seeded month of demo activity."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from funnel.accounts.passwords import hash_password
from funnel.core.sequence import load_sequence
from funnel.demo import seed as demo
from funnel.models import AdminUser, Subscriber
from tests.conftest import serious_violations

pytestmark = pytest.mark.browser

ADMIN = "coach@example.com"
PASSWORD = "correct horse battery"


@pytest.fixture
def seeded(app, db, clock) -> demo.SeedReport:
    """A month of demo activity (a tenth of the demo's usual traffic, to stay quick)."""
    rt = app.extensions["funnel"]
    report = demo.seed(db, now=clock.now, settings=rt.settings,
                       sequence=load_sequence(rt.settings.emails_dir), days=30, scale=0.1)
    db.add(AdminUser(email=ADMIN, password_hash=hash_password(PASSWORD), created_at=clock.now))
    db.commit()
    return report


def log_in(page, base: str, path: str = "/admin/") -> None:
    page.goto(base + path)
    assert page.locator("h1").inner_text() == "Log in"
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def number(page, metric: str) -> int:
    text = page.locator(f'[data-metric="{metric}"]').inner_text().split("\n")[0]
    return int(text.replace(",", ""))


def test_dashboard_shows_the_seeded_month(live_server, page, seeded):
    log_in(page, live_server)
    assert page.locator("h1").inner_text() == "How the funnel is doing"
    assert seeded.signups > 50 and seeded.sent > 50  # a month worth looking at
    assert number(page, "article_visits") == seeded.article_visits
    assert number(page, "landing_visits") == seeded.landing_visits
    assert number(page, "signups") == seeded.signups
    assert number(page, "confirmations") == seeded.confirmations
    assert number(page, "sent") == seeded.sent
    assert number(page, "unsubscribes") == seeded.unsubscribed
    # Each arrival path is its own funnel; together they add up to the seeded month.
    signups = [int(page.locator(f'#funnel-{p} tr[data-stage="signups"] td').first
                   .inner_text().replace(",", "")) for p in ("article", "direct")]
    assert sum(signups) == seeded.signups
    for slug, sent in seeded.per_step_sent.items():
        cells = page.locator(f'#steps-table tr[data-step="{slug}"] td')
        assert cells.first.inner_text() == f"{sent:,}", slug
    # The charts are drawn, with their own text alternatives.
    daily = page.get_by_role("img", name="Sign-ups and confirmations per day")
    assert daily.is_visible()
    assert daily.locator("rect").count() >= 60
    assert page.get_by_role("img", name="The funnel: from the article").is_visible()
    assert page.get_by_role("img", name="The funnel: straight to the landing page").is_visible()
    assert page.get_by_role("img", name="Engagement per email").is_visible()
    assert serious_violations(page) == []


def test_search_a_subscriber_and_read_their_history(live_server, page, seeded, db):
    someone = db.scalar(select(Subscriber).where(Subscriber.status == "confirmed")
                        .order_by(Subscriber.id).limit(1))
    log_in(page, live_server)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Subscribers").click()
    assert page.locator("h1").inner_text() == "Subscribers"
    assert serious_violations(page) == []
    page.get_by_label("Address contains").fill(someone.email.upper())
    page.get_by_role("button", name="Search").click()
    assert page.locator("#result-count").inner_text() == "1 subscriber"
    page.get_by_role("link", name=someone.email).click()
    assert page.locator("h1").inner_text() == someone.email
    consent = page.get_by_role("table", name="Consent history")
    assert consent.get_by_role("cell", name="signup", exact=True).count() == 1
    assert consent.get_by_role("cell", name="confirm", exact=True).count() == 1
    emails = page.get_by_role("table", name="Emails")
    assert "Part 1: the lateral hip and low back stretch" in emails.inner_text()
    assert serious_violations(page) == []


def test_export_the_list(live_server, page, seeded, tmp_path):
    log_in(page, live_server, "/admin/subscribers")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export all as CSV").click()
    download = info.value
    assert download.suggested_filename == "subscribers-2026-12-01.csv"
    path = Path(tmp_path / "export.csv")
    download.save_as(path)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == seeded.signups
    assert {r["status"] for r in rows} <= {"pending", "confirmed", "unsubscribed", "bounced",
                                            "complained"}
    assert sum(r["confirmed_at"] != "" for r in rows) == seeded.confirmations


def test_suppression_page_is_accessible(live_server, page, seeded):
    log_in(page, live_server, "/admin/suppression")
    assert page.locator("h1").inner_text() == "Suppression list"
    page.get_by_label("Email address").fill("nobody@example.com")
    page.get_by_role("button", name="Check").click()
    assert "Not on the suppression list" in page.get_by_role("status").inner_text()
    assert serious_violations(page) == []
