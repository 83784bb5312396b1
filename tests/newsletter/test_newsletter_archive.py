"""The public archive and its Atom feed: impersonal, linked to the sign-up, valid."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from tests.newsletter_support import add, run_worker, write_broadcast

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def sent(runner, db, clock, emails_dir):
    add(db, "ann@example.com", now=clock.now, first_name="Annabel")
    write_broadcast(emails_dir, "members-only", subject="Not for the archive", archive="no")
    for slug in ("first-issue", "members-only"):
        assert runner.invoke(args=["broadcast", "send", slug]).exit_code == 0
        run_worker(runner)
        clock.advance(days=1)
    write_broadcast(emails_dir, "draft-issue", subject="Not sent yet")


class Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "srcset", "data"):
            if a.get(key):
                self.urls.append(a[key])
        if tag == "link" and a.get("href"):
            self.urls.append(a["href"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def test_archive_lists_only_sent_archive_issues_newest_first(client, sent):
    page = client.get("/newsletter")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "why the hip stretch turns away" in html
    assert "Not for the archive" not in html and "Not sent yet" not in html
    assert 'href="/free-plan"' in html
    assert client.get("/newsletter/members-only").status_code == 404
    assert client.get("/newsletter/draft-issue").status_code == 404
    assert client.get("/newsletter/" + "x" * 300).status_code == 404


def test_one_issue_has_nothing_personal(client, sent, outbox):
    html = client.get("/newsletter/first-issue").get_data(as_text=True)
    assert "Hi there," in html
    assert "Annabel" not in html and "ann@example.com" not in html
    for kind in ("unsubscribe", "preferences", "view", "confirm"):
        assert f"/{kind}/" not in html, kind
    # The email itself carried tokens; none of them leaked into the page.
    email_text = outbox.text(outbox.messages()[0])
    for token in re.findall(r"/(?:unsubscribe|preferences|view)/([A-Za-z0-9._\-]+)", email_text):
        assert token not in html
    assert 'href="/free-plan"' in html


def test_archive_pages_load_nothing_from_elsewhere(client, sent):
    for path in ("/newsletter", "/newsletter/first-issue"):
        parser = Resources()
        parser.feed(client.get(path).get_data(as_text=True))
        for url in parser.urls:
            assert not re.match(r"^(https?:)?//", url) or url.startswith("http://localhost/"), url


def test_feed_is_valid_atom(client, sent):
    resp = client.get("/newsletter/feed.xml")
    assert resp.status_code == 200
    assert resp.mimetype == "application/atom+xml"
    root = ET.fromstring(resp.data)
    assert root.tag == f"{ATOM}feed"
    # RFC 4287: a feed has exactly one id, title and updated, and an author.
    for tag in ("id", "title", "updated"):
        assert len(root.findall(f"{ATOM}{tag}")) == 1, tag
    assert root.find(f"{ATOM}author/{ATOM}name").text
    self_link = [link for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert self_link[0].get("href") == "http://localhost/newsletter/feed.xml"
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [
        "Run Stronger news #1: why the hip stretch turns away"]
    entry = entries[0]
    for tag in ("id", "title", "updated"):
        assert len(entry.findall(f"{ATOM}{tag}")) == 1, tag
    assert entry.find(f"{ATOM}id").text == "http://localhost/newsletter/first-issue"
    from datetime import datetime

    datetime.fromisoformat(entry.find(f"{ATOM}updated").text)  # RFC 3339 date
    content = entry.find(f"{ATOM}content")
    assert content.get("type") == "html"
    assert "Hi there," in content.text and "Annabel" not in content.text
    assert "http://localhost/free-plan" in content.text


def test_empty_archive_and_feed(client):
    assert "Nothing here yet" in client.get("/newsletter").get_data(as_text=True)
    root = ET.fromstring(client.get("/newsletter/feed.xml").data)
    assert root.findall(f"{ATOM}entry") == []
