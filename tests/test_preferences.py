"""The preference page reached from every email: pause, resume, details, unsubscribe,
download and erase; and the marketer's export-data / erase commands."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from funnel.core import lifecycle
from funnel.models import ConsentRecord, Delivery, DeliveryEvent, Subscriber, Suppression
from funnel.subscribers import actions as subscribers
from funnel.subscribers import privacy
from tests.conftest import csrf_token, press_confirm, sign_up, sign_up_and_confirm

EMAIL = "pat@example.com"


def subscriber(db, email=EMAIL):
    db.rollback()
    return db.scalar(select(Subscriber).where(Subscriber.email == email))


def subjects(outbox, email=EMAIL):
    return [m["Subject"] for m in outbox.to(email)]


@pytest.fixture
def prefs(client, outbox, app, clock, run_worker):
    """A confirmed subscriber who has had email 1; the preferences path from its footer."""
    sign_up_and_confirm(client, outbox, EMAIL, "Pat", utm_source="blog", utm_campaign="hip")
    run_worker()
    first = outbox.to(EMAIL)[-1]
    assert first["Subject"].startswith("Part 1")
    path = outbox.link(first, "preferences")
    # The HTML footer carries the same link.
    assert path in outbox.html(first)
    return path


def post(client, path, action, **data):
    return client.post(f"{path}/{action}", data={"csrf_token": csrf_token(client, path), **data})


def page_text(resp) -> str:
    return re.sub(r"\s+", " ", resp.get_data(as_text=True))


# -- the page ----------------------------------------------------------------------

def test_page_from_the_email_footer_shows_the_controls(client, prefs):
    resp = client.get(prefs)
    body = page_text(resp)
    assert resp.status_code == 200
    assert "Your email preferences" in body and EMAIL in body
    for control in ("Pause emails", "For one week", "For two weeks", "Until I resume them",
                    "Save my details", "Unsubscribe", "Download my data", "Erase my data"):
        assert control in body, control
    # A page opened from a link with a key in it is neither cached nor indexed.
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Robots-Tag"] == "noindex"


# -- pause and resume --------------------------------------------------------------

@pytest.mark.parametrize("length,days", [("1w", 7), ("2w", 14)])
def test_pause_holds_the_plan_until_it_ends(client, prefs, app, clock, db, outbox, length, days, run_worker):
    resp = post(client, prefs, "pause", length=length)
    assert resp.status_code == 303
    end = clock.now + timedelta(days=days)
    assert subscriber(db).paused_until == end
    confirmation = page_text(client.get(resp.location))
    assert "Your emails are paused until" in confirmation
    assert f"{end.day} December 2026" in confirmation and "Resume my emails" in confirmation

    # Email 2 falls due three days in, during the pause: the worker skips them…
    for day in range(1, days):
        clock.now = end - timedelta(days=days - day)
        run_worker()
    clock.now = end - timedelta(minutes=1)
    run_worker()
    assert len(outbox.to(EMAIL)) == 2  # confirmation + email 1
    assert subscriber(db).next_due_at == end
    # …and sends it on the first pass after the pause ends, nothing skipped.
    clock.now = end + timedelta(minutes=1)
    run_worker()
    assert subjects(outbox)[-1].startswith("Part 2")


def test_pause_until_resumed_then_resume(client, prefs, app, clock, db, outbox, run_worker):
    post(client, prefs, "pause", length="resume")
    assert lifecycle.paused_until_resumed(subscriber(db))
    assert "paused until you resume them" in page_text(client.get(prefs))
    for _ in range(8):
        clock.advance(days=5)
        run_worker()
    assert len(outbox.to(EMAIL)) == 2

    resp = post(client, prefs, "resume")
    assert "Your emails are back on" in page_text(client.get(resp.location))
    assert subscriber(db).paused_until is None
    run_worker()  # 40 days on, the next email was long due: it goes now
    assert subjects(outbox)[-1].startswith("Part 2")
    # One step at a time: the one after follows its own delay, not at once.
    run_worker()
    assert len(outbox.to(EMAIL)) == 3


def test_resume_early_sends_when_due(client, prefs, app, clock, db, outbox, run_worker):
    post(client, prefs, "pause", length="2w")
    clock.advance(days=1)
    post(client, prefs, "resume")
    clock.advance(days=1)
    run_worker()
    assert len(outbox.to(EMAIL)) == 2  # email 2 is due on day 3, pause or not
    clock.advance(days=1, hours=1)
    run_worker()
    assert subjects(outbox)[-1].startswith("Part 2")


def test_bad_pause_choice_changes_nothing(client, prefs, db):
    resp = post(client, prefs, "pause", length="forever")
    assert resp.status_code == 422
    assert "Please choose how long to pause for" in page_text(resp)
    assert subscriber(db).paused_until is None


def test_changes_need_the_page_form(client, prefs, db):
    """CSRF: a POST from another site (no token from the page) changes nothing."""
    resp = client.post(f"{prefs}/pause", data={"length": "resume"})
    assert resp.status_code == 400 and "expired" in page_text(resp)
    resp = client.post(f"{prefs}/erase", data={"confirm": "erase"})
    assert resp.status_code == 400
    sub = subscriber(db)
    assert sub is not None and sub.paused_until is None


# -- details -------------------------------------------------------------------------

def test_name_and_time_zone_change_apply_to_the_next_email(client, prefs, app, clock, db, outbox, run_worker):
    resp = post(client, prefs, "profile", first_name="Alex", timezone="America/New_York")
    assert "Saved" in page_text(client.get(resp.location))
    sub = subscriber(db)
    assert (sub.first_name, sub.timezone) == ("Alex", "America/New_York")
    page = page_text(client.get(prefs))
    assert 'value="Alex"' in page and re.search(r'<option value="America/New_York" selected>', page)

    # Email 2 is due 3 days after email 1 (09:00 UTC = 04:00 in New York), so it
    # waits for 08:00 New York time (13:00 UTC).
    clock.now = datetime(2026, 12, 4, 12, 59, tzinfo=UTC)
    run_worker()
    assert len(outbox.to(EMAIL)) == 2
    clock.now = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
    run_worker()
    msg = outbox.to(EMAIL)[-1]
    assert msg["Subject"].startswith("Part 2") and "Hi Alex," in outbox.text(msg)


def test_bad_details_are_refused_and_nothing_changes(client, prefs, db):
    resp = post(client, prefs, "profile", first_name="Pat", timezone="Mars/Olympus_Mons")
    assert resp.status_code == 422
    assert "Please choose a time zone from the list" in page_text(resp)
    resp = post(client, prefs, "profile", first_name="Eve\r\nBcc: x@evil.example",
                timezone="Europe/London")
    assert resp.status_code == 422 and "without line breaks" in page_text(resp)
    sub = subscriber(db)
    assert (sub.first_name, sub.timezone) == ("Pat", "Europe/London")


# -- unsubscribe and subscribe again --------------------------------------------------

def test_unsubscribe_from_the_page_then_resubscribe_needs_confirming(
        client, prefs, app, clock, db, outbox, run_worker):
    resp = post(client, prefs, "unsubscribe")
    assert "You're unsubscribed" in page_text(client.get(resp.location))
    assert subscriber(db).status == "unsubscribed"
    assert subscriber(db).consents[-1].action == "withdraw"
    clock.advance(days=5)
    run_worker()
    assert len(outbox.to(EMAIL)) == 2

    resp = post(client, prefs, "resubscribe")
    assert "emailed you a link to confirm" in page_text(client.get(resp.location))
    assert subscriber(db).status == "pending"
    clock.advance(days=1)
    run_worker()
    confirm_email = outbox.to(EMAIL)[-1]
    assert confirm_email["Subject"] == "Confirm your email to get the free plan"
    press_confirm(client, outbox.link(confirm_email, "confirm"))
    assert subscriber(db).status == "confirmed"
    run_worker()
    assert subjects(outbox)[-1].startswith("Part 2")  # carries on, no repeat of email 1
    actions = [c.action for c in subscriber(db).consents]
    assert actions == ["signup", "confirm", "withdraw", "signup", "confirm"]


# -- consent records -----------------------------------------------------------------

def test_consent_history_says_what_when_and_from_where(client, prefs, db):
    post(client, prefs, "unsubscribe")
    history = privacy.consent_history(db, subscriber(db))
    assert [h["action"] for h in history] == ["signup", "confirm", "withdraw"]
    signup = history[0]
    assert signup["text_version"] == subscribers.CONSENT_VERSION
    assert signup["text"] == subscribers.CONSENT_TEXT
    assert signup["ip"] == "127.0.0.1" and signup["user_agent"]
    assert signup["page"].endswith("/free-plan")
    assert signup["utm"] == {"utm_source": "blog", "utm_campaign": "hip"}
    assert history[1]["at"] <= history[2]["at"]
    assert history[2]["text"] == "preferences page"


# -- download ----------------------------------------------------------------------

def test_download_my_data(client, prefs, app, clock, db, run_worker, outbox):
    clock.advance(days=3)
    run_worker()
    # The export wants a link from the last day: the one in Part 2, just sent.
    prefs = outbox.link(outbox.to(EMAIL)[-1], "preferences")
    resp = client.get(f"{prefs}/data.json")
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["Cache-Control"] == "no-store"
    data = json.loads(resp.get_data(as_text=True))
    profile = data["profile"]
    assert profile["email"] == EMAIL and profile["first_name"] == "Pat"
    assert profile["status"] == "confirmed" and profile["utm"] == {"source": "blog",
                                                                   "campaign": "hip"}
    assert [c["action"] for c in data["consent"]] == ["signup", "confirm"]
    assert data["consent"][0]["text"] == subscribers.CONSENT_TEXT
    assert data["consent"][0]["ip"] == "127.0.0.1"
    drip = [e for e in data["emails"] if e["kind"] == "drip"]  # the confirmation is "system"
    assert [(e["subject"][:6], e["state"]) for e in drip] == [("Part 1", "sent"), ("Part 2", "sent")]
    assert drip[0]["sent_at"] == "2026-12-01T09:00:00+00:00"
    assert drip[1]["sent_at"] == "2026-12-04T09:00:00+00:00"


# -- erase ---------------------------------------------------------------------------

def _everything_in_the_database(db) -> str:
    """Every value in every table, as one string."""
    db.rollback()
    out = []
    for table in inspect(db.get_bind()).get_table_names():
        for row in db.execute(text(f'SELECT * FROM "{table}"')):
            out.append(" ".join(str(v) for v in row))
    return "\n".join(out).lower()


def test_erase_asks_first_then_keeps_only_a_hash(client, prefs, app, clock, db, outbox, run_worker):
    db.rollback()
    sub = subscriber(db)
    db.add(DeliveryEvent(delivery=sub.deliveries[0], provider_event_id="ev-1", kind="open",
                         step_slug=sub.deliveries[0].step_slug, at=clock.now))
    db.add(DeliveryEvent(subscriber_id=sub.id, provider_event_id="ev-2", kind="bounce", at=clock.now,
                         detail=f"550 5.1.1 <{EMAIL.upper()}>: no such user"))
    db.commit()

    # Opening the erase link (or a scanner prefetching it) only asks.
    resp = client.get(f"{prefs}/erase")
    assert resp.status_code == 200 and "Yes, erase my data" in page_text(resp)
    post(client, prefs, "erase")  # without pressing the confirm button
    assert subscriber(db) is not None

    resp = post(client, prefs, "erase", confirm="erase")
    assert resp.status_code == 200 and "Your data is erased" in page_text(resp)
    db.rollback()
    for model in (Subscriber, ConsentRecord, Delivery, DeliveryEvent):
        assert db.scalars(select(model)).all() == [], model
    [suppressed] = db.scalars(select(Suppression)).all()
    assert suppressed.reason == "erased"
    assert suppressed.email_hash == privacy.suppression_hash(db, EMAIL)
    stored = _everything_in_the_database(db)
    for trace in (EMAIL, "example.com", "127.0.0.1", "Mozilla", "werkzeug"):
        assert trace.lower() not in stored, trace

    # Nothing is mailed to them again: not by the worker, a sign-up or the API.
    clock.advance(days=10)
    run_worker()
    assert len(outbox.to(EMAIL)) == 2
    before = sign_up(client, "new.person@example.com")
    again = sign_up(client, EMAIL)
    assert (again.status_code, again.location) == (before.status_code, before.location)
    assert subscribers.subscribe(db, email=EMAIL, first_name=None, timezone="UTC",
                              meta=subscribers.SignupMeta(), now=clock.now) is None
    assert subscriber(db) is None and len(outbox.to(EMAIL)) == 2


def test_erased_and_never_existing_links_answer_the_same(client, prefs, app):
    post(client, prefs, "erase", confirm="erase")
    tokens = app.extensions["funnel"].composer.tokens
    never = "/preferences/" + tokens.make("preferences", "never-existed-0000")
    for suffix in ("", "/data.json", "/erase"):
        erased, unknown = client.get(prefs + suffix), client.get(never + suffix)
        assert erased.status_code == unknown.status_code == 404
        assert page_text(erased) == page_text(unknown)
        assert "nothing stored for this link" in page_text(erased)
    for action in ("pause", "resume", "erase", "unsubscribe"):
        token = csrf_token(client)
        erased = client.post(f"{prefs}/{action}", data={"csrf_token": token, "length": "1w"})
        unknown = client.post(f"{never}/{action}", data={"csrf_token": token, "length": "1w"})
        assert erased.status_code == unknown.status_code == 404
        assert page_text(erased) == page_text(unknown)


def test_import_refuses_an_erased_address(client, prefs, db, clock):
    from funnel.importing.importer import import_rows

    post(client, prefs, "erase", confirm="erase")
    db.rollback()
    report = import_rows(db, [(2, {"email": "Pat@Example.com"})], confirmed=True, now=clock.now)
    assert (report.added, report.suppressed) == (0, 1)
    assert subscriber(db) is None


# -- the marketer's commands -------------------------------------------------------------

def test_cli_export_data(runner, prefs, db):
    result = runner.invoke(args=["subscribers", "export-data", " PAT@example.com "])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["profile"]["email"] == EMAIL
    assert [c["action"] for c in data["consent"]] == ["signup", "confirm"]
    assert data["consent"][0]["utm"] == {"utm_source": "blog", "utm_campaign": "hip"}
    drip = [e for e in data["emails"] if e["kind"] == "drip"]
    assert drip[0]["subject"].startswith("Part 1") and drip[0]["sent_at"]


def test_cli_erase_asks_then_erases(runner, prefs, db, client):
    no = runner.invoke(args=["subscribers", "erase", EMAIL], input="n\n")
    assert no.exit_code == 1 and "Aborted" in no.output
    assert subscriber(db) is not None
    yes = runner.invoke(args=["subscribers", "erase", EMAIL], input="y\n")
    assert yes.exit_code == 0 and f"erased {EMAIL}" in yes.output
    assert subscriber(db) is None
    assert privacy.is_suppressed(db, EMAIL)
    # The subscriber's own links now lead nowhere.
    assert client.get(prefs).status_code == 404


def test_cli_unknown_address_is_a_clear_error(runner, prefs, db):
    unknown = runner.invoke(args=["subscribers", "erase", "nobody@example.com", "--yes"])
    assert unknown.exit_code == 1
    assert "No personal data is stored for nobody@example.com." in unknown.output
    bad = runner.invoke(args=["subscribers", "export-data", "not-an-address"])
    assert bad.exit_code == 1 and "doesn't look right" in bad.output
    runner.invoke(args=["subscribers", "erase", EMAIL, "--yes"])
    erased = runner.invoke(args=["subscribers", "export-data", EMAIL])
    assert erased.exit_code == 1 and "suppression list" in erased.output
    db.rollback()
    assert db.scalars(select(Suppression)).all()[0].reason == "erased"
