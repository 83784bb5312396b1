"""A worker told to stop (SIGTERM) stops within WORKER_STOP_GRACE even while a
webhook endpoint hangs, and leaves the message for the next worker (issue 27)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from funnel.db import make_sessionmaker
from funnel.hooks import capture, manage
from funnel.hooks.secret_box import SecretBox
from funnel.models import WebhookMessage
from funnel.subscribers import actions as subscribers
from tests.webhook_support import Reply, start_receiver

GRACE = 5.0


def test_sigterm_during_a_hanging_webhook_stops_in_time_and_loses_nothing(db_url, tmp_path):
    receiver, server = start_receiver()
    try:
        engine = create_engine(db_url)
        sessions = make_sessionmaker(engine)
        now = datetime.now(UTC)
        capture.install(sessions, lambda: now)
        with sessions() as s:
            endpoint = manage.add_endpoint(s, receiver.url, ["subscriber.created"], now=now,
                                           allow_private=True, box=SecretBox(["stop-test"]))
            subscribers.subscribe(s, email="stop@example.com", first_name=None,
                                  timezone="UTC", meta=subscribers.SignupMeta(), now=now)
        receiver.reply(Reply(delay=60))  # the endpoint hangs for a minute
        env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "stop-test",
               "OUTBOX_DIR": str(tmp_path / "outbox"), "WEBHOOKS_ALLOW_PRIVATE": "1",
               "WEBHOOKS_TIMEOUT": "60", "WORKER_POLL_SECONDS": "0.2",
               "WORKER_STOP_GRACE": str(GRACE)}
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "funnel", "worker"],
                                      env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert receiver.arrived.wait(60), log.read_text()[-3000:]
            time.sleep(0.5)  # well inside the hanging request
            asked = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(GRACE + 5)
            took = time.monotonic() - asked
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
        output = log.read_text()
        assert took <= GRACE, f"took {took:.1f} s:\n{output[-2000:]}"
        assert code == 0 and "worker stopped cleanly" in output, output[-2000:]
        with Session(engine) as s:
            [msg] = s.scalars(select(WebhookMessage)).all()
            # Back in the queue at once, no attempt counted: not waiting for a lease.
            assert (msg.state, msg.attempts, msg.lease_until) == ("pending", 0, None)

        receiver.default = Reply()
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "funnel", "worker",
                               "--once"], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        got = receiver.wait_for(2)
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        assert got[1].verify(endpoint.plain_secret)["data"]["email"] == "stop@example.com"
        with Session(engine) as s:
            assert s.scalar(select(WebhookMessage.state)) == "delivered"
        engine.dispose()
    finally:
        server.shutdown()
        server.server_close()
