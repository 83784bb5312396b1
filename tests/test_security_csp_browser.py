"""In Chromium, with FUNNEL_ENV=production's headers, every kind of page still
works and the browser reports no Content-Security-Policy violation."""

from __future__ import annotations

import pytest

from funnel.transports.outbox import OutboxTransport
from tests.conftest import taken_in
from tests.security_support import personal_path
from tests.test_admin import ADMIN, PASSWORD, admin  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

# Playwright's own scripts bypass the policy, so this listener sees every violation.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "FUNNEL_ENV": "production", "SECRET_KEY": "k" * 48,
            "FUNNEL_BASE_URL": "https://runstronger.example", "MAIL_TRANSPORT": "sendgrid",
            "SENDGRID_API_KEY": "SG.unused",
            "TRANSPORT": OutboxTransport(tmp_path / "outbox")}


@pytest.fixture
def watched(page):
    problems: list[str] = []
    page.add_init_script(WATCH)
    page.on("console", lambda m: problems.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def check() -> list[str]:
        return problems + page.evaluate("window.__csp || []")

    page.csp_problems = check
    return page


def test_public_pages_and_the_sign_up_work_under_the_policy(app, db, live_server, watched):
    page = watched
    resp = page.goto(live_server + "/free-plan?utm_source=talk")
    policy = resp.headers["content-security-policy"]
    assert "'sha256-" in policy and "'nonce-" not in policy  # the same page for everyone
    # The inline script that sends the browser's time zone ran (allowed by its hash).
    assert page.input_value("#tz") != ""
    page.fill("#email", "pat@example.com")
    page.fill("#first_name", "Pat")
    page.click("button[type=submit]")
    page.wait_for_url("**/check-your-inbox")
    page.goto(live_server + "/")
    taken_in(app, db, "pat@example.com")  # the worker's step, or the live server's
    confirm = personal_path(app, db, "pat@example.com", "confirm")
    page.goto(live_server + confirm)
    page.get_by_role("button", name="Yes, confirm my address").click()
    page.get_by_text("You're in").wait_for()
    prefs = personal_path(app, db, "pat@example.com", "preferences")
    page.goto(live_server + prefs)
    page.get_by_role("button", name="Pause").first.wait_for()
    assert watched.csp_problems() == []


def test_admin_pages_work_under_the_policy(app, admin, live_server, watched):  # noqa: F811
    page = watched
    page.goto(live_server + "/admin/login")
    page.fill("input[name=email]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    for path in ("/admin/", "/admin/subscribers", "/admin/suppression", "/admin/emails"):
        assert page.goto(live_server + path).status == 200, path
    page.goto(live_server + "/admin/emails")
    link = page.locator("a[href^='/admin/emails/']:not([href='/admin/emails/'])").first
    link.click()
    page.wait_for_load_state("load")
    page.locator("iframe").first.wait_for()
    # The inline script that fits each frame to its email ran.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.frames iframe')].every(f => f.style.height)")
    assert watched.csp_problems() == []


def test_a_script_without_the_nonce_is_blocked(app, live_server, watched):
    """The negative control: the policy really is enforced in this browser."""
    page = watched
    page.goto(live_server + "/free-plan")
    page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__ran = true'; document.body.appendChild(s); }""")
    assert page.evaluate("window.__ran === true") is False
    assert any("script-src" in p for p in watched.csp_problems())
