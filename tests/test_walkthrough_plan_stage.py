"""Issue 24, item 7: after the plan ends, pages and emails say what is true for the
person (in the plan, finished, newsletter only, paused)."""

from __future__ import annotations

import re

from funnel.config import PROJECT_ROOT
from funnel.core.sequence import load_sequence
from funnel.models import Delivery, Subscriber
from tests.conftest import csrf_token, deliver, post_signup, sign_up_and_confirm, take_in

LAST = load_sequence(PROJECT_ROOT / "emails").steps[-1].slug


def _finish(db, email: str, clock) -> None:
    sub = db.query(Subscriber).filter_by(email=email).one()
    db.add(Delivery(subscriber_id=sub.id, step_slug=LAST, kind="drip", state="sent",
                    attempts=1, created_at=clock.now, sent_at=clock.now))
    sub.next_due_at = None
    db.commit()


def _preferences(client, outbox, email: str) -> str:
    """The person's own preference page (as linked from every email of the plan)."""
    from sqlalchemy import select

    app = client.application
    links = app.extensions["funnel"].composer.links
    with app.extensions["funnel"].sessions() as s:
        public_id = s.scalar(select(Subscriber.public_id).where(Subscriber.email == email))
    return links.preferences(public_id).removeprefix(links.base_url)


def test_a_finished_plan_is_shown_as_finished_and_not_offered_a_pause(client, db, clock,
                                                                       outbox):
    sign_up_and_confirm(client, outbox, "done@example.com")
    deliver(client.application)
    _finish(db, "done@example.com", clock)
    prefs = client.get(_preferences(client, outbox, "done@example.com")).get_data(as_text=True)
    assert "<strong>finished</strong>" in prefs
    assert "The free plan: <strong>on</strong>" not in prefs
    assert "Pause the plan" not in prefs and "Only stop the plan" not in prefs


def test_stopping_the_newsletter_after_the_plan_does_not_promise_the_plan(client, db, clock,
                                                                          outbox):
    sign_up_and_confirm(client, outbox, "done@example.com")
    _finish(db, "done@example.com", clock)
    path = _preferences(client, outbox, "done@example.com")
    resp = client.post(path + "/topics", data={"stop": "newsletter",
                                               "csrf_token": csrf_token(client, path)},
                       follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "no more newsletters" in html
    assert "The plan still comes" not in html
    assert "whole plan" in html


def test_stopping_the_newsletter_in_the_plan_says_the_plan_still_comes(client, outbox):
    sign_up_and_confirm(client, outbox, "mid@example.com")
    path = _preferences(client, outbox, "mid@example.com")
    resp = client.post(path + "/topics", data={"stop": "newsletter",
                                               "csrf_token": csrf_token(client, path)},
                       follow_redirects=True)
    assert "The plan still comes" in resp.get_data(as_text=True)


def _sign_up_again(client, outbox, email: str) -> str:
    # Later than the caps on mail to one address allow (system_mail.GAPS).
    client.application.config["CLOCK"].advance(days=2)
    before = len(outbox.to(email))
    post_signup(client, email)
    take_in(client.application)
    deliver(client.application)
    mails = outbox.wait_for(email, before + 1)
    return outbox.text(mails[-1])


def test_signing_up_again_after_the_plan_gives_the_plan_link(client, db, clock, outbox):
    sign_up_and_confirm(client, outbox, "back@example.com")
    _finish(db, "back@example.com", clock)
    text = _sign_up_again(client, outbox, "back@example.com")
    assert "keeps coming" not in text
    assert "whole plan" in text
    m = re.search(r"https?://[^/\s]+(/plan/[A-Za-z0-9._\-]+)", text)
    assert m, text
    assert client.get(m.group(1)).status_code == 200


def test_signing_up_again_in_the_plan_says_it_keeps_coming(client, outbox):
    sign_up_and_confirm(client, outbox, "again@example.com")
    text = _sign_up_again(client, outbox, "again@example.com")
    assert "keeps coming" in text
    assert re.search(r"/plan/[A-Za-z0-9._\-]+", text)
