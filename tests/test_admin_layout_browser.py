"""Every admin page at 375 px and 1280 px in Chromium: no sideways scrolling, legends
whole, text large enough to read. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel.core.sequence import load_sequence
from funnel.demo import seed as demo
from funnel.models import Subscriber
from tests.admin_support import browser_log_in, screenshot

pytestmark = pytest.mark.browser

PAGES = ["/admin/", "/admin/subscribers", "SUBSCRIBER", "/admin/suppression",
         "/admin/emails/", "/admin/emails/lateral-hip-stretch",
         "/admin/emails/lateral-hip-stretch/edit", "/admin/import/",
         "/admin/sessions", "/admin/two-factor", "/admin/sequences", "/admin/sequences/plan",
         "/admin/rules/Plan PDF readers", "/admin/team", "/admin/broadcasts/new", "/admin/sending"]


@pytest.fixture
def seeded(app, db, clock, admin):
    rt = app.extensions["funnel"]
    demo.seed(db, now=clock.now, settings=rt.settings,
              sequence=load_sequence(rt.settings.emails_dir), days=30, scale=0.1)
    db.commit()
    return db.scalar(select(Subscriber).where(Subscriber.status == "confirmed")
                     .order_by(Subscriber.id).limit(1))


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def legends_cut(page) -> list[str]:
    """Legend and label text that runs past its chart's right edge."""
    return page.evaluate("""() => {
      const out = [];
      for (const svg of document.querySelectorAll('svg.chart')) {
        const box = svg.getBoundingClientRect();
        for (const t of svg.querySelectorAll('text')) {
          const r = t.getBoundingClientRect();
          if (r.right > box.right + 1 || r.left < box.left - 1) out.push(svg.id + ': ' + t.textContent);
        }
      }
      return out;
    }""")


def smallest_chart_text(page) -> float:
    return page.evaluate("""() => {
      let least = 99;
      for (const t of document.querySelectorAll('svg.chart text')) {
        const h = t.getBoundingClientRect().height;
        if (h > 0) least = Math.min(least, h);
      }
      return least;
    }""")


@pytest.mark.parametrize("width", [375, 1280])
def test_admin_pages_fit_the_screen(live_server, _browser, seeded, width):
    context = _browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        browser_log_in(page, live_server)
        for path in PAGES:
            if path == "SUBSCRIBER":
                path = f"/admin/subscribers/{seeded.public_id}"
            page.goto(live_server + path)
            page.wait_for_load_state("networkidle")
            name = path.removeprefix("/admin").strip("/").replace("/", "-") or "dashboard"
            if path.startswith("/admin/subscribers/"):
                name = "subscriber"
            shot = screenshot(page, f"admin-{name}-{width}")
            if name == "dashboard":  # the charts at screen size, for a person to look at
                page.locator("#funnel").scroll_into_view_if_needed()
                page.screenshot(path=str(shot.with_name(f"admin-dashboard-charts-{width}.png")))
            assert overflow(page) <= 0, f"{path} scrolls sideways at {width} px ({shot})"
            assert legends_cut(page) == [], f"{path} at {width} px ({shot})"
            if page.locator("svg.chart").count():
                assert smallest_chart_text(page) >= 9, f"{path}: chart text too small ({shot})"
    finally:
        context.close()


def test_the_email_preview_fits_a_phone(live_server, _browser, seeded):
    context = _browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    try:
        browser_log_in(page, live_server, "/admin/emails/lateral-hip-stretch")
        page.wait_for_load_state("networkidle")
        widths = page.evaluate(
            "[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().right)")
        assert all(w <= 375 for w in widths), widths
        assert overflow(page) <= 0
    finally:
        context.close()
