"""The plan's move to emails/sequences/plan (migration 0018): people already in
the plan carry on where they are, and nothing is sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import create_engine, text

from funnel import create_app
from funnel.db import alembic_config, upgrade
from funnel.runtime import make_worker
from tests.conftest import TEST_SECRET, Clock
from tests.drip import make_emails_dir

CONFIRMED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_people_in_the_plan_carry_on_after_the_migration(db_url, tmp_path):
    command.downgrade(alembic_config(db_url), "0017")
    engine = create_engine(db_url)
    naive = CONFIRMED.replace(tzinfo=None) if db_url.startswith("sqlite") else CONFIRMED
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO subscriber (public_id, email, status, timezone, created_at, "
            "confirmed_at, next_due_at, wants_plan, wants_newsletter) VALUES "
            "('p1', 'mid@example.com', 'confirmed', 'UTC', :t, :t, :t, true, true), "
            "('p2', 'new@example.com', 'pending', 'UTC', :t, NULL, NULL, true, true)"),
            {"t": naive})
        for slug, days in (("welcome", 0), ("mobility", 2)):
            at = naive + timedelta(days=days)
            conn.execute(text(
                "INSERT INTO delivery (public_id, subscriber_id, kind, step_slug, state, "
                "attempts, created_at, sent_at) SELECT :pid, id, 'drip', :slug, 'sent', 1, "
                ":at, :at FROM subscriber WHERE email = 'mid@example.com'"),
                {"pid": f"d-{slug}", "slug": slug, "at": at})
    upgrade(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.email, e.sequence, e.state FROM sequence_enrollment e "
            "JOIN subscriber s ON s.id = e.subscriber_id")).all()
    assert [tuple(r) for r in rows] == [("mid@example.com", "plan", "active")]
    clock = Clock(CONFIRMED + timedelta(days=10))
    app = create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET, "DATABASE_URL": db_url,
                      "OUTBOX_DIR": str(tmp_path / "outbox"), "FUNNEL_BASE_URL": "http://localhost",
                      "CLOCK": clock, "DATABASE_NULL_POOL": True,
                      "EMAILS_DIR": str(make_emails_dir(tmp_path / "emails"))})
    try:
        worker = make_worker(app.extensions["funnel"])
        for _ in range(5):
            worker.run_pass(clock.now)
            clock.advance(days=1)
        with engine.connect() as conn:
            sent = conn.execute(text(
                "SELECT step_slug, COUNT(*) FROM delivery GROUP BY step_slug ORDER BY 1")).all()
            state = conn.scalar(text("SELECT state FROM sequence_enrollment"))
    finally:
        app.extensions["funnel"].engine.dispose()
        engine.dispose()
    assert [tuple(r) for r in sent] == [("mobility", 1), ("strength", 1), ("welcome", 1)]
    assert state == "finished"
    files = [p.name for p in (tmp_path / "outbox").glob("*.eml")]
    assert len(files) == 1 and "-strength-" in files[0]  # nothing they had went again
