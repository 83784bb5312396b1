"""Import and export 100,000 subscribers; prints the times.

    .venv/bin/python bench/bench_import.py [--rows N] [--database URL]

Without --database it uses a fresh SQLite file in a temporary folder. With a
PostgreSQL URL, the database must be empty and migrated (``flask db upgrade``).
The round trip exports the imported list and imports that file into a second,
fresh database (SQLite), then checks both hold the same subscribers.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from funnel import importer
from funnel.db import make_engine, make_sessionmaker, upgrade
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


def run_import(url: str, path: Path) -> tuple[float, importer.ImportReport]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    t = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as fh, sessions() as s:
        _names, rows = importer.read_csv(fh)
        report = importer.import_rows(s, rows, confirmed=True, now=NOW, origin=path.name)
    elapsed = time.perf_counter() - t
    engine.dispose()
    return elapsed, report


def run_export(url: str, path: Path) -> tuple[float, int]:
    engine = make_engine(url)
    t = time.perf_counter()
    with make_sessionmaker(engine)() as s, path.open("w", newline="", encoding="utf-8") as fh:
        count = importer.write_csv(fh, importer.export_rows(s))
    elapsed = time.perf_counter() - t
    engine.dispose()
    return elapsed, count


def contents(url: str) -> set[tuple]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        out = set(s.execute(select(Subscriber.email, Subscriber.first_name, Subscriber.status,
                                   Subscriber.utm_source)).all())
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database", help="an empty, migrated database URL (default: SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "list.csv"
        make_csv(source, args.rows)
        # Baseline in the same run: only reading and parsing the CSV file.
        t = time.perf_counter()
        with source.open(newline="", encoding="utf-8") as fh:
            parsed = sum(1 for _ in csv.DictReader(fh))
        t_base = time.perf_counter() - t
        print(f"baseline {parsed:>7} rows: {t_base:6.2f} s  (csv.DictReader only)")
        first = args.database or sqlite_url(folder, "first.db")
        t_import, report = run_import(first, source)
        print(f"import   {args.rows:>7} rows: {t_import:6.2f} s  ({report.summary()})")
        print(f"  ratio import / baseline: {t_import / t_base:.1f}x, "
              f"{args.rows / t_import:,.0f} rows/s")
        t_rerun, rerun = run_import(first, source)
        print(f"re-run   {args.rows:>7} rows: {t_rerun:6.2f} s  ({rerun.summary()})")
        exported = folder / "export.csv"
        t_export, count = run_export(first, exported)
        print(f"export   {count:>7} rows: {t_export:6.2f} s")
        second = sqlite_url(folder, "second.db")
        t_back, back = run_import(second, exported)
        print(f"re-import{count:>8} rows: {t_back:6.2f} s  ({back.summary()})")
        same = contents(first) == contents(second)
        print(f"round trip: {'same' if same else 'DIFFERENT'} subscribers "
              f"({len(contents(second))} in the second database)")
        if not same or report.added != args.rows or rerun.added:
            sys.exit(1)


if __name__ == "__main__":
    main()
