"""A broadcast sent by four worker processes on PostgreSQL, one SIGKILLed mid-send:
everyone in the audience gets it exactly once (the rerun picks up the dead
worker's batch after its lease). bench/bench_broadcast.py times 20,000."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from funnel.core.sequences import load_sequences
from funnel.db import make_engine
from funnel.models import AppState, BroadcastRecipient, Delivery, Subscriber
from tests.conftest import catch_holding
from tests.newsletter_support import copy_emails

# Enough batches that the victim is still at work when it is caught: since the worker
# writes .eml files in batches, 400 readers were all sent before the first check.
N = 2000  # bench/bench_broadcast.py does 20,000
WORKERS = 4
LEASE = 60
SLUG = "first-issue"

pytestmark = pytest.mark.slow


def seed(url: str, n: int, emails_dir: Path, now: datetime) -> None:
    """``n`` confirmed readers with nothing of the plan due, so only the broadcast moves."""
    engine = make_engine(url)
    rows = [{"public_id": secrets.token_urlsafe(12), "email": f"reader{i}@example.com",
             "first_name": f"R{i}", "status": "confirmed", "timezone": "Europe/London",
             "created_at": now, "confirmed_at": now, "next_due_at": None}
            for i in range(n)]
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(insert(Subscriber), rows[i : i + 5000])
        conn.execute(insert(AppState), [{"key": "sequence_fingerprint",
                                         "value": load_sequences(emails_dir).fingerprint}])
    engine.dispose()


def flask(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "funnel", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return out


def held_by(url: str, pid: int) -> int:
    engine = make_engine(url, immediate=False)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(
            BroadcastRecipient.lease_owner.like(f"%:{pid}:%"),
            BroadcastRecipient.outcome.is_(None)))
    engine.dispose()
    return n


def waiting(url: str) -> int:
    engine = make_engine(url, immediate=False)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(BroadcastRecipient.outcome.is_(None)))
    engine.dispose()
    return n


def sent_files(env: dict) -> list[Path]:
    return [p for p in Path(env["OUTBOX_DIR"]).glob("*.eml") if f"-{SLUG}-" in p.name]


@pytest.mark.timeout(300)
def test_four_workers_one_killed_everyone_exactly_once(db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("the multi-process broadcast test runs on PostgreSQL")
    emails = copy_emails(tmp_path / "emails")
    env = {**os.environ, "DATABASE_URL": db_url, "OUTBOX_DIR": str(tmp_path / "outbox"),
           "EMAILS_DIR": str(emails), "SECRET_KEY": "broadcast-test",
           "WORKER_BATCH_SIZE": "25", "WORKER_LEASE_SECONDS": str(LEASE)}
    now = datetime.now(UTC)
    seed(db_url, N, emails, now)
    out = finish(flask(env, "broadcast", "send", SLUG))
    assert f"for {N} subscribers" in out

    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    spawned = time.monotonic()
    procs = [flask(env, "worker", "--once", "--now", at) for _ in range(WORKERS)]
    try:
        deadline = time.monotonic() + 120
        while not sent_files(env) and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = catch_holding(procs, lambda pid: held_by(db_url, pid), deadline)
        victim.send_signal(signal.SIGKILL)
        killed_after = timedelta(seconds=time.monotonic() - spawned)
        victim.communicate()
        for p in procs:
            if p is not victim:
                finish(p)
    finally:
        for p in procs:  # on a failure above: no worker left running, no pipe left open
            if p.poll() is None:
                p.kill()
            p.communicate()
    # The victim's batch is still waiting for its lease to run out (its emails may
    # already be in the outbox: the rerun then rewrites the same files).
    assert waiting(db_url) > 0

    base = datetime.fromisoformat(at)
    finish(flask(env, "worker", "--once", "--now",
                 (base + killed_after + timedelta(seconds=LEASE + 1)).isoformat()))

    engine = make_engine(db_url, immediate=False)
    with engine.connect() as conn:
        states = dict(conn.execute(select(Delivery.state, func.count())
                                   .where(Delivery.kind == "broadcast")
                                   .group_by(Delivery.state)).all())
        people = conn.scalar(select(func.count(func.distinct(Delivery.subscriber_id)))
                             .where(Delivery.step_slug == SLUG))
    engine.dispose()
    assert states == {"sent": N} and people == N and waiting(db_url) == 0
    files = sent_files(env)
    assert len(files) == N  # one file per reader: nothing twice, nothing lost
    import email
    from email import policy

    recipients = [email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]
                  for p in files]
    assert len(set(recipients)) == N
    assert re.match(r"reader\d+@example\.com", recipients[0])
