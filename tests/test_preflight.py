"""A wrong DATABASE_URL or an unreachable Redis at start-up: one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funnel.config import PROJECT_ROOT
from tests.sendgrid_support import free_port

BIN = Path(sys.executable).parent


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNNEL_", "DATABASE_"))}
    env.update({"FUNNEL_ENV": "production", "SECRET_KEY": "preflight-secret-0123456789-0123456789",
                "FUNNEL_BASE_URL": "https://news.example.com", "MAIL_TRANSPORT": "sendgrid",
                "SENDGRID_API_KEY": "SG.not-real"})
    env.update(overrides)
    return env


def _assert_one_clear_line(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if any(w in ln for w in words)]
    assert len(lines) >= 1, out


@pytest.mark.slow  # starts a worker process
def test_worker_with_unreachable_database(tmp_path):
    url = f"postgresql+psycopg://funnel@127.0.0.1:{free_port()}/nowhere"
    proc = subprocess.run([str(BIN / "flask"), "--app", "funnel", "worker"], cwd=PROJECT_ROOT,
                          env=_env(DATABASE_URL=url), capture_output=True, text=True, timeout=60, check=False)
    _assert_one_clear_line(proc, "cannot connect to the database")
    assert "127.0.0.1" in proc.stderr and "nowhere" in proc.stderr


def test_worker_with_nonsense_database_url():
    proc = subprocess.run([str(BIN / "flask"), "--app", "funnel", "worker"], cwd=PROJECT_ROOT,
                          env=_env(DATABASE_URL="not a url at all"), capture_output=True,
                          text=True, timeout=60)
    _assert_one_clear_line(proc, "DATABASE_URL")


@pytest.mark.slow  # starts gunicorn
def test_gunicorn_with_unreachable_database_or_redis(tmp_path):
    good_db = f"sqlite:///{tmp_path / 'f.db'}"
    cases = [
        ({"DATABASE_URL": f"postgresql+psycopg://funnel@127.0.0.1:{free_port()}/nowhere"},
         "cannot connect to the database"),
        ({"DATABASE_URL": good_db, "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0"},
         "cannot reach Redis"),
    ]
    for overrides, words in cases:
        started = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=90,
            env=_env(GUNICORN_BIND=f"127.0.0.1:{free_port()}", **overrides),
        )
        _assert_one_clear_line(proc, "funnel: cannot start", words)
        assert words in proc.stdout + proc.stderr
        assert time.monotonic() - started < 30


@pytest.mark.parametrize("missing", ["FUNNEL_BASE_URL"])
def test_production_without_base_url_is_one_line(missing, tmp_path):
    env = _env(DATABASE_URL=f"sqlite:///{tmp_path / 'f.db'}")
    env.pop(missing)
    proc = subprocess.run([str(BIN / "flask"), "--app", "funnel", "worker", "--once"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    _assert_one_clear_line(proc, missing)
