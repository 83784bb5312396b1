"""Online backup of a SQLite database, taken while the site and worker run.

SQLite's backup API copies a consistent snapshot in one step; in WAL mode that
is a read transaction, so writers carry on meanwhile. The copy is written to a
temporary name beside the target, checked, switched to a single-file journal
(so restoring is one ``cp``) and only then renamed into place.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(RuntimeError):
    """The backup could not be made; the message says why."""


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(parsed.database)


def backup_sqlite(source: Path, target: Path, busy_ms: int = 5000) -> int:
    """Copy ``source`` to ``target`` (which must not exist). Returns its size in bytes."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new name")
    if not target.parent.is_dir():
        raise BackupError(f"no folder {target.parent}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=busy_ms / 1000)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # pages=-1: one consistent snapshot
        dst.execute("PRAGMA journal_mode=DELETE")
        verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"the copy failed its integrity check: {verdict}")
    except sqlite3.Error as exc:
        raise BackupError(f"backup failed: {exc}") from exc
    finally:
        dst.close()
        src.close()
    os.replace(partial, target)
    return target.stat().st_size


def pg_dump_hint(url: str) -> str:
    parsed = make_url(url)
    return (
        "DATABASE_URL is PostgreSQL: back it up with pg_dump, e.g.\n"
        f"  pg_dump --format=custom --file=funnel-$(date +%F).dump "
        f"--host={parsed.host or 'localhost'} --username={parsed.username or 'postgres'} "
        f"{parsed.database}\n(docs/operating.md: Backups and restore)"
    )
