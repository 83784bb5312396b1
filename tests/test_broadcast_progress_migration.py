"""Migration 0025 counts the newsletter issues already in the database: their kept
progress equals a recount from the first load after the upgrade."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from funnel.db import upgrade
from funnel.models import Broadcast
from funnel.newsletter import scheduling
from tests import recount
from tests.parallel import database_name

SEED = [
    "INSERT INTO subscriber (id, public_id, email, status, timezone, created_at, wants_newsletter)"
    " VALUES (1, 'p1', 'a@example.com', 'confirmed', 'UTC', :now, true),"
    " (2, 'p2', 'b@example.com', 'confirmed', 'UTC', :now, true),"
    " (3, 'p3', 'c@example.com', 'confirmed', 'UTC', :now, true)",
    "INSERT INTO broadcast (id, slug, status, subject, source, archive, audience, audience_size,"
    " send_at, created_at) VALUES (1, 'old-issue', 'sending', 'S', 'x', true, '{}', 3, :now, :now)",
    "INSERT INTO broadcast_recipient (broadcast_id, subscriber_id, due_at, outcome) VALUES"
    " (1, 1, NULL, 'sent'), (1, 2, NULL, 'sent'), (1, 3, :now, NULL)",
    "INSERT INTO delivery (public_id, subscriber_id, kind, step_slug, state, attempts, created_at,"
    " sent_at, engaged) VALUES ('d1', 1, 'broadcast', 'old-issue', 'sent', 1, :now, :now, 0),"
    " ('d2', 2, 'broadcast', 'old-issue', 'failed', 1, :now, NULL, 0)",
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def bare_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    base = request.getfixturevalue("_postgres_url")
    url = make_url(base).set(database=database_name("funnel_h28p_progress_backfill"))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    yield url.render_as_string(hide_password=False)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_the_migration_counts_the_issues_already_there(bare_url, clock):
    upgrade(bare_url, "0024")
    engine = create_engine(bare_url)
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement), {"now": clock.now.replace(tzinfo=None)})
    upgrade(bare_url)
    with Session(engine) as s:
        row = s.scalar(select(Broadcast))
        assert scheduling.progress(s, row) == recount.broadcast_progress(s, row) == \
            scheduling.Progress(audience=3, waiting=1, sent=1, failed=1, skipped=0, cancelled=0)
    engine.dispose()
