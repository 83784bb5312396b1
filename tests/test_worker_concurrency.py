"""Four worker processes over 20,000 confirmed subscribers (5,000 on SQLite, where
they take turns at the single write lock): every due step goes out exactly once,
also when one worker is SIGKILLed mid-batch and the rest is rerun."""

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

from funnel.db import make_engine
from funnel.models import Delivery, Subscriber
from tests.conftest import catch_holding
from tests.drip import make_emails_dir

# Several worker processes: not in `make test-fast`, always in `make test`.
pytestmark = pytest.mark.slow

N = 20_000
WORKERS = 4
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# Long enough that the survivors finish before it runs out even on a loaded machine
# (then they would rightly take the dead worker's batch over themselves); the rerun
# below jumps the clock past it, so the test does not wait for it.
LEASE = 900


def seed(url: str, n: int) -> None:
    engine = make_engine(url)
    rows = [
        {"public_id": secrets.token_urlsafe(12), "email": f"runner{i}@example.com",
         "first_name": f"R{i}", "status": "confirmed", "timezone": "Europe/London",
         "created_at": NOW, "confirmed_at": NOW, "next_due_at": NOW}
        for i in range(n)
    ]
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(insert(Subscriber), rows[i : i + 5000])
    engine.dispose()


@pytest.fixture
def n(db_url) -> int:
    return 5_000 if db_url.startswith("sqlite") else N


@pytest.fixture
def env(db_url, tmp_path):
    emails = make_emails_dir(tmp_path / "emails")
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "EMAILS_DIR": str(emails),
        "SECRET_KEY": "concurrency-test",
        "WORKER_BATCH_SIZE": "100",
        "WORKER_LEASE_SECONDS": str(LEASE),
    }


_SPAWNED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _reap_workers():
    """A failed test must not leave worker processes (and their pipes) to the next."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def spawn(env: dict, now: datetime) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "funnel", "worker", "--once",
         "--now", now.isoformat()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _SPAWNED.append(proc)
    return proc


def finish(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return int(re.search(r"sent (\d+)", out).group(1))


def totals(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        sent = conn.scalar(select(func.count()).where(Delivery.state == "sent"))
        other = conn.scalar(select(func.count()).where(Delivery.state != "sent"))
        subs = conn.scalar(
            select(func.count(func.distinct(Delivery.subscriber_id))).where(Delivery.step_slug == "welcome"))
    engine.dispose()
    return sent, other, subs


def held_by(url: str, pid: int) -> int:
    """Subscribers a worker process has claimed and not yet released."""
    engine = make_engine(url, immediate=False)
    with engine.connect() as conn:
        n = conn.scalar(
            select(func.count()).where(Subscriber.lease_owner.like(f"%:{pid}:%"))
            .where(Subscriber.lease_until.is_not(None)))
    engine.dispose()
    return n


def expected_files(url: str) -> set[str]:
    """One outbox file name per delivery row, as the outbox transport names them."""
    engine = make_engine(url, immediate=False)
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.created_at, Delivery.step_slug, Delivery.public_id))
        names = {f"{c:%Y%m%dT%H%M%S}-{slug}-{pid}.eml" for c, slug, pid in rows}
    engine.dispose()
    return names


def outbox_files(env: dict) -> list[Path]:
    return list(Path(env["OUTBOX_DIR"]).glob("*.eml"))



@pytest.mark.timeout(1200)
def test_four_workers_send_each_due_step_exactly_once(db_url, env, n):
    seed(db_url, n)
    started = time.monotonic()
    procs = [spawn(env, NOW) for _ in range(WORKERS)]
    counts = [finish(p) for p in procs]
    elapsed = time.monotonic() - started
    print(f"\n{n} emails by {WORKERS} workers in {elapsed:.1f}s: {counts}")
    assert sum(counts) == n  # no worker sent what another had sent
    # The work really was shared. Not "all four": on an idle machine the batched worker
    # can finish 5,000 before the last process has even started (seen: 400, 1600, 0, 3000).
    assert sum(c > 0 for c in counts) >= 2, counts
    assert totals(db_url) == (n, 0, n)
    assert {f.name for f in outbox_files(env)} == expected_files(db_url)


@pytest.mark.timeout(1200)
def test_sigkilled_worker_loses_nothing_and_rerun_sends_nothing_twice(db_url, env, n):
    seed(db_url, n)
    spawned = time.monotonic()
    procs = [spawn(env, NOW) for _ in range(WORKERS)]
    deadline = time.monotonic() + 300
    # Watch from the first file: waiting for a fifth of them gave the batched worker
    # time to finish its whole share before the first look.
    while not outbox_files(env) and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = catch_holding(procs, lambda pid: held_by(db_url, pid), deadline)
    victim.send_signal(signal.SIGKILL)
    # A lease runs from when it was taken: at most this long into the victim's pass.
    killed_after = timedelta(seconds=time.monotonic() - spawned)
    victim.communicate()  # reaps it and closes its pipes
    survivors = [finish(p) for p in procs if p is not victim]
    sent_before_rerun, in_flight, _ = totals(db_url)
    assert sent_before_rerun < n  # the victim's claimed work is still waiting

    # Until its lease runs out nobody touches the dead worker's batch…
    assert finish(spawn(env, NOW + timedelta(seconds=LEASE // 2))) == 0
    # …then a rerun picks it up.
    rerun = finish(spawn(env, NOW + killed_after + timedelta(seconds=LEASE + 1)))
    print(f"\nsurvivors {survivors}, rerun {rerun}, in flight at the kill {in_flight}")
    assert rerun > 0
    assert totals(db_url) == (n, 0, n)
    files = outbox_files(env)
    assert len(files) == n  # one file per (subscriber, step): nothing twice, nothing lost
    assert {f.name for f in files} == expected_files(db_url)


@pytest.mark.timeout(600)
def test_sigterm_finishes_the_batch_and_exits_cleanly(db_url, env):
    seed(db_url, 3_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "funnel", "worker", "--now", NOW.isoformat()],
        env={**env, "WORKER_BATCH_SIZE": "200"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not outbox_files(env) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "finishing the current batch" in err and "worker stopped cleanly" in err
    sent, unfinished, _ = totals(db_url)
    assert 0 < sent < 3_000  # it stopped early…
    assert unfinished == 0  # …but nothing was left half-done
    assert held_by(db_url, proc.pid) == 0  # and it let go of everything it had claimed
    assert len(outbox_files(env)) == sent
