"""Topics: the free plan and the newsletter, chosen on the preference page.

Both are on after sign-up. "Only stop the plan" keeps the newsletter, "only stop
the newsletter" keeps the plan, "pause instead" holds everything, and the one-click
unsubscribe in any email stops all mail."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from funnel.models import Subscriber
from tests.conftest import csrf_token, sign_up_and_confirm
from tests.newsletter_support import run_worker

EMAIL = "pat@example.com"


def subscriber(db, email=EMAIL):
    db.rollback()
    return db.scalar(select(Subscriber).where(Subscriber.email == email))


def page_text(resp) -> str:
    return re.sub(r"\s+", " ", resp.get_data(as_text=True))


def post(client, path, action, **data):
    return client.post(f"{path}/{action}", data={"csrf_token": csrf_token(client, path), **data})


@pytest.fixture
def prefs(client, outbox, runner):
    sign_up_and_confirm(client, outbox, EMAIL, "Pat")
    run_worker(runner)
    first = outbox.to(EMAIL)[-1]
    assert first["Subject"].startswith("Part 1")
    return outbox.link(first, "preferences")


def broadcast(runner, slug="first-issue"):
    result = runner.invoke(args=["broadcast", "send", slug])
    assert result.exit_code == 0, result.output
    run_worker(runner)


def newsletter_copies(outbox):
    return [m for m in outbox.to(EMAIL) if m["Subject"].startswith("Run Stronger news")]


def test_both_topics_on_after_signup_and_the_consent_names_both(client, db, prefs):
    sub = subscriber(db)
    assert sub.wants_plan and sub.wants_newsletter
    assert "newsletter" in sub.consents[0].text
    landing = page_text(client.get("/free-plan"))
    assert "free plan" in landing and "newsletter" in landing
    body = page_text(client.get(prefs))
    assert "Only stop the plan" in body and "Only stop the newsletter" in body
    assert "Pause instead" in body


def test_only_stop_the_plan_keeps_the_newsletter(client, db, outbox, runner, clock, prefs):
    resp = post(client, prefs, "topics", stop="plan")
    assert resp.status_code == 303
    assert "You will get no more plan emails" in page_text(client.get(prefs))
    sub = subscriber(db)
    assert (sub.status, sub.wants_plan, sub.wants_newsletter) == ("confirmed", False, True)
    clock.advance(days=30)
    run_worker(runner)
    assert [m["Subject"][:6] for m in outbox.to(EMAIL)].count("Part 1") == 1
    assert not [m for m in outbox.to(EMAIL)  # nothing of the plan after Part 1
                if m["Subject"].startswith("Part ") and not m["Subject"].startswith("Part 1")]
    broadcast(runner)
    assert len(newsletter_copies(outbox)) == 1
    # …and the plan can be switched back on, where it left off.
    post(client, prefs, "topics", start="plan")
    assert subscriber(db).wants_plan
    clock.advance(hours=1)
    run_worker(runner)
    assert [m for m in outbox.to(EMAIL) if m["Subject"].startswith("Part 2")]


def test_only_stop_the_newsletter_keeps_the_plan(client, db, outbox, runner, clock, prefs):
    post(client, prefs, "topics", stop="newsletter")
    sub = subscriber(db)
    assert (sub.status, sub.wants_plan, sub.wants_newsletter) == ("confirmed", True, False)
    broadcast(runner)
    assert newsletter_copies(outbox) == []
    clock.advance(days=4)
    run_worker(runner)
    assert [m for m in outbox.to(EMAIL) if m["Subject"].startswith("Part 2")]


def test_stopping_both_topics_is_unsubscribing(client, db, prefs):
    post(client, prefs, "topics", stop="newsletter")
    post(client, prefs, "topics", stop="plan")
    sub = subscriber(db)
    assert sub.status == "unsubscribed"
    assert "unsubscribed" in page_text(client.get(prefs)).lower()


def test_one_click_unsubscribe_stops_all_mail(client, db, outbox, runner, clock, prefs):
    unsub = outbox.link(outbox.to(EMAIL)[-1], "unsubscribe")
    assert client.post(unsub).status_code == 200
    broadcast(runner)
    clock.advance(days=30)
    run_worker(runner)
    assert newsletter_copies(outbox) == []
    assert len(outbox.to(EMAIL)) == 2  # the confirmation and day 1, nothing since


def test_bad_topic_changes_nothing(client, db, prefs):
    resp = post(client, prefs, "topics", stop="everything")
    assert resp.status_code == 400
    sub = subscriber(db)
    assert sub.wants_plan and sub.wants_newsletter and sub.status == "confirmed"
    no_csrf = client.post(f"{prefs}/topics", data={"stop": "plan"})
    assert no_csrf.status_code == 400
    assert subscriber(db).wants_plan


def test_finishing_the_plan_stays_on_the_newsletter(client, db, outbox, runner, clock, prefs):
    for _ in range(12):
        clock.advance(days=9)
        run_worker(runner)
    last = outbox.to(EMAIL)[-1]
    assert last["Subject"].startswith("Part 8")
    text = outbox.text(last)
    assert "What comes next" in text and "newsletter archive" in text
    # The marketer's next step closes the plan: after its last words, before the footer.
    assert text.index("Thank you for following the plan") < text.index("What comes next")
    broadcast(runner)
    assert len(newsletter_copies(outbox)) == 1
