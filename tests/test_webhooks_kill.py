"""A worker killed with SIGKILL in the middle of a webhook request loses nothing:
the next worker sends the same message (same webhook-id) once the lease is over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from funnel.db import make_sessionmaker
from funnel.hooks import capture, manage
from funnel.hooks.secret_box import SecretBox
from funnel.models import WebhookMessage
from funnel.subscribers import actions as subscribers
from tests.webhook_support import Reply, start_receiver


def test_sigkill_mid_delivery_loses_nothing(db_url, tmp_path):
    receiver, server = start_receiver()
    try:
        engine = create_engine(db_url)
        sessions = make_sessionmaker(engine)
        now = datetime.now(UTC)
        capture.install(sessions, lambda: now)
        with sessions() as s:
            endpoint = manage.add_endpoint(s, receiver.url, ["subscriber.created"], now=now,
                                           allow_private=True, box=SecretBox(["kill-test"]))
            subscribers.subscribe(s, email="kill@example.com", first_name=None,
                               timezone="UTC", meta=subscribers.SignupMeta(), now=now)
        receiver.reply(Reply(delay=60))  # the first request hangs until the worker dies
        env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "kill-test",
               "OUTBOX_DIR": str(tmp_path / "outbox"), "WEBHOOKS_ALLOW_PRIVATE": "1",
               "WEBHOOKS_TIMEOUT": "30", "WORKER_POLL_SECONDS": "0.2"}
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "funnel", "worker"],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert receiver.arrived.wait(60), log.read_text()[-3000:]
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        with Session(engine) as s:
            [msg] = s.scalars(select(WebhookMessage)).all()
            assert msg.state == "sending"  # claimed, and its worker is gone
        # The next worker, once the lease is over, sends it again.
        later = datetime.now(UTC) + timedelta(minutes=5)
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "funnel", "worker", "--once",
             "--now", later.isoformat()], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        got = receiver.wait_for(2)
        assert len(got) == 2
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        assert got[1].verify(endpoint.plain_secret)["data"]["email"] == "kill@example.com"
        with Session(engine) as s:
            [msg] = s.scalars(select(WebhookMessage)).all()
            assert (msg.state, msg.attempts) == ("delivered", 2)
        # And nothing more: a further pass has nothing to send.
        again = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "funnel", "worker", "--once",
             "--now", (later + timedelta(minutes=5)).isoformat()],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0
        time.sleep(0.2)
        assert len(receiver.requests) == 2
        engine.dispose()
    finally:
        server.shutdown()
        server.server_close()
