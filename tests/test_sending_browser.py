"""The admin's Sending page in Chromium at 375 px and 1280 px: the check-up table,
the brakes with their resume button and the warm-up plan fit the screen."""

from __future__ import annotations

import pytest

from funnel.control import brakes
from funnel.models import AppState
from tests.admin_support import browser_log_in, screenshot
from tests.dns_support import DOMAIN, DNSServer
from tests.test_admin_layout_browser import overflow

pytestmark = pytest.mark.browser


@pytest.fixture
def dns_server():
    with DNSServer() as server:
        del server.zone[(f"_dmarc.{DOMAIN}", "TXT")]  # one fail with a long record to add
        yield server


@pytest.fixture
def app_config(app_config, dns_server):
    return {**app_config, "MAIL_FROM": f"Run Stronger <plan@{DOMAIN}>",
            "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.test",
            "DNS_RESOLVER": dns_server.address, "DNS_TIMEOUT": 1.0}


@pytest.mark.parametrize("width", [375, 1280])
def test_the_sending_page_fits_the_screen(live_server, _browser, db, admin, width):
    db.merge(AppState(key=brakes.STATE_KEY, value=(
        '{"level": "stop", "paused": true, "since": "2026-12-01T09:00:00+00:00", "reasons": '
        '["newsletter spring-news: 2 spam complaint(s) and 0 bounce(s) in 400 emails '
        '(0.50% complaints, 0.0% bounces): complaints at or over 0.3%"]}')))
    db.commit()
    context = _browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        browser_log_in(page, live_server, "/admin/sending/")
        page.wait_for_load_state("networkidle")
        shot = screenshot(page, f"admin-sending-{width}")
        assert page.locator('[data-check="DMARC"][data-level="fail"]').count() == 1
        assert page.locator("#resume").is_visible()
        assert overflow(page) <= 0, f"the Sending page scrolls sideways at {width} px ({shot})"
    finally:
        context.close()
