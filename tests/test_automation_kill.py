"""Exactly once with four worker processes on PostgreSQL, one SIGKILLed mid-batch,
while two sequences and a rule are in flight (issue 25): every copy is counted."""

from __future__ import annotations

import os
import secrets
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from funnel.db import make_engine
from funnel.models import (
    AppState,
    Delivery,
    RuleFiring,
    SequenceEnrollment,
    Subscriber,
    SubscriberTag,
)
from tests.conftest import catch_holding
from tests.sequences_support import make_sequences_dir
from tests.test_worker_concurrency import LEASE, _reap_workers, finish, held_by, spawn  # noqa: F401

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
HALF = 1_000  # group A: the plan's second step due; group B: race week starting


@pytest.fixture
def env(db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("four worker processes at once: the PostgreSQL case (SKIP LOCKED)")
    emails = make_sequences_dir(tmp_path / "emails")
    (emails / "automations.yml").write_text(
        "- name: Racers\n  when: {tag_added: race}\n  then: [{add_tag: racer}]\n")
    return {**os.environ, "DATABASE_URL": db_url, "OUTBOX_DIR": str(tmp_path / "outbox"),
            "EMAILS_DIR": str(emails), "SECRET_KEY": "automation-kill-test",
            "WORKER_BATCH_SIZE": "50", "WORKER_LEASE_SECONDS": str(LEASE)}


def seed(url: str) -> None:
    """A: welcome sent two days ago, mobility due now. B: the plan finished a month
    ago, tagged "race" a minute ago (race week appeared a day ago)."""
    engine = make_engine(url)
    confirmed = NOW - timedelta(days=40)
    subs = [{"public_id": secrets.token_urlsafe(12), "email": f"r{i}@example.com",
             "status": "confirmed", "timezone": "Europe/London", "created_at": confirmed,
             "confirmed_at": confirmed, "next_due_at": NOW} for i in range(2 * HALF)]
    with engine.begin() as conn:
        conn.execute(insert(Subscriber), subs)
        ids = [sid for (sid,) in conn.execute(select(Subscriber.id).order_by(Subscriber.id))]
        a, b = ids[:HALF], ids[HALF:]

        def sent(sid: int, slug: str, at: datetime) -> dict:
            return {"public_id": secrets.token_urlsafe(12), "subscriber_id": sid, "kind": "drip",
                    "step_slug": slug, "state": "sent", "attempts": 1, "created_at": at,
                    "sent_at": at}

        rows = [sent(s, "welcome", NOW - timedelta(days=2)) for s in a]
        for s in b:
            rows += [sent(s, "welcome", NOW - timedelta(days=40)),
                     sent(s, "mobility", NOW - timedelta(days=38)),
                     sent(s, "strength", NOW - timedelta(days=35))]
        conn.execute(insert(Delivery), rows)
        conn.execute(insert(SequenceEnrollment), [
            {"subscriber_id": s, "sequence": "plan", "state": "active", "started_at": confirmed}
            for s in ids])
        conn.execute(insert(SubscriberTag), [
            {"subscriber_id": s, "tag": "race", "added_at": NOW - timedelta(minutes=1),
             "source": "cli"} for s in b])
        conn.execute(insert(AppState), [
            {"key": "sequence_seen:race-week", "value": (NOW - timedelta(days=1)).isoformat()},
            {"key": "sequence_seen:plan", "value": "1970-01-01T00:00:00+00:00"}])
    engine.dispose()


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = {slug: n for slug, n in conn.execute(
            select(Delivery.step_slug, func.count()).where(Delivery.created_at >= NOW)
            .group_by(Delivery.step_slug))}
        out["unsettled"] = conn.scalar(select(func.count()).where(Delivery.state != "sent"))
        out["firings"] = conn.scalar(select(func.count()).select_from(RuleFiring))
        out["racer"] = conn.scalar(select(func.count()).where(SubscriberTag.tag == "racer"))
        out["in race week"] = conn.scalar(select(func.count()).where(
            SequenceEnrollment.sequence == "race-week"))
    engine.dispose()
    return out


def files(env: dict) -> list[Path]:
    return list(Path(env["OUTBOX_DIR"]).glob("*.eml"))


@pytest.mark.timeout(1200)
def test_killed_worker_with_two_sequences_and_a_rule_in_flight(db_url, env):
    seed(db_url)
    spawned = time.monotonic()
    procs = [spawn(env, NOW) for _ in range(4)]
    deadline = time.monotonic() + 300
    while not files(env) and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = catch_holding(procs, lambda pid: held_by(db_url, pid), deadline)
    victim.send_signal(signal.SIGKILL)
    killed_after = timedelta(seconds=time.monotonic() - spawned)
    victim.communicate()
    survivors = [finish(p) for p in procs if p is not victim]
    rerun = finish(spawn(env, NOW + killed_after + timedelta(seconds=LEASE + 1)))
    again = finish(spawn(env, NOW + killed_after + timedelta(seconds=LEASE + 2)))
    got = counts(db_url)
    print(f"\nsurvivors {survivors}, rerun {rerun}, again {again}: {got}")
    assert again == 0
    # Every copy counted: each due step once per person, in both sequences.
    assert got["mobility"] == HALF and got["race-one"] == HALF, got
    assert got["unsettled"] == 0
    assert got["firings"] == HALF and got["racer"] == HALF and got["in race week"] == HALF
    names = [f.name for f in files(env)]
    assert len(names) == 2 * HALF == len(set(names))
    assert sum(1 for n in names if "-race-one-" in n) == HALF
