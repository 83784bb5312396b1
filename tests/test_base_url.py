"""One base URL: the standalone worker writes links from FUNNEL_BASE_URL, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from funnel.config import PROJECT_ROOT
from tests.conftest import START, TEST_SECRET, sign_up_and_confirm

# A standalone worker process: not in `make test-fast`, always in `make test`.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def test_standalone_worker_writes_links_with_the_configured_base(client, outbox, db_url):
    sign_up_and_confirm(client, outbox, "links@example.com")
    before = len(outbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNNEL_", "DATABASE_"))}
    env.update({"DATABASE_URL": db_url, "SECRET_KEY": TEST_SECRET,
                "OUTBOX_DIR": str(outbox.directory),
                "FUNNEL_BASE_URL": "https://news.example.test:8443",
                # Where some dev server listens must not leak into the links.
                "HOST": "127.0.0.1", "PORT": "5001"})
    proc = subprocess.run(
        [str(BIN / "flask"), "--app", "funnel", "worker", "--once", "--now", START.isoformat()],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "sent 1" in proc.stdout
    new = outbox.messages()[before:]
    assert len(new) == 1
    body = outbox.text(new[0])
    assert "https://news.example.test:8443/unsubscribe/" in body
    assert "https://news.example.test:8443/preferences/" in body
    assert "localhost" not in body and ":5001" not in body and ":5000" not in body
