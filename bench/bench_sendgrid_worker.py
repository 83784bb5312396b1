"""The worker end to end against SendGrid: claim, compose, send, record.

    .venv/bin/python bench/bench_sendgrid_worker.py [--subscribers N] [--repeat R]
        [--postgres URL] [--profile FILE]

One step due for N subscribers (default 20,000), one worker process, a local fake
of the Mail Send API answering 202 at once. Batched (up to 1000 per request, the
worker's batch 1000) against one request per email (the same worker and
transport, ``max_batch`` 1), measured in the same run on a tenth as many
subscribers. Prints ``name: value unit (ratio x baseline)``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_sendgrid import Accept
from bench.test_worker_bench import NOW, make_app, seed_sqlite
from funnel.core.sequence import load_sequence
from funnel.db import upgrade
from funnel.models import AppState
from funnel.runtime import make_worker
from funnel.transports.sendgrid import SendGridTransport


def seed(url: str, tmp: Path, n: int) -> None:
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite:///"))
        if db.exists():
            db.unlink()
        upgrade(url)
        seed_sqlite(db, n, NOW)
        return
    import psycopg

    upgrade(url)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        # A bench database: each run starts from an empty list.
        conn.execute("TRUNCATE subscriber, app_state RESTART IDENTITY CASCADE")
        conn.execute(
            "INSERT INTO subscriber (public_id, email, status, timezone, created_at,"
            " confirmed_at, next_due_at) SELECT md5(g::text), 'r' || g || '@example.com',"
            " 'confirmed', 'Europe/London', %s, %s, %s FROM generate_series(1, %s) g",
            (NOW, NOW, NOW, n))


def run(url: str, tmp: Path, n: int, max_batch: int, port: int,
        profile: str | None = None) -> float:
    seed(url, tmp, n)
    app = make_app(tmp, url)
    rt = app.extensions["funnel"]
    transport = SendGridTransport("SG.bench", host=f"http://127.0.0.1:{port}")
    transport.max_batch = max_batch
    rt.settings = dataclasses.replace(rt.settings, batch_size=1000)
    worker = make_worker(rt, transport=transport)
    with rt.sessions() as s:  # as if the workers had already seen this sequence
        s.add(AppState(key="sequence_fingerprint", value=load_sequence(rt.settings.emails_dir).fingerprint))
        s.commit()
    started, cpu = time.perf_counter(), time.thread_time()
    if profile:
        prof = cProfile.Profile()
        report = prof.runcall(worker.run_pass, NOW)
        prof.dump_stats(profile)
    else:
        report = worker.run_pass(NOW)
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    assert report.sent == n, report
    rt.engine.dispose()
    CPU.append(n / cpu)
    return n / elapsed


# Recipients per CPU second of the worker's thread: the machine is shared, and
# the fake SendGrid's threads in this process are not the worker's work.
CPU: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="")
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    logging.getLogger("funnel").setLevel(logging.WARNING)  # one INFO line per request
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    server.requests = server.bytes_in = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = args.postgres or f"sqlite:///{tmp}/sg.db"
        where = "PostgreSQL" if args.postgres else "SQLite"
        batched, single = [], []
        for i in range(args.repeat):
            batched.append(run(url, tmp / f"b{i}", args.subscribers, 1000, port,
                               args.profile if i == 0 else None))
            single.append(run(url, tmp / f"s{i}", max(args.subscribers // 10, 100), 1, port))
        b, s = statistics.median(batched), statistics.median(single)
        cpu_b, cpu_s = statistics.median(CPU[0::2]), statistics.median(CPU[1::2])
        print(f"sendgrid worker end to end, {args.subscribers:,} recipients ({where}): "
              f"{b:,.0f} recipients/s ({b / s:.1f} x one request per email)")
        print(f"sendgrid worker one request per email ({where}): {s:,.0f} recipients/s "
              f"(1.0 x baseline)")
        print(f"sendgrid worker per CPU second ({where}): {cpu_b:,.0f} recipients/s "
              f"({cpu_b / cpu_s:.1f} x one request per email, {cpu_s:,.0f}/s)")
        print(f"  runs batched: {', '.join(f'{r:,.0f}' for r in batched)}; "
              f"per email: {', '.join(f'{r:,.0f}' for r in single)}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    server.shutdown()


if __name__ == "__main__":
    main()
