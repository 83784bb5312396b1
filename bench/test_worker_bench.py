"""The drip worker: emails per second into the outbox, and an idle pass over
10,000 vs 1,000,000 subscribers (it must not grow with the list)."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.conftest import RESULTS, ratio, record
from funnel import create_app
from funnel.core.sequence import load_sequence
from funnel.db import upgrade
from funnel.models import AppState, Subscriber
from funnel.runtime import make_worker
from funnel.transports.outbox import OutboxTransport, to_email_message
from tests.drip import make_emails_dir

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SEND_N = 2_000


def make_app(tmp: Path, url: str):
    emails = tmp / "emails"
    if not emails.exists():
        make_emails_dir(emails)
    return create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "EMAILS_DIR": str(emails),
                       "OUTBOX_DIR": str(tmp / "outbox"), "WORKER_BATCH_SIZE": 200})


def seed_sqlite(path: Path, n: int, due: datetime | None) -> None:
    """Raw sqlite3 executemany: a million rows in seconds."""
    conn = sqlite3.connect(path)
    stamp = NOW.replace(tzinfo=None).isoformat(" ")
    due_text = due.replace(tzinfo=None).isoformat(" ") if due else None
    rows = ((secrets.token_urlsafe(12), f"r{i}@example.com", "confirmed", "Europe/London",
             stamp, stamp, due_text) for i in range(n))
    conn.executemany(
        "INSERT INTO subscriber (public_id, email, status, timezone, created_at, confirmed_at,"
        " next_due_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


def test_baseline_render_and_write_only(benchmark, tmp):
    """Baseline: render and write SEND_N emails with no database at all."""
    app = make_app(tmp / "base", f"sqlite:///{tmp}/base.db")
    rt = app.extensions["funnel"]
    step = load_sequence(rt.settings.emails_dir).steps[0]
    outbox = OutboxTransport(tmp / "base-outbox")
    subs = [Subscriber(email=f"r{i}@example.com", first_name="R", public_id=f"p{i}")
            for i in range(SEND_N)]

    def run():
        msgs = [rt.composer.message(step.source, s, key=f"k{i}", now=NOW, delivery_id=f"d{i}")
                for i, s in enumerate(subs)]
        outbox.send(msgs)

    benchmark.pedantic(run, rounds=3, iterations=1)
    record("render+write 2,000 emails (no DB)", benchmark)


def test_baseline_old_builder(benchmark, tmp):
    """Baseline: the same emails built by Python's email package and written one
    fsync at a time (file, then folder), as the outbox did before, no database."""
    app = make_app(tmp / "old", f"sqlite:///{tmp}/old.db")
    rt = app.extensions["funnel"]
    step = load_sequence(rt.settings.emails_dir).steps[0]
    folder = tmp / "old-outbox"
    folder.mkdir(exist_ok=True)
    subs = [Subscriber(email=f"r{i}@example.com", first_name="R", public_id=f"p{i}")
            for i in range(SEND_N)]

    def run():
        for i, s in enumerate(subs):
            msg = rt.composer.message(step.source, s, key=f"k{i}", now=NOW, delivery_id=f"d{i}")
            fd, tmp_name = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(to_email_message(msg).as_bytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, folder / f"k{i}.eml")
            dir_fd = os.open(folder, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)

    benchmark.pedantic(run, rounds=2, iterations=1)
    record("old builder, one fsync at a time (no DB)", benchmark)


def test_worker_pass_sending(benchmark, tmp):
    counter = iter(range(100))
    cpu: list[float] = []

    def setup():
        n = next(counter)
        db = tmp / f"send{n}.db"
        upgrade(f"sqlite:///{db}")
        seed_sqlite(db, SEND_N, NOW)
        app = make_app(tmp / f"send{n}", f"sqlite:///{db}")
        rt = app.extensions["funnel"]
        return (make_worker(rt),), {}

    def run(worker):
        started = time.process_time()
        report = worker.run_pass(NOW)
        cpu.append(time.process_time() - started)
        assert report.sent == SEND_N

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    record("worker pass sending 2,000 emails", benchmark)
    ratio("engine overhead (worker / render+write)", "worker pass sending 2,000 emails",
          "render+write 2,000 emails (no DB)")
    ratio("old builder / worker (x faster end to end)", "old builder, one fsync at a time (no DB)",
          "worker pass sending 2,000 emails")
    per_second = SEND_N / benchmark.stats.stats.mean
    old = RESULTS.get("old builder, one fsync at a time (no DB)")
    versus = f" ({per_second * old / SEND_N:.1f} x the old builder, no database)" if old else ""
    print(f"\noutbox worker end to end, {SEND_N:,} emails (SQLite): {per_second:,.0f} emails/s"
          f"{versus}")
    if old:
        print(f"outbox old builder, one fsync at a time, no database: {SEND_N / old:,.0f} emails/s "
              f"(1.0 x baseline)")
    print(f"  per CPU second of the worker: {SEND_N / statistics.median(cpu):,.0f} emails/s; "
          f"load average {os.getloadavg()[0]:.1f}")


@pytest.mark.parametrize("n", [10_000, 1_000_000], ids=["10k", "1M"])
def test_idle_pass(benchmark, tmp, n):
    """Nobody is due: most subscribers finished, the rest wait a day or more."""
    db = tmp / f"idle{n}.db"
    if db.exists():
        db.unlink()
    upgrade(f"sqlite:///{db}")
    seed_sqlite(db, n, NOW + timedelta(days=1))
    app = make_app(tmp / f"idle{n}", f"sqlite:///{db}")
    rt = app.extensions["funnel"]
    worker = make_worker(rt)
    with rt.sessions() as s:  # as if the workers had already seen this sequence
        s.add(AppState(key="sequence_fingerprint", value=load_sequence(rt.settings.emails_dir).fingerprint))
        s.commit()

    def run():
        report = worker.run_pass(NOW)
        assert report.claimed == 0, report

    benchmark.pedantic(run, rounds=20, iterations=1, warmup_rounds=2)
    record(f"idle worker pass, {n:,} subscribers", benchmark)
    if n == 1_000_000:
        ratio("idle pass 1M / 10k (1.0 = does not grow)", "idle worker pass, 1,000,000 subscribers",
              "idle worker pass, 10,000 subscribers")
    shutil.rmtree(tmp / f"idle{n}", ignore_errors=True)
