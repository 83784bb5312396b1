"""Tags (issue 25): every way in adds and removes them through one use case, bad
input changes nothing, and they show in exports, the API, webhooks and audiences."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import event, func, select

from funnel import tagging
from funnel.core.broadcast import parse_filter
from funnel.core.states import TagSource
from funnel.hooks import events as hook_events
from funnel.importing import csv_files, export, importer
from funnel.models import Subscriber, SubscriberTag, WebhookEndpoint, WebhookMessage
from funnel.newsletter.audience import audience_ids
from tests.admin_support import post
from tests.test_api import auth, make_key


def tags_in_db(db, email: str) -> dict[str, SubscriberTag]:
    db.rollback()
    sid = db.scalar(select(Subscriber.id).where(Subscriber.email == email))
    return {t.tag: t for t in db.scalars(select(SubscriberTag)
                                        .where(SubscriberTag.subscriber_id == sid))}


# -- names ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, stored", [("race", "race"), ("  Race-Week ", "race-week"),
                                         ("10k", "10k")])
def test_a_tag_is_stored_in_one_form(raw, stored):
    assert tagging.parse_tag(raw) == stored


@pytest.mark.parametrize("raw", ["", "race week", "race--week", "-race", "race_week",
                                 "räce", "a" * 65, "{{ x }}", "race\x00"])
def test_a_bad_tag_is_refused_with_a_message(raw):
    with pytest.raises(tagging.TagError) as info:
        tagging.parse_tag(raw)
    assert "tag" in str(info.value).lower()


def test_a_cell_holds_several_tags():
    assert tagging.parse_tags("race, plan-pdf;Race  10k,") == ["race", "plan-pdf", "10k"]


# -- the set-based use case ---------------------------------------------------------

def test_tagging_many_people_is_one_statement_and_adding_again_keeps_the_first_date(
        app, db, clock, make_subscriber):
    for i in range(300):
        make_subscriber(f"r{i}@example.com")
    statements: list[str] = []
    engine = db.get_bind()
    listen = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        who = select(Subscriber.id).where(Subscriber.email.like("r1%"))
        added = tagging.add_tag_where(db, "race", who, now=clock.now, source=TagSource.CLI,
                                      reason="entered the 10k")
        db.commit()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert added == 111  # r1, r10-r19, r100-r199
    assert len([s for s in statements if "subscriber_tag" in s]) == 1
    first = clock.now
    clock.advance(days=1)
    again = tagging.add_tag_where(db, "race", select(Subscriber.id), now=clock.now,
                                  source=TagSource.RULE)
    db.commit()
    assert again == 300 - 111
    assert tags_in_db(db, "r1@example.com")["race"].added_at == first
    assert tags_in_db(db, "r1@example.com")["race"].reason == "entered the 10k"
    assert tagging.remove_tag_where(db, "race", select(Subscriber.id)) == 300
    db.commit()
    assert tagging.tag_counts(db) == []


# -- the command line ---------------------------------------------------------------

def test_cli_adds_lists_and_removes(runner, db, make_subscriber):
    make_subscriber("ann@example.com")
    make_subscriber("bob@example.com")
    out = runner.invoke(args=["tags", "add", "race", "ann@example.com", "BOB@example.com",
                              "nobody@example.com", "--reason", "Leeds 10k"])
    assert out.exit_code == 0, out.output
    assert "added to 2" in out.output and "1 not on the list" in out.output
    assert "nobody@example.com" in out.output
    out = runner.invoke(args=["tags", "list"])
    assert "race\t2" in out.output
    out = runner.invoke(args=["tags", "list", "ann@example.com"])
    assert out.output.startswith("race\t") and "cli\tLeeds 10k" in out.output
    out = runner.invoke(args=["tags", "remove", "race", "ann@example.com"])
    assert "removed from 1" in out.output
    assert set(tags_in_db(db, "ann@example.com")) == set()
    assert set(tags_in_db(db, "bob@example.com")) == {"race"}


def test_cli_bad_tag_or_address_changes_nothing(runner, db, make_subscriber, tmp_path):
    make_subscriber("ann@example.com")
    out = runner.invoke(args=["tags", "add", "race week", "ann@example.com"])
    assert out.exit_code != 0 and "Nothing was changed" in out.output
    out = runner.invoke(args=["tags", "add", "race", "ann@example.com", "not-an-address"])
    assert out.exit_code != 0 and "Nothing was changed" in out.output
    assert tags_in_db(db, "ann@example.com") == {}
    listing = tmp_path / "entrants.txt"
    listing.write_text("ann@example.com\n\n")
    out = runner.invoke(args=["tags", "add", "race", "--from-file", str(listing)])
    assert out.exit_code == 0 and set(tags_in_db(db, "ann@example.com")) == {"race"}


# -- import and export --------------------------------------------------------------

def run_import(app, text: str):
    rt = app.extensions["funnel"]
    header, rows = csv_files.read_csv(io.StringIO(text))
    with rt.sessions() as s:
        return importer.import_rows(s, rows, confirmed=False, now=rt.clock(), origin="t.csv")


def test_import_tags_new_and_listed_people_and_reports_bad_cells(app, db, make_subscriber):
    make_subscriber("old@example.com")
    report = run_import(app, "email,tags\nold@example.com,race\nnew@example.com,"
                             "\"race, plan-pdf\"\nbad@example.com,race week!\n")
    assert report.added == 1 and report.already_listed == 1
    assert [(b.line, "tag" in b.problem.lower()) for b in report.bad] == [(4, True)]
    assert set(tags_in_db(db, "old@example.com")) == {"race"}
    assert set(tags_in_db(db, "new@example.com")) == {"race", "plan-pdf"}
    assert tags_in_db(db, "new@example.com")["race"].source == "import"
    assert db.scalar(select(func.count()).select_from(Subscriber)
                     .where(Subscriber.email == "bad@example.com")) == 0


def test_export_has_a_tags_column_that_imports_back(app, db, make_subscriber, clock):
    sub = make_subscriber("ann@example.com")
    tagging.add_tag(db, sub.id, "race", now=clock.now, source=TagSource.CLI)
    tagging.add_tag(db, sub.id, "plan-pdf", now=clock.now, source=TagSource.CLI)
    db.commit()
    buf = io.StringIO()
    csv_files.write_csv(buf, export.export_rows(db))
    lines = buf.getvalue().splitlines()
    assert lines[0].split(",")[-1] == "tags"
    assert lines[1].endswith('"plan-pdf, race"')
    _header, rows = csv_files.read_csv(io.StringIO(buf.getvalue()))
    assert [r["tags"] for _line, r in rows] == ["plan-pdf, race"]


# -- the admin's page ----------------------------------------------------------------

def test_admin_adds_and_removes_tags_on_the_subscribers_page(logged_in, db, make_subscriber):
    sub = make_subscriber("ann@example.com")
    page = f"/admin/subscribers/{sub.public_id}"
    resp = post(logged_in, f"{page}/tags", page, tags="Race, plan-pdf", reason="met at expo")
    assert resp.status_code == 303
    html = logged_in.get(page).get_data(as_text=True)
    assert "<code>race</code>" in html and "met at expo" in html and "admin" in html
    assert set(tags_in_db(db, "ann@example.com")) == {"race", "plan-pdf"}
    post(logged_in, f"{page}/tags/remove", page, tag="race")
    assert set(tags_in_db(db, "ann@example.com")) == {"plan-pdf"}


def test_admin_bad_tag_is_refused_and_changes_nothing(logged_in, db, make_subscriber):
    sub = make_subscriber("ann@example.com")
    page = f"/admin/subscribers/{sub.public_id}"
    post(logged_in, f"{page}/tags", page, tags="race, <script>", reason="x")
    html = logged_in.get(page).get_data(as_text=True)
    assert "Nothing was changed" in html and "&lt;script&gt;" in html
    assert tags_in_db(db, "ann@example.com") == {}


# -- the API -------------------------------------------------------------------------

def test_api_shows_adds_removes_and_filters_by_tag(app, client, db, make_subscriber):
    key = make_key(app)
    ann = make_subscriber("ann@example.com")
    make_subscriber("bob@example.com")
    url = f"/api/v1/subscribers/{ann.public_id}"
    assert client.get(url, headers=auth(key)).get_json()["tags"] == []
    resp = client.patch(url, headers=auth(key), json={"add_tags": ["race", "Plan-PDF"],
                                                      "tag_reason": "from the CRM"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["tags"] == ["plan-pdf", "race"]
    assert tags_in_db(db, "ann@example.com")["race"].reason == "from the CRM"
    listed = client.get("/api/v1/subscribers?tag=race", headers=auth(key)).get_json()
    assert [s["email"] for s in listed["data"]] == ["ann@example.com"]
    resp = client.patch(url, headers=auth(key), json={"remove_tags": ["race"]})
    assert resp.get_json()["tags"] == ["plan-pdf"]


def test_api_bad_tag_is_a_422_and_changes_nothing(app, client, db, make_subscriber):
    key = make_key(app)
    ann = make_subscriber("ann@example.com", first_name="Ann")
    url = f"/api/v1/subscribers/{ann.public_id}"
    resp = client.patch(url, headers=auth(key), json={"first_name": "Anna",
                                                      "add_tags": ["race week"]})
    assert resp.status_code == 422
    resp = client.patch(url, headers=auth(key), json={"first_name": "Anna",
                                                      "add_tags": ["race"],
                                                      "remove_tags": ["race"]})
    assert resp.status_code == 422
    db.rollback()
    assert db.get(Subscriber, ann.id).first_name == "Ann"
    assert tags_in_db(db, "ann@example.com") == {}
    assert client.get("/api/v1/subscribers?tag=no%20way", headers=auth(key)).status_code == 400


# -- webhooks ------------------------------------------------------------------------

def test_webhook_payloads_carry_the_tags(app, db, clock, make_subscriber):
    from funnel.subscribers import actions as subscribers

    db.add(WebhookEndpoint(url="https://hooks.example.com/x", events=" ".join(
        hook_events.EVENT_TYPES), secret="whsec_test", created_at=clock.now))
    db.commit()
    sub = make_subscriber("ann@example.com")
    tagging.add_tag(db, sub.id, "race", now=clock.now, source=TagSource.CLI)
    db.commit()
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        subscribers.unsubscribe(s, s.get(Subscriber, sub.id), now=clock.now, reason="test")
    db.rollback()
    payloads = [json.loads(m.payload) for m in db.scalars(select(WebhookMessage))]
    unsub = [p for p in payloads if p["type"] == "subscriber.unsubscribed"]
    assert unsub and unsub[0]["data"]["tags"] == ["race"]


# -- audiences -----------------------------------------------------------------------

def test_newsletter_audience_by_tag_and_without_tag(db, clock, make_subscriber):
    ann, bob, cat = (make_subscriber(f"{n}@example.com") for n in ("ann", "bob", "cat"))
    tagging.add_tag(db, ann.id, "race", now=clock.now, source=TagSource.CLI)
    tagging.add_tag(db, bob.id, "race", now=clock.now, source=TagSource.CLI)
    tagging.add_tag(db, bob.id, "plan-pdf", now=clock.now, source=TagSource.CLI)
    db.commit()
    flt = parse_filter({"tag": "Race", "without_tag": "plan-pdf"})
    assert set(db.scalars(audience_ids(flt, None, clock.now))) == {ann.id}
    assert set(db.scalars(audience_ids(parse_filter({"without_tag": "race"}), None,
                                       clock.now))) == {cat.id}
    with pytest.raises(ValueError, match="tag"):
        parse_filter({"tag": "race week"})
