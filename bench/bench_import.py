"""Import and export 100,000 subscribers; prints rates against CSV parsing alone.

    .venv/bin/python bench/bench_import.py [--rows N] [--database URL] [--no-round-trip]

Without --database it uses a fresh SQLite file in a temporary folder. With a
PostgreSQL URL, the database must be empty and migrated (``flask db upgrade``).
The round trip exports the imported list and imports that file into a second,
fresh database (SQLite), then checks both hold the same subscribers.

Each figure is printed as ``name: value unit (ratio x baseline)``; the baseline is
reading and parsing the same file with ``csv.DictReader``, measured in the same run.
Rates are given per wall-clock second and per CPU second of this process (the
database server's own CPU is not in the latter); the load average is printed too,
since the machine may be shared. ``max RSS`` is this process's peak so far: run it
under ``/usr/bin/time -f %M`` for the whole run's.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, text

from funnel.db import make_engine, make_sessionmaker, upgrade
from funnel.importing import csv_files, export, importer
from funnel.models import Subscriber

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "first_name", "status", "source"])
        for i in range(rows):
            w.writerow([f"Runner.{i}@Example{i % 97}.com", f"Runner {i}",
                        "unsubscribed" if i % 50 == 0 else "", "old-list"])


def sqlite_url(folder: Path, name: str) -> str:
    url = f"sqlite:///{folder / name}"
    upgrade(url)
    return url


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ServerCPU:
    """CPU seconds of the PostgreSQL backend serving the import, when the server runs on
    this machine (read from /proc): with the importer's own, what the import costs
    whatever the load."""

    def __init__(self, session) -> None:
        self.stat = None
        if session.get_bind().dialect.name == "postgresql":
            pid = session.scalar(text("SELECT pg_backend_pid()"))
            session.rollback()
            path = Path(f"/proc/{pid}/stat")
            self.stat = path if path.exists() else None
        self.start = self.seconds()

    def seconds(self) -> float:
        if self.stat is None:
            return 0.0
        fields = self.stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def used(self) -> float | None:
        return self.seconds() - self.start if self.stat is not None else None


def run_import(url: str, path: Path, rss_at: list[tuple[int, float]] | None = None
               ) -> tuple[float, float, float | None, importer.ImportReport]:
    """(wall seconds, CPU seconds of this process and of the database backend when
    known, report); ``rss_at`` collects
    (rows done, peak RSS in MB) as the import goes, at each tenth of the file."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with path.open(encoding="utf-8") as fh:
        total = max(sum(1 for _ in fh) - 1, 1)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if rss_at is not None and done * 10 // total > before * 10 // total:
            rss_at.append((done, rss_mb()))

    t, c = time.perf_counter(), time.process_time()
    with path.open(encoding="utf-8-sig", newline="") as fh, sessions() as s:
        server = ServerCPU(s)
        _names, rows = csv_files.read_csv(fh)
        report = importer.import_rows(s, rows, confirmed=True, now=NOW, origin=path.name,
                                      consent_source="bench list", progress=progress)
        server_cpu = server.used()
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    engine.dispose()
    return elapsed, cpu, server_cpu, report


def run_export(url: str, path: Path) -> tuple[float, int]:
    engine = make_engine(url)
    t = time.perf_counter()
    with make_sessionmaker(engine)() as s, path.open("w", newline="", encoding="utf-8") as fh:
        count = csv_files.write_csv(fh, export.export_rows(s))
    elapsed = time.perf_counter() - t
    engine.dispose()
    return elapsed, count


def contents(url: str) -> Iterator[tuple]:
    """Every subscriber's imported fields, by address, streamed (memory stays flat)."""
    engine = make_engine(url, immediate=False)
    with engine.connect() as conn:
        yield from conn.execution_options(yield_per=10_000).execute(
            select(Subscriber.email, Subscriber.first_name, Subscriber.status,
                   Subscriber.utm_source).order_by(Subscriber.email))
    engine.dispose()


def same_contents(first: str, second: str) -> tuple[bool, int]:
    """Whether both databases hold the same subscribers, and how many the second has."""
    count = 0
    for a, b in zip_longest(contents(first), contents(second)):
        if a is None or b is None or tuple(a) != tuple(b):
            return False, count
        count += 1
    return True, count


def figure(name: str, value: float, unit: str, baseline: float) -> None:
    print(f"{name}: {value:,.0f} {unit} ({value / baseline:.3f}x baseline)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database", help="an empty, migrated database URL (default: SQLite)")
    ap.add_argument("--no-round-trip", action="store_true",
                    help="only the import and its re-run (no export and re-import)")
    args = ap.parse_args()
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "list.csv"
        make_csv(source, args.rows)
        # Baseline in the same run: only reading and parsing the CSV file.
        t = time.perf_counter()
        with source.open(newline="", encoding="utf-8") as fh:
            parsed = sum(1 for _ in csv.DictReader(fh))
        base = parsed / (time.perf_counter() - t)
        print(f"baseline, csv.DictReader alone: {base:,.0f} rows/s ({parsed} rows)")
        first = args.database or sqlite_url(folder, "first.db")
        kind = "PostgreSQL" if first.startswith("postgresql") else "SQLite"
        rss_before = rss_mb()
        rss_at: list[tuple[int, float]] = []
        t_import, cpu, server_cpu, report = run_import(first, source, rss_at)
        print(f"import {args.rows} rows into {kind}: {t_import:.1f} s wall, {cpu:.1f} s CPU "
              f"here ({report.summary()})")
        figure("import", args.rows / t_import, "rows/s", base)
        figure("import per CPU second of the importer", args.rows / cpu, "rows/CPU s", base)
        if server_cpu is not None:
            print(f"database backend: {server_cpu:.1f} s CPU")
            figure("import per CPU second, importer and database backend",
                   args.rows / (cpu + server_cpu), "rows/CPU s", base)
        print(f"max RSS: {rss_before:.0f} MB before the import; after "
              + ", ".join(f"{n:,} rows {mb:.0f} MB" for n, mb in rss_at)
              + f"; load average now {os.getloadavg()[0]:.1f}")
        t_rerun, cpu, server_cpu, rerun = run_import(first, source)
        print(f"re-run: {t_rerun:.1f} s wall, {cpu:.1f} s CPU here"
              + (f", {server_cpu:.1f} s database backend" if server_cpu is not None else "")
              + f" ({rerun.summary()})")
        figure("re-run", args.rows / t_rerun, "rows/s", base)
        ok = report.added == args.rows and not rerun.added
        if not args.no_round_trip:
            exported = folder / "export.csv"
            t_export, count = run_export(first, exported)
            figure("export", count / t_export, "rows/s", base)
            second = sqlite_url(folder, "second.db")
            t_back, cpu, _server, back = run_import(second, exported)
            print(f"re-import into SQLite: {t_back:.1f} s wall, {cpu:.1f} s CPU "
                  f"({back.summary()})")
            figure("re-import into SQLite", count / t_back, "rows/s", base)
            same, n = same_contents(first, second)
            print(f"round trip: {'same' if same else 'DIFFERENT'} subscribers ({n} compared)")
            ok = ok and same
        print(f"max RSS of the whole run so far: {rss_mb():.0f} MB")
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
