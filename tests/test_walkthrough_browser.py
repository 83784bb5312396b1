"""Issue 24 in Chromium at 375x667 and 1280x800: errors in sight (item 3), the offer in
the first screen (4), the confirm page and email (5), admin tables (8) and the coach's
card (10). Screenshots go to the artefacts folder as walkthrough-*.png."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel.core.sequence import load_sequence
from funnel.demo import seed as demo
from funnel.models import Subscriber
from tests.admin_support import a_subscriber, browser_log_in
from tests.artefacts import artefact_dir
from tests.conftest import deliver, post_signup, take_in
from tests.test_admin_failures import failed_delivery

pytestmark = pytest.mark.browser

SIZES = [(375, 667), (1280, 800)]


def shot(page, name: str) -> str:
    path = artefact_dir() / f"walkthrough-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return str(path)


@pytest.fixture
def tab(_browser, request):
    width, height = request.param
    context = _browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    yield page, width, height
    context.close()


def in_first_screen(page, selector: str, height: int) -> bool:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box["y"] >= 0 and box["y"] + box["height"] <= height


@pytest.mark.parametrize("tab", SIZES, indirect=True, ids=["375", "1280"])
@pytest.mark.parametrize("typed", ["", "not-an-address"], ids=["empty", "bad"])
def test_a_bad_address_answers_with_the_error_in_sight(live_server, tab, typed):
    page, width, height = tab
    page.goto(live_server + "/free-plan")
    page.fill("#first_name", "Robin")
    page.fill("#email", typed)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    error = page.locator("#email-error")
    assert error.get_attribute("role") == "alert"
    path = shot(page, f"landing-error-{'empty' if not typed else 'bad'}-{width}")
    assert in_first_screen(page, "#email-error", height), path
    assert in_first_screen(page, "#email", height), path
    # Typed values kept, and the field with the error has the focus.
    assert page.input_value("#first_name") == "Robin"
    assert page.input_value("#email") == typed
    assert page.evaluate("document.activeElement.id") == "email"
    assert page.get_attribute("#email", "aria-describedby") == "email-error"


@pytest.mark.parametrize("tab", SIZES, indirect=True, ids=["375", "1280"])
def test_the_offer_is_in_the_first_screen_of_the_landing_page_and_the_article(live_server,
                                                                             tab):
    page, width, height = tab
    page.goto(live_server + "/free-plan")
    path = shot(page, f"landing-first-screen-{width}")
    for selector in ("#email", "#first_name", "button[type=submit]"):
        assert in_first_screen(page, selector, height), (selector, path)
    page.goto(live_server + "/")
    path = shot(page, f"article-first-screen-{width}")
    assert in_first_screen(page, "#offer-top a.cta", height), path
    # The button at the article's end stays.
    buttons = page.locator("article a.cta")
    assert buttons.count() >= 2
    last = buttons.last.bounding_box()
    figures = page.locator("article figure")
    assert last["y"] > figures.last.bounding_box()["y"]


@pytest.fixture
def confirm_path(app, client, outbox):
    post_signup(client, "new@example.com", "Robin")
    take_in(app)
    deliver(app)
    [msg] = outbox.wait_for("new@example.com")
    return msg


@pytest.mark.parametrize("tab", SIZES, indirect=True, ids=["375", "1280"])
def test_the_confirm_page_opens_with_its_button(live_server, tab, confirm_path, outbox):
    page, width, height = tab
    page.goto(live_server + outbox.link(confirm_path, "confirm"))
    path = shot(page, f"confirm-page-{width}")
    button = page.get_by_role("button", name="Yes, confirm my address")
    assert in_first_screen(page, "main form button.cta", height), path
    # Nothing but the heading comes before it.
    before = page.evaluate("""() => {
      const b = document.querySelector('main form button.cta').getBoundingClientRect().top;
      return [...document.querySelectorAll('main p, main ul, main figure')]
        .filter(e => e.getBoundingClientRect().top < b).length;
    }""")
    assert before == 0, path
    assert button.is_visible()


@pytest.mark.parametrize("tab", SIZES, indirect=True, ids=["375", "1280"])
def test_the_confirmation_email_has_a_big_button_and_the_plain_link(tab, confirm_path, outbox):
    page, width, _height = tab
    html = outbox.html(confirm_path)
    page.set_content(html)
    path = shot(page, f"confirm-email-{width}")
    button = page.get_by_role("link", name="Yes, send me the plan")
    box = button.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 150, (box, path)
    href = button.get_attribute("href")
    # The same link in plain sight under it, for mail programs that hide buttons.
    plain = page.locator(f'a[href="{href}"]').nth(1)
    assert plain.inner_text().strip() == href
    assert plain.bounding_box()["y"] > box["y"]
    # Not subscribed yet: nothing to set preferences for.
    assert "/preferences/" not in html
    assert "/preferences/" not in outbox.text(confirm_path)


@pytest.fixture
def seeded(app, db, clock, admin):
    rt = app.extensions["funnel"]
    demo.seed(db, now=clock.now, settings=rt.settings,
              sequence=load_sequence(rt.settings.emails_dir), days=30, scale=0.1)
    db.commit()
    # Failed sends with the long reasons providers give: the failures table at the top
    # of the dashboard is the widest one.
    reasons = ["550 5.1.1 The email account that you tried to reach does not exist; please "
               "check the address for typing mistakes or unnecessary spaces (gsmtp)",
               "421 4.7.0 Try again later, closing connection: the receiving server limits "
               "how fast it accepts mail from new senders (IP reputation)"]
    slugs = [step.slug for step in load_sequence(rt.settings.emails_dir)][:3]
    for i in range(12):
        sub = a_subscriber(db, clock, f"failed-{i}@example.com")
        failed_delivery(db, clock, sub, slug=slugs[i % 3], error=reasons[i % 2])
    return db.scalar(select(Subscriber).where(Subscriber.status == "confirmed")
                     .order_by(Subscriber.id).limit(1))


BROKEN_WORDS = """() => {
  // Words (and numbers like 1,149) in table cells that the layout split over lines.
  const out = [];
  for (const cell of document.querySelectorAll('main th, main td')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      // A break after a hyphen ("single-/leg") is a normal line break, not a split word.
      const re = /[^\\s\\-]+/g;
      let m;
      while ((m = re.exec(text))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) out.push(m[0] + " in " + cell.tagName + "." + cell.className + " @" + [...lines].join("/") + " " + getComputedStyle(cell).whiteSpace);
      }
    }
  }
  return out;
}"""

CUT_TABLES = """() => {
  // A table wider than the page must scroll in its own box, never be cut off.
  const out = [];
  for (const t of document.querySelectorAll('main table')) {
    const r = t.getBoundingClientRect();
    if (r.width === 0) continue;
    let box = t.parentElement, scrolls = false;
    while (box && box !== document.body) {
      const s = getComputedStyle(box);
      if (s.overflowX === 'auto' || s.overflowX === 'scroll') { scrolls = true; break; }
      box = box.parentElement;
    }
    if (r.right > window.innerWidth + 1 && !scrolls) out.push(t.id || t.getAttribute('aria-labelledby') || 'table');
  }
  return out;
}"""


@pytest.mark.parametrize("tab", SIZES, indirect=True, ids=["375", "1280"])
def test_admin_tables_keep_words_whole_and_scroll_in_their_box(live_server, tab, seeded):
    page, width, _height = tab
    browser_log_in(page, live_server)
    for path, name in (("/admin/", "dashboard"), ("/admin/subscribers", "subscribers"),
                       ("/admin/emails/", "emails"), ("/admin/newsletter/", "broadcasts")):
        page.goto(live_server + path)
        page.wait_for_load_state("networkidle")
        file = artefact_dir() / f"walkthrough-admin-{name}-{width}.png"
        page.screenshot(path=str(file), full_page=True)
        assert page.evaluate(BROKEN_WORDS) == [], (path, width, str(file))
        assert page.evaluate(CUT_TABLES) == [], (path, width, str(file))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, width, str(file))


@pytest.mark.parametrize("tab", SIZES, indirect=True, ids=["375", "1280"])
def test_the_coachs_card_is_not_squashed(live_server, tab):
    page, width, _height = tab
    page.goto(live_server + "/free-plan")
    card = page.locator(".box.coach")
    card.scroll_into_view_if_needed()
    file = artefact_dir() / f"walkthrough-coach-card-{width}.png"
    card.screenshot(path=str(file))
    photo = card.locator("img").bounding_box()
    assert round(photo["width"]) == round(photo["height"]) >= 48, (photo, str(file))
    # The bio (the card's longest text) runs the card's full width, not a narrow
    # column beside the photo.
    widths = page.evaluate("""() => {
      const card = document.querySelector('.box.coach');
      const s = getComputedStyle(card);
      const inner = card.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      const longest = [...card.querySelectorAll('p')]
        .sort((a, b) => b.textContent.length - a.textContent.length)[0];
      return {inner, text: longest.getBoundingClientRect().width};
    }""")
    assert widths["text"] >= 0.9 * widths["inner"], (widths, str(file))
