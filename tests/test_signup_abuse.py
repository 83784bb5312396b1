"""Sign-up abuse: confirmation mail is queued for the worker (never sent in the
request), capped per address, carries nothing a stranger typed, and a second
sign-up changes nothing about a pending person."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from funnel.models import ConsentRecord, Delivery, SignupIntake, Subscriber
from funnel.transports import TransientSendError
from tests.conftest import Clock, deliver, post_signup, sign_up, sign_up_and_confirm, take_in
from tests.faults import ScriptedTransport


def subscriber(db, email):
    db.rollback()
    return db.scalar(select(Subscriber).where(Subscriber.email == email))


def system_rows(db, email):
    sub = subscriber(db, email)
    return sorted((d for d in sub.deliveries if d.kind == "system"), key=lambda d: d.id)


def test_no_mail_is_sent_inside_the_request_for_any_address(app, client, db, outbox, clock):
    """Timing independence: new, pending and confirmed addresses all get the same
    answer and the same work in the request (one intake row, no look-up, no send);
    the worker's next pass queues and sends what each needs."""
    sign_up_and_confirm(client, outbox, "known@example.com")
    sign_up(client, "pending@example.com")
    clock.advance(hours=2)
    before = len(outbox)
    answers = []
    for email in ("new@example.com", "known@example.com", "pending@example.com"):
        resp = post_signup(client, email)
        answers.append((resp.status_code, resp.location))
        assert len(outbox) == before  # nothing left inside the request
    assert len(set(answers)) == 1 and answers[0][0] == 303
    db.rollback()
    intake = db.execute(select(SignupIntake.email).order_by(SignupIntake.id)).scalars().all()
    assert intake == ["new@example.com", "known@example.com", "pending@example.com"]
    assert take_in(app).queued == 3
    queued = [d for e in ("new@example.com", "known@example.com", "pending@example.com")
              for d in system_rows(db, e) if d.state == "queued"]
    assert len(queued) == 3
    report = deliver(app)
    assert report.sent == 3
    assert len(outbox) == before + 3
    [already] = [m for m in outbox.to("known@example.com")
                 if m["Subject"] == "You're already on the Run Stronger list"]
    assert "/preferences/" in outbox.text(already)
    assert "/confirm/" not in outbox.text(already)


def test_the_embedded_worker_is_woken_by_a_sign_up(app, client):
    wake = app.extensions["funnel"].wake
    wake.clear()
    post_signup(client, "wake@example.com")
    assert wake.is_set()


def test_at_most_three_confirmations_a_month_with_growing_gaps(app, client, db, outbox, clock):
    def mails():
        deliver(app)
        return len(outbox.to("victim@example.com"))

    post_signup(client, "victim@example.com")
    assert mails() == 1
    clock.advance(minutes=4)
    post_signup(client, "victim@example.com")
    assert mails() == 1  # within 5 minutes: nothing
    clock.advance(minutes=2)
    post_signup(client, "victim@example.com")
    assert mails() == 2
    clock.advance(minutes=50)
    post_signup(client, "victim@example.com")
    assert mails() == 2  # the third needs an hour
    clock.advance(minutes=15)
    post_signup(client, "victim@example.com")
    assert mails() == 3
    for _ in range(20):  # a stranger keeps going for weeks
        clock.advance(days=1)
        post_signup(client, "victim@example.com")
    assert mails() == 3
    clock.advance(days=10)  # the first one is now more than 30 days old
    post_signup(client, "victim@example.com")
    assert mails() == 4


def test_unsubscribing_and_signing_up_again_does_not_reset_the_cap(app, client, db, outbox,
                                                                   clock):
    sign_up_and_confirm(client, outbox, "cycle@example.com")
    for _ in range(6):
        clock.advance(hours=2)
        unsub = outbox.link(outbox.to("cycle@example.com")[0], "unsubscribe")
        client.post(unsub, data={"List-Unsubscribe": "One-Click"})
        assert subscriber(db, "cycle@example.com").status == "unsubscribed"
        sign_up(client, "cycle@example.com")
        assert subscriber(db, "cycle@example.com").status == "pending"
    confirms = [m for m in outbox.to("cycle@example.com") if "Confirm" in m["Subject"]]
    assert len(confirms) == 3


def test_confirmation_carries_nothing_the_stranger_typed(app, client, db, outbox):
    sign_up(client, "target@example.com", "Click evil.example now")
    [msg] = outbox.to("target@example.com")
    raw = msg.as_string()
    assert "evil" not in raw and "Click" not in msg["To"]
    assert "Hi there," in outbox.text(msg)


def test_a_new_sign_up_does_not_overwrite_a_pending_person(app, client, db, outbox, clock):
    sign_up(client, "kept@example.com", "Alex", tz="Europe/Berlin", utm_source="club")
    clock.advance(hours=2)
    sign_up(client, "kept@example.com", "Mallory", tz="Pacific/Kiritimati", utm_source="spam",
            referrer="evil.example")
    sub = subscriber(db, "kept@example.com")
    assert (sub.first_name, sub.timezone, sub.utm_source, sub.referrer) == (
        "Alex", "Europe/Berlin", "club", None)


def test_already_subscribed_mail_is_under_the_same_caps(app, client, db, outbox, clock):
    sign_up_and_confirm(client, outbox, "member@example.com")
    for _ in range(10):
        clock.advance(minutes=30)
        sign_up(client, "member@example.com")
    already = [m for m in outbox.to("member@example.com")
               if m["Subject"] == "You're already on the Run Stronger list"]
    assert len(already) == 2  # with the confirmation: three in the month


def test_already_subscribed_mail_is_dropped_if_they_unsubscribe_first(app, client, db, outbox,
                                                                      clock):
    sign_up_and_confirm(client, outbox, "gone@example.com")
    clock.advance(hours=1)
    post_signup(client, "gone@example.com")
    take_in(app)  # "already on the list" is queued ...
    unsub = outbox.link(outbox.to("gone@example.com")[0], "unsubscribe")
    client.post(unsub, data={"List-Unsubscribe": "One-Click"})
    deliver(app)
    assert [m["Subject"] for m in outbox.to("gone@example.com")] == [
        "Confirm your email to get the free plan"]
    assert system_rows(db, "gone@example.com")[-1:] == []  or all(
        d.state != "queued" for d in system_rows(db, "gone@example.com"))


def test_a_sign_up_taken_in_after_a_later_unsubscribe_changes_nothing(app, client, db, outbox,
                                                                     clock):
    sign_up_and_confirm(client, outbox, "later@example.com")
    clock.advance(hours=1)
    post_signup(client, "later@example.com")
    clock.advance(seconds=1)  # they unsubscribe before the worker's next pass
    unsub = outbox.link(outbox.to("later@example.com")[0], "unsubscribe")
    client.post(unsub, data={"List-Unsubscribe": "One-Click"})
    deliver(app)
    assert subscriber(db, "later@example.com").status == "unsubscribed"
    assert [m["Subject"] for m in outbox.to("later@example.com")] == [
        "Confirm your email to get the free plan"]
    assert [c.action for c in subscriber(db, "later@example.com").consents] == [
        "signup", "confirm", "withdraw"]


def test_a_failed_send_is_retried_by_the_worker_and_submit_again_brings_it_forward(
        app, client, db, outbox, clock):
    rt = app.extensions["funnel"]
    real = rt.transport
    down = ScriptedTransport()
    down.script = [TransientSendError("connection refused")]
    rt.transport = down
    sign_up(client, "down@example.com")
    [d] = system_rows(db, "down@example.com")
    assert d.state == "retry" and d.retry_at > clock.now  # kept, with a backoff
    rt.transport = real
    clock.advance(seconds=5)
    sign_up(client, "down@example.com")  # "submit again": sent now, not after the backoff
    assert len(outbox.to("down@example.com")) == 1
    [d] = system_rows(db, "down@example.com")
    assert d.state == "sent" and d.attempts == 2


class Ticking(Clock):
    """A clock that moves on every reading, as a real one does."""

    def __call__(self):
        self.now += timedelta(milliseconds=7)
        return self.now


def test_one_now_per_request(app_config, db_url):
    from funnel import create_app

    clock = Ticking()
    app = create_app({**app_config, "CLOCK": clock})
    client = app.test_client()
    resp = post_signup(client, "tick@example.com")
    assert resp.status_code == 303
    take_in(app)  # the worker decides as of the request's time
    with app.extensions["funnel"].sessions() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == "tick@example.com"))
        consent = s.scalar(select(ConsentRecord).where(ConsentRecord.subscriber_id == sub.id))
        row = s.scalar(select(Delivery).where(Delivery.subscriber_id == sub.id))
        assert sub.created_at == consent.at == row.created_at == row.retry_at == sub.confirm_sent_at
    app.extensions["funnel"].engine.dispose()
