"""One newsletter issue sent by one worker, against the plan's step in the same run.

    .venv/bin/python bench/bench_newsletter_worker.py [--readers N] [--repeat R]
        [--postgres URL] [--profile FILE] [--profile-outbox FILE] [--plain]

N readers (default 20,000), one worker in this process, batches of 1000. The issue
goes through SendGrid (a local fake answering 202 at once) and to the outbox (one
.eml file per reader); the baseline is the plan's step 1 to the same number of
readers through the same fake, measured in the same run (bench_sendgrid_worker).
Prints ``name: value unit (ratio x baseline)`` and the CPU per recipient.
``--plain`` sends the issue the plain way (FAST_NEWSLETTER=0: ORM objects).
A profiled run's CPU is the profiler's: measure without ``--profile``.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_sendgrid import Accept
from bench.bench_sendgrid_worker import CPU as PLAN_CPU
from bench.bench_sendgrid_worker import run as plan_step
from bench.test_worker_bench import NOW, make_app, seed_sqlite
from funnel.db import upgrade
from funnel.newsletter.work import BroadcastWork
from funnel.runtime import make_worker
from funnel.transports.sendgrid import SendGridTransport
from tests.newsletter_support import write_broadcast

SLUG = "bench-issue"
BODY = ("Hi {{ first_name }},\n\nThis week: three hip drills for the hills. "
        "[Your plan]({{ my_plan_url }})\n\n[Read it on the site]({{ view_url }})\n")
GOALS = {"sendgrid": 5000.0, "outbox": 1000.0}


def seed(url: str, n: int) -> None:
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite:///"))
        if db.exists():
            db.unlink()
        upgrade(url)
        seed_sqlite(db, n, None)  # nothing of the plan due: only the issue moves
        return
    import psycopg

    upgrade(url)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute("TRUNCATE subscriber, app_state, broadcast RESTART IDENTITY CASCADE")
        conn.execute(
            "INSERT INTO subscriber (public_id, email, status, timezone, created_at,"
            " confirmed_at, next_due_at) SELECT md5(g::text), 'r' || g || '@example.com',"
            " 'confirmed', 'Europe/London', %s, %s, NULL FROM generate_series(1, %s) g",
            (NOW, NOW, n))


def send_issue(url: str, tmp: Path, n: int, transport_kind: str, port: int,
               profile: str | None = None) -> tuple[float, float]:
    """(recipients a second, CPU seconds of the worker's thread per recipient)."""
    seed(url, n)
    app = make_app(tmp, url)
    rt = app.extensions["funnel"]
    write_broadcast(Path(rt.settings.emails_dir), SLUG, body=BODY)
    result = app.test_cli_runner().invoke(args=["broadcast", "send", SLUG])
    assert result.exit_code == 0 and f"{n}" in result.output.replace(",", ""), result.output
    transport = (SendGridTransport("SG.bench", host=f"http://127.0.0.1:{port}")
                 if transport_kind == "sendgrid" else None)
    worker = make_worker(rt, transport=transport)
    # The worker's own newsletter piece (brakes and all), out of its step's closure.
    work = next(c.cell_contents for p in worker.pieces if p.name == "newsletter"
                for c in p.run.__closure__ or () if isinstance(c.cell_contents, BroadcastWork))
    work.batch_size = 1000
    at = rt.clock() + timedelta(seconds=1)
    started, cpu = time.perf_counter(), time.thread_time()
    if profile:
        prof = cProfile.Profile()
        report = prof.runcall(work.run, at)
        prof.dump_stats(profile)
    else:
        report = work.run(at)
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    assert report.sent == n, report
    rt.engine.dispose()
    return n / elapsed, cpu / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="")
    parser.add_argument("--profile", default="", help="cProfile of the first SendGrid run")
    parser.add_argument("--profile-outbox", default="", help="cProfile of the first outbox run")
    parser.add_argument("--plain", action="store_true", help="FAST_NEWSLETTER=0")
    args = parser.parse_args()
    if args.plain:
        os.environ["FAST_NEWSLETTER"] = "0"  # read by create_app
    logging.getLogger("funnel").setLevel(logging.WARNING)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    server.requests = server.bytes_in = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    n = args.readers
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = args.postgres or f"sqlite:///{tmp}/nl.db"
        db = "PostgreSQL" if args.postgres else "SQLite"
        where = db + (", plain path: FAST_NEWSLETTER=0" if args.plain else "")
        runs: dict[str, list[tuple[float, float]]] = {"sendgrid": [], "outbox": []}
        plan: list[float] = []
        for i in range(args.repeat):
            runs["sendgrid"].append(send_issue(url, tmp / f"sg{i}", n, "sendgrid", port,
                                               args.profile if i == 0 else None))
            runs["outbox"].append(send_issue(url, tmp / f"ob{i}", n, "outbox", port,
                                             args.profile_outbox if i == 0 else None))
            plan.append(plan_step(url, tmp / f"plan{i}", n, 1000, port))
        base = statistics.median(plan)
        plan_cpu = 1 / statistics.median(PLAN_CPU)  # PLAN_CPU holds recipients per CPU second
        print(f"plan step 1 through SendGrid, {n:,} readers ({db}): {base:,.0f} recipients/s "
              f"(1.0 x baseline) {plan_cpu * 1e6:,.0f} us CPU per recipient")
        for kind, label in (("sendgrid", "through SendGrid"), ("outbox", "to the outbox")):
            rate = statistics.median(r for r, _ in runs[kind])
            cpu = statistics.median(c for _, c in runs[kind])
            print(f"newsletter issue {label}, {n:,} readers, one worker ({where}): "
                  f"{rate:,.0f} recipients/s ({rate / base:.2f} x the plan step; goal "
                  f"{GOALS[kind]:,.0f}/s) {cpu * 1e6:,.0f} us CPU per recipient")
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    server.shutdown()


if __name__ == "__main__":
    main()
