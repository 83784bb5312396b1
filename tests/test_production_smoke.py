"""The shipped production setup, end to end on loopback.

gunicorn with deploy/gunicorn.conf.py and a standalone worker, FUNNEL_ENV=production,
PostgreSQL and Redis, mail to a local fake SendGrid: sign up and confirm through
HTTP, see the plan's first email go out, read /readyz and /metrics, then SIGTERM
both and check that nothing claimed was left half-done.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, func, select

from funnel.models import Delivery, Subscriber
from tests.production_support import (
    METRICS_TOKEN,
    PUBLIC_BASE,
    Browser,
    confirm_link,
    flask,
    link_path,
    mail_to,
    metric,
    postgres_url,
    production_env,
    start_web,
    start_worker,
    wait_ready,
    wait_until,
)
from tests.sendgrid_support import FakeSendGrid, Signer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def first_step_slug() -> str:
    from funnel.config import PROJECT_ROOT
    from funnel.core.sequence import load_sequence

    return load_sequence(str(PROJECT_ROOT / "emails")).steps[0].slug


def test_production_smoke(tmp_path):
    started = time.monotonic()
    database_url = postgres_url("smoke")
    port = free_port()
    with FakeSendGrid() as fake:
        env = production_env(tmp_path, database_url, port, fake.url, Signer().public_key)
        migrated = flask(env, "db", "upgrade")
        assert migrated.returncode == 0, migrated.stderr
        web = start_web(env, tmp_path)
        worker = start_worker(env, tmp_path)
        try:
            browser = Browser(port)
            wait_ready(browser, web)

            resp = browser.sign_up("smoke.runner@example.com", "Smokey")
            assert resp.status == 303, resp.body[:500]
            wait_until(lambda: mail_to(fake, "smoke.runner@example.com"), 30,
                       "the confirmation email")
            text = confirm_link(fake, "smoke.runner@example.com")
            assert f"{PUBLIC_BASE}/confirm/" in text  # FUNNEL_BASE_URL, nothing else
            resp = browser.confirm(link_path(text, "confirm"))
            assert resp.status == 200, resp.body[:500]
            slug = first_step_slug()
            wait_until(lambda: mail_to(fake, "smoke.runner@example.com", slug), 30,
                       "the plan's first email")

            ready = wait_until(lambda: (r := browser.get("/readyz")).status == 200 and r, 30,
                               "/readyz to say ready")
            assert ready.json()["ready"] is True

            assert browser.get("/metrics").status == 404
            scraped = browser.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert scraped.status == 200
            assert metric(scraped.body, "funnel_signups_total") == 1
            assert metric(scraped.body, "funnel_confirmations_total") == 1
            # Counted by the worker process, seen through gunicorn's scrape.
            assert metric(scraped.body, "funnel_sends_total", transport="sendgrid",
                          result="sent") >= 2
            assert metric(scraped.body, "funnel_provider_request_seconds_count",
                          transport="sendgrid") >= 2
            assert metric(scraped.body, "funnel_due_backlog") == 0
        finally:
            web_code = web.stop()
            worker_code = worker.stop()
        assert web_code == 0, web.output()
        assert worker_code == 0, worker.output()

    access = web.output()
    assert "/confirm/[token]" in access, access
    assert "smoke.runner" not in access and "Smokey" not in access
    token = link_path(text, "confirm").split("/")[-1]
    assert token not in access and token not in worker.output()
    assert "Traceback" not in access + worker.output()

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            half_done = conn.scalar(select(func.count()).select_from(Delivery)
                                    .where(Delivery.state.in_(("sending",))))
            leased = conn.scalar(select(func.count()).select_from(Subscriber)
                                 .where(Subscriber.lease_until.is_not(None)))
            sent = conn.scalar(select(func.count()).select_from(Delivery)
                               .where(Delivery.state == "sent"))
    finally:
        engine.dispose()
    assert half_done == 0 and leased == 0
    assert sent >= 1
    print(f"\nproduction smoke test: {time.monotonic() - started:.1f} s")
