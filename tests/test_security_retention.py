"""Storage limitation: sign-ups never confirmed are deleted after
PENDING_RETENTION_DAYS, with the IP address and user agent they held."""

from __future__ import annotations

from sqlalchemy import func, select

from funnel.models import ConsentRecord
from funnel.runtime import make_worker
from tests.conftest import csrf_token, sign_up
from tests.security_support import personal_path, subscriber


def consents(db) -> int:
    db.rollback()
    return db.scalar(select(func.count(ConsentRecord.id)))


def confirm(app, client, db, email):
    path = personal_path(app, db, email, "confirm")
    client.post(path, data={"csrf_token": csrf_token(client, path)})


def test_unconfirmed_sign_ups_are_purged_after_the_period(app, client, runner, db, clock):
    sign_up(client, "never@example.com", "Nev")
    sign_up(client, "later@example.com")
    sign_up(client, "yes@example.com")
    confirm(app, client, db, "yes@example.com")
    clock.advance(days=29)
    sign_up(client, "recent@example.com")
    result = runner.invoke(args=["subscribers", "purge-pending"])
    assert result.exit_code == 0 and "0 " in result.output  # 29 days: nothing yet
    clock.advance(days=2)
    result = runner.invoke(args=["subscribers", "purge-pending"])
    assert result.exit_code == 0, result.output
    assert "2 " in result.output
    assert subscriber(db, "never@example.com") is None
    assert subscriber(db, "later@example.com") is None
    assert subscriber(db, "yes@example.com").status == "confirmed"
    assert subscriber(db, "recent@example.com") is not None
    db.rollback()
    ips = db.scalars(select(ConsentRecord.subscriber_id)).all()
    assert len(ips) == consents(db) == 3  # yes: sign-up and confirm; recent: sign-up


def test_the_worker_purges_too(app, client, db, clock):
    sign_up(client, "never@example.com")
    clock.advance(days=31)
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    assert subscriber(db, "never@example.com") is None


def test_a_person_with_a_history_is_kept(app, client, runner, db, clock):
    """Someone who confirmed once, unsubscribed and signed up again has records
    (their consent and withdrawal) that the purge must not take."""
    sign_up(client, "back@example.com")
    confirm(app, client, db, "back@example.com")
    unsub = personal_path(app, db, "back@example.com", "unsubscribe")
    client.post(unsub, data={"List-Unsubscribe": "One-Click"})
    clock.advance(days=1)
    sign_up(client, "back@example.com")
    clock.advance(days=60)
    runner.invoke(args=["subscribers", "purge-pending"])
    assert subscriber(db, "back@example.com") is not None


def test_imported_pending_people_are_the_operators_to_keep(runner, db, clock, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email\nimported@example.com\n")
    runner.invoke(args=["subscribers", "import", str(path)])
    clock.advance(days=90)
    runner.invoke(args=["subscribers", "purge-pending"])
    assert subscriber(db, "imported@example.com") is not None
