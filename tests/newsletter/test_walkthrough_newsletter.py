"""Issue 24, items 1 and 2: every link of a newsletter email opens a page, test sends
included, and the public archive shows pictures and every personal variable."""

from __future__ import annotations

import html
import re

from sqlalchemy import update

from funnel.models import Broadcast
from tests.newsletter_support import add, run_worker, write_broadcast

PICTURE_AND_PLAN = (
    "Hi {{ first_name }},\n\n"
    "![The stretch at its start](images/stretch-1-start.svg)\n\n"
    "Your plan is at [your own page]({{ my_plan_url }}) and as a "
    "[PDF]({{ my_plan_pdf_url }}).\n"
)


def _send(runner, clock, slug: str) -> None:
    result = runner.invoke(args=["broadcast", "send", slug])
    assert result.exit_code == 0, result.output
    run_worker(runner)
    clock.advance(days=1)


def test_view_in_browser_link_of_a_newsletter_opens_the_email(client, runner, db, clock,
                                                              outbox):
    add(db, "ann@example.com", now=clock.now, first_name="Annabel")
    _send(runner, clock, "first-issue")
    [msg] = outbox.to("ann@example.com")
    view = outbox.link(msg, "view")
    page = client.get(view)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    html = page.get_data(as_text=True)
    assert "Annabel" in html
    assert "why the hip stretch turns away" in html
    # Its own links work too: the preference page and the unsubscribe button.
    assert client.get(outbox.link(msg, "preferences")).status_code == 200
    assert client.get(outbox.link(msg, "unsubscribe")).status_code == 200


def test_a_test_sends_links_answer_with_a_page_not_an_error(runner, client, outbox):
    result = runner.invoke(args=["broadcast", "test", "first-issue", "--to", "me@example.com"])
    assert result.exit_code == 0, result.output
    [msg] = outbox.to("me@example.com")
    for kind in ("view", "preferences", "unsubscribe"):
        resp = client.get(outbox.link(msg, kind))
        assert resp.status_code == 200, (kind, resp.status_code)
        body = resp.get_data(as_text=True)
        if kind == "view":  # the test copy itself, as its file reads now
            assert html.escape(str(msg["Subject"]).removeprefix("[TEST] "), quote=False) in body
        else:
            assert "test copy" in body, kind


def _img_sources(html: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)


def test_archive_shows_pictures_and_public_forms_of_personal_links(client, runner, db, clock,
                                                                  emails_dir):
    add(db, "ann@example.com", now=clock.now)
    write_broadcast(emails_dir, "with-picture", body=PICTURE_AND_PLAN,
                    subject="Pictures and plans", archive="yes")
    _send(runner, clock, "with-picture")
    for path in ("/newsletter", "/newsletter/with-picture", "/newsletter/feed.xml"):
        assert client.get(path).status_code == 200, path
    html = client.get("/newsletter/with-picture").get_data(as_text=True)
    [src] = _img_sources(html)
    assert client.get(src.removeprefix("http://localhost")).status_code == 200, src
    # The personal plan link becomes the sign-up page on the web.
    assert 'href="http://localhost/free-plan">your own page' in html
    assert "/plan/" not in html
    feed = client.get("/newsletter/feed.xml").get_data(as_text=True)
    m = re.search(r'&lt;img[^&]*src="([^"]+)"', feed)
    assert m, feed
    assert m.group(1).startswith("http://localhost/media/")
    assert client.get(m.group(1).removeprefix("http://localhost")).status_code == 200


def test_one_broken_issue_never_takes_the_archive_down(client, runner, db, clock, emails_dir):
    add(db, "ann@example.com", now=clock.now)
    write_broadcast(emails_dir, "broken-later", subject="Broken later", archive="yes")
    _send(runner, clock, "broken-later")
    _send(runner, clock, "first-issue")
    # The stored copy goes bad (a variable nobody defines): that issue alone is left out.
    db.execute(update(Broadcast).where(Broadcast.slug == "broken-later")
               .values(source="---\nslug: broken-later\nsubject: Broken\n---\n{{ nope }}\n"))
    db.commit()
    index = client.get("/newsletter")
    assert index.status_code == 200
    assert "why the hip stretch turns away" in index.get_data(as_text=True)
    assert "Broken" not in index.get_data(as_text=True)
    feed = client.get("/newsletter/feed.xml")
    assert feed.status_code == 200 and "hip stretch" in feed.get_data(as_text=True)
    one = client.get("/newsletter/broken-later")
    assert one.status_code == 200
    assert "can't be shown right now" in one.get_data(as_text=True)


def test_newsletters_carry_their_own_list_id(runner, db, clock, outbox):
    add(db, "ann@example.com", now=clock.now)
    _send(runner, clock, "first-issue")
    [msg] = outbox.to("ann@example.com")
    assert "newsletter" in msg["List-Id"].lower()
    assert "free plan" not in msg["List-Id"].lower()


def test_send_of_a_file_whose_front_matter_is_wrong_says_what_is_wrong(runner, emails_dir):
    path = emails_dir / "broadcasts" / "spring-news.md"
    path.write_text("---\nsubject: \"Spring\"\narchive: yes\n---\nHi {{ first_name }}.\n")
    result = runner.invoke(args=["broadcast", "send", "spring-news"])
    assert result.exit_code != 0
    assert "front matter needs 'slug: spring-news'" in result.output
    assert "no broadcast" not in result.output
