"""Schedule and send one broadcast to 20,000 readers with 4 worker processes; prints the times.

    FUNNEL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/funnel_bench \
        .venv/bin/python bench/bench_broadcast.py [--readers 20000] [--workers 4]

The database is dropped and created afresh. The outbox transport writes one file
per email into a temporary folder, as in production without SendGrid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from funnel.config import PROJECT_ROOT
from funnel.db import upgrade
from tests.test_broadcast_exactly_once import SLUG, seed


def fresh_database(url: str) -> str:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    rendered = u.render_as_string(hide_password=False)
    upgrade(rendered)
    return rendered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readers", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()
    url = os.environ.get("FUNNEL_BENCH_POSTGRES_URL")
    if not url:
        sys.exit("set FUNNEL_BENCH_POSTGRES_URL to a PostgreSQL URL (its database is recreated)")
    url = fresh_database(url)
    with tempfile.TemporaryDirectory() as tmp:
        emails = Path(tmp, "emails")
        shutil.copytree(PROJECT_ROOT / "emails", emails)
        env = {**os.environ, "DATABASE_URL": url, "OUTBOX_DIR": str(Path(tmp, "outbox")),
               "EMAILS_DIR": str(emails), "SECRET_KEY": "bench",
               "WORKER_BATCH_SIZE": str(args.batch)}
        seed(url, args.readers, emails, datetime.now(UTC))
        flask = [sys.executable, "-m", "flask", "--app", "funnel"]
        t0 = time.monotonic()
        subprocess.run([*flask, "broadcast", "send", SLUG], env=env, check=True,
                       capture_output=True)
        scheduled = time.monotonic() - t0
        at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        t1 = time.monotonic()
        procs = [subprocess.Popen([*flask, "worker", "--once", "--now", at], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(args.workers)]
        for p in procs:
            _out, err = p.communicate()
            if p.returncode:
                sys.exit(err.decode()[-2000:])
        sent_time = time.monotonic() - t1
        files = len(list(Path(tmp, "outbox").glob(f"*-{SLUG}-*.eml")))
    print(f"broadcast to {args.readers:,} readers on PostgreSQL with {args.workers} workers "
          f"(batch {args.batch}):")
    print(f"  schedule (CLI, incl. start-up and the check): {scheduled:.1f} s")
    print(f"  send: {sent_time:.1f} s = {files / sent_time:,.0f} emails/s; {files:,} files")
    print(f"  total: {scheduled + sent_time:.1f} s")
    if files != args.readers:
        sys.exit(f"expected {args.readers} files, found {files}")


if __name__ == "__main__":
    main()
