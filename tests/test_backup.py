"""`flask --app funnel db backup PATH`: an online SQLite backup, and the documented restore."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from funnel import create_app
from funnel.models import Subscriber
from tests.conftest import sign_up


def _count(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["funnel"].sessions() as s:
        return s.scalar(select(func.count()).select_from(Subscriber))


def test_backup_while_running_then_restore(app, client, runner, db_url, tmp_path, app_config):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite backup; PostgreSQL uses pg_dump (see the next test)")
    for n in range(3):
        assert sign_up(client, f"runner{n}@example.com").status_code == 303
    live = Path(db_url.removeprefix("sqlite:///"))
    # A writer is in the middle of a transaction: the backup neither waits for it
    # nor contains its uncommitted row.
    writer = sqlite3.connect(live, isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO app_state (key, value) VALUES ('half-done', 'x')")
    target = tmp_path / "backups" / "funnel-backup.db"
    target.parent.mkdir()
    result = runner.invoke(args=["db", "backup", str(target)])
    writer.execute("ROLLBACK")
    writer.close()
    assert result.exit_code == 0, result.output
    assert "backed up" in result.output and str(target) in result.output
    assert not list(target.parent.glob("*.partial"))

    # The documented restore: stop everything, copy the file into place, remove
    # the old WAL files, start again.
    restored = tmp_path / "restored" / "funnel.db"
    restored.parent.mkdir()
    shutil.copy(target, restored)
    again = create_app({**app_config, "DATABASE_URL": f"sqlite:///{restored}"})
    try:
        assert _count(again) == 3
        with again.extensions["funnel"].sessions() as s:
            emails = set(s.scalars(select(Subscriber.email)))
        assert emails == {f"runner{n}@example.com" for n in range(3)}
        check = sqlite3.connect(restored)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert check.execute("SELECT count(*) FROM app_state WHERE key='half-done'").fetchone()[0] == 0
        check.close()
    finally:
        again.extensions["funnel"].engine.dispose()


def test_backup_refuses_to_overwrite(runner, db_url, tmp_path):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    target = tmp_path / "exists.db"
    target.write_bytes(b"precious")
    result = runner.invoke(args=["db", "backup", str(target)])
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert target.read_bytes() == b"precious"


def test_backup_of_postgres_points_to_pg_dump(runner, db_url, tmp_path):
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only")
    result = runner.invoke(args=["db", "backup", str(tmp_path / "x.db")])
    assert result.exit_code != 0
    assert "pg_dump" in result.output
    assert not (tmp_path / "x.db").exists()
