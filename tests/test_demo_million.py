"""``demo seed --subscribers N``: a large list with history, built inside PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from funnel.models import Delivery, DeliveryEvent, Subscriber
from funnel.reporting import tallies


def test_seeds_a_list_with_history_or_says_it_needs_postgresql(runner, db, db_url):
    result = runner.invoke(args=["demo", "seed", "--subscribers", "500"])
    if db_url.startswith("sqlite"):
        assert result.exit_code != 0
        assert "PostgreSQL" in result.output
        assert db.scalar(select(func.count()).select_from(Subscriber)) == 0  # nothing changed
        return
    assert result.exit_code == 0, result.output
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 500
    # Pending people got no mail; nobody got a step after unsubscribing.
    pending_mail = db.scalar(select(func.count()).select_from(Delivery).join(Subscriber)
                             .where(Subscriber.status == "pending"))
    late = db.scalar(select(func.count()).select_from(Delivery).join(Subscriber)
                     .where(Subscriber.unsubscribed_at.is_not(None))
                     .where(Delivery.sent_at > Subscriber.unsubscribed_at))
    assert pending_mail == 0 and late == 0
    assert db.scalar(select(func.count()).select_from(Delivery)) > 2000
    assert db.scalar(select(func.count()).select_from(DeliveryEvent)) > 1000
    # The dashboard's tallies say what the rows say, though the seed set the event
    # groups itself instead of through the trigger; and new deliveries still get ids.
    assert tallies.tallied(db) == tallies.recount(db)
    sub = db.scalar(select(Subscriber).where(Subscriber.status == "confirmed").limit(1))
    db.add(Delivery(subscriber_id=sub.id, kind="broadcast", step_slug="news", state="sent",
                    created_at=sub.created_at, sent_at=sub.created_at))
    db.commit()
    assert tallies.tallied(db) == tallies.recount(db)
    again = runner.invoke(args=["demo", "seed", "--subscribers", "500"])
    assert again.exit_code != 0 and "already has subscribers" in again.output
