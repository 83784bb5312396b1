"""One newsletter issue to N readers (default a million) on PostgreSQL, 4 workers.

    .venv/bin/python bench/bench_million_send.py --database URL [--readers 1000000]
        [--workers 4] [--memory-profile] [--queries] [--cprofile PAGE]

The database is dropped and made afresh; N confirmed readers are written by SQL.
The issue goes through a local SendGrid fake (bench/fake_sendgrid.py) that counts
each personalization's recipient. Prints the total time, each worker's peak
resident memory (sampled from /proc), every admin page's p95 while the workers
send, and whether each reader got exactly one copy by the fake's count (not by
our tables). ``--memory-profile`` runs one worker in this process under
tracemalloc instead and prints the lines holding the most memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from bench import fake_sendgrid
from bench.admin_login import signed_in
from bench.bench_broadcast import fresh_database
from bench.page_profile import PageProfiles, QueryClock
from funnel import create_app
from funnel.accounts.passwords import hash_password
from funnel.config import PROJECT_ROOT
from funnel.core.sequences import load_sequences
from funnel.models import AdminUser, Subscriber

SLUG = "first-issue"
RSS_GOAL_MB = 200
PAGE_GOAL_MS = 300


def seed(url: str, n: int, emails: Path, now: datetime) -> None:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute(
            "INSERT INTO subscriber (public_id, email, first_name, status, timezone, created_at,"
            " confirmed_at, next_due_at) SELECT md5(g::text), 'reader' || g || '@example.com',"
            " 'R' || g, 'confirmed', 'Europe/London', %s, %s, NULL"
            " FROM generate_series(1, %s) g", (now, now, n))
        conn.execute("INSERT INTO app_state (key, value) VALUES ('sequence_fingerprint', %s)",
                     (load_sequences(str(emails)).fingerprint,))
        conn.execute("ANALYZE")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


class AdminPages:
    """Loads every admin page in turn through the app (no network) until stopped."""

    def __init__(self, env: dict[str, str], cprofile: set[str] | None = None) -> None:
        self.app = create_app({"DATABASE_URL": env["DATABASE_URL"], "SECRET_KEY": "bench",
                               "EMAILS_DIR": env["EMAILS_DIR"], "WTF_CSRF_ENABLED": False})
        rt = self.app.extensions["funnel"]
        self.queries = QueryClock(rt.engine)
        self.profiles = PageProfiles(cprofile or set())
        with rt.sessions() as s:
            admin = AdminUser(email="bench@example.com", password_hash=hash_password("bench-pw"),
                              created_at=rt.clock())
            s.add(admin)
            s.commit()
            some = s.scalar(select(Subscriber.public_id).limit(1))
            self.session = signed_in(rt, admin)
        self.pages = {
            "dashboard": "/admin/", "newsletters": "/admin/broadcasts/",
            "the issue's page": f"/admin/broadcasts/{SLUG}",
            "the issue's figures.csv": f"/admin/broadcasts/{SLUG}/figures.csv",
            "subscribers": "/admin/subscribers", "one subscriber": f"/admin/subscribers/{some}",
            "suppression": "/admin/suppression", "imports": "/admin/import/", "emails": "/admin/emails/",
            "stats.csv": "/admin/stats.csv?report=steps",
            "embed": "/admin/embed", "webhooks": "/admin/webhooks",
        }
        self.times: dict[str, list[float]] = {k: [] for k in self.pages}
        self.stop = threading.Event()

    def run(self) -> None:
        client = self.app.test_client()
        with client.session_transaction() as sess:
            sess.update(self.session)
        while not self.stop.is_set():
            for label, path in self.pages.items():
                started = time.perf_counter()
                with self.queries.page(label), self.profiles.page(label):
                    r = client.get(path)
                    r.get_data()
                self.times[label].append(time.perf_counter() - started)
                assert r.status_code == 200, (path, r.status_code)
                if self.stop.is_set():
                    break


def memory_profile(env: dict[str, str]) -> None:
    """One worker in this process under tracemalloc: which lines hold memory at the end."""
    from funnel.runtime import make_worker

    for k, v in env.items():
        os.environ[k] = v
    app = create_app({"DATABASE_URL": env["DATABASE_URL"]})
    worker = make_worker(app.extensions["funnel"])
    tracemalloc.start(5)
    started = time.perf_counter()
    report = worker.run_pass(datetime.fromisoformat(env["BENCH_AT"]))
    snap = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    print(f"one worker in process: sent {report.sent:,} in {time.perf_counter() - started:.1f} s;"
          f" traced now {current / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB, RSS {rss_mb(os.getpid()):.0f} MB")
    for stat in snap.statistics("lineno")[:12]:
        print(f"  {stat.size / 1e6:8.1f} MB {stat.count:>9,} blocks  {stat.traceback[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", required=True, help="PostgreSQL URL; its database is recreated")
    ap.add_argument("--readers", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--memory-profile", action="store_true")
    ap.add_argument("--queries", action="store_true",
                    help="print each page's slowest SQL statements (ms a load)")
    ap.add_argument("--cprofile", action="append", default=[], metavar="PAGE",
                    help="cProfile this page (its label, e.g. dashboard); slows it, repeatable")
    args = ap.parse_args()
    url = fresh_database(args.database)
    fake, port = fake_sendgrid.start(args.readers)
    with tempfile.TemporaryDirectory() as tmp:
        emails = Path(tmp, "emails")
        shutil.copytree(PROJECT_ROOT / "emails", emails)
        t0 = time.monotonic()
        seed(url, args.readers, emails, datetime.now(UTC))
        print(f"seeded {args.readers:,} readers in {time.monotonic() - t0:.1f} s", flush=True)
        env = {**os.environ, "DATABASE_URL": url, "EMAILS_DIR": str(emails), "SECRET_KEY": "bench",
               "SENDGRID_API_KEY": "SG.bench", "SENDGRID_API_HOST": f"http://127.0.0.1:{port}",
               "WORKER_BATCH_SIZE": str(args.batch), "LOG_LEVEL": "WARNING",
               "MAIL_TRANSPORT": "sendgrid", "OUTBOX_DIR": str(Path(tmp, "outbox"))}
        flask = [sys.executable, "-m", "flask", "--app", "funnel"]
        t0 = time.monotonic()
        subprocess.run([*flask, "broadcast", "send", SLUG], env=env, check=True,
                       capture_output=True)
        scheduled = time.monotonic() - t0
        print(f"scheduled (CLI): {scheduled:.1f} s", flush=True)
        env["BENCH_AT"] = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        if args.memory_profile:
            memory_profile(env)
            fake.terminate()
            return
        pages = AdminPages(env, set(args.cprofile))
        t1 = time.monotonic()
        procs = [subprocess.Popen([*flask, "worker", "--once", "--now", env["BENCH_AT"]], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(args.workers)]
        peaks = {p.pid: 0.0 for p in procs}
        loader = threading.Thread(target=pages.run, daemon=True)
        loader.start()
        while any(p.poll() is None for p in procs):
            for p in procs:
                peaks[p.pid] = max(peaks[p.pid], rss_mb(p.pid))
            time.sleep(0.2)
        sent_time = time.monotonic() - t1
        pages.stop.set()
        loader.join()
        for p in procs:
            if p.returncode:
                sys.exit(p.stderr.read().decode()[-2000:] if p.stderr else "a worker failed")
        got = fake_sendgrid.counts(port)
        fake.terminate()
    n = args.readers
    print(f"newsletter to {n:,} readers, {args.workers} workers, PostgreSQL, SendGrid fake "
          f"({os.cpu_count()} cores):")
    print(f"  send: {sent_time:.1f} s = {n / sent_time:,.0f} recipients/s; "
          f"total with scheduling {scheduled + sent_time:.1f} s")
    for i, mb in enumerate(peaks.values(), 1):
        print(f"  worker {i} peak RSS: {mb:.0f} MB (goal < {RSS_GOAL_MB}: "
              f"{'met' if mb < RSS_GOAL_MB else 'NOT met'})")
    for label, times in pages.times.items():
        if times:
            ms = p95(times) * 1000
            print(f"  admin {label} while sending: {ms:.0f} ms p95 of {len(times)} "
                  f"(goal < {PAGE_GOAL_MS}: {'met' if ms < PAGE_GOAL_MS else 'NOT met'})")
            if args.queries:
                print("\n".join(pages.queries.report(label)))
            if label in args.cprofile:
                print(pages.profiles.report(label))
    exact = got["once"] == n and not got["missing"] and not got["more_than_once"] and not got["stray"]
    print(f"  the fake's count: {got['recipients']:,} recipients in {got['requests']:,} requests;"
          f" {got['once']:,} readers once, {got['missing']:,} missing, "
          f"{got['more_than_once']:,} more than once, {got['stray']:,} stray: "
          f"{'exactly one copy each' if exact else 'NOT exactly once'}")
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
