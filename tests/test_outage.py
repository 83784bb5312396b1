"""The database goes away for 10 s under the production setup (PostgreSQL).

Pages answer 503 with the site's error page at once, /readyz says why, and the
worker backs off and resumes: the step that fell due during the outage goes out
exactly once afterwards. Prints how long the outage delayed it.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from funnel.models import Delivery, Subscriber
from tests.production_support import (
    METRICS_TOKEN,
    Browser,
    confirm_link,
    flask,
    link_path,
    mail_to,
    postgres_url,
    production_env,
    start_web,
    start_worker,
    wait_ready,
    wait_until,
)
from tests.sendgrid_support import FakeSendGrid, Signer, free_port
from tests.test_production_smoke import first_step_slug

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
OUTAGE = 10.0


def _set_allowed(admin, name: str, allowed: bool) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})


def test_ten_second_database_outage(tmp_path):
    database_url = postgres_url("outage")
    name = make_url(database_url).database
    admin = create_engine(make_url(database_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    port = free_port()
    slug = first_step_slug()
    with FakeSendGrid() as fake:
        env = production_env(tmp_path, database_url, port, fake.url, Signer().public_key,
                             WORKER_POLL_SECONDS="3")
        assert flask(env, "db", "upgrade").returncode == 0
        web, worker = start_web(env, tmp_path), start_worker(env, tmp_path)
        try:
            browser = Browser(port)
            wait_ready(browser, web)
            assert browser.sign_up("outage@example.com").status == 303
            wait_until(lambda: mail_to(fake, "outage@example.com"), 30, "the confirmation")
            confirm = link_path(confirm_link(fake, "outage@example.com"), "confirm")
            assert browser.confirm(confirm).status == 200
            # Step 1 is now due; the database goes before the worker's next poll.
            _set_allowed(admin, name, False)
            down_at = time.monotonic()
            # The landing page is served from memory; a sign-up must write.
            page = browser.sign_up("during@example.com")
            assert page.status == 503 and "Back in a minute" in page.body
            assert page.seconds < 6
            ready = browser.get("/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert ready.status == 503
            assert "database" in ready.json()["reasons"][0]
            assert browser.get("/healthz").status == 200
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
            _set_allowed(admin, name, True)
            up_at = time.monotonic()
            wait_until(lambda: mail_to(fake, "outage@example.com", slug), 60,
                       "step 1 after the outage")
            sent_at = time.monotonic()
            assert browser.get("/free-plan").status == 200
            wait_until(lambda: browser.get("/readyz").status == 200, 30, "ready again")
        finally:
            _set_allowed(admin, name, True)
            web.stop()
            worker.stop()
    assert len(mail_to(fake, "outage@example.com", slug)) == 1  # not lost, not doubled
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Delivery)
                           .where(Delivery.state == "sending")) == 0
        assert conn.scalar(select(func.count()).select_from(Subscriber)
                           .where(Subscriber.lease_until.is_not(None))) == 0
    engine.dispose()
    admin.dispose()
    assert "Traceback" not in web.output()
    print(f"\n{OUTAGE:.0f} s outage: step 1 went out {sent_at - up_at:.1f} s after the database "
          f"came back ({sent_at - down_at:.1f} s after it went away)")
