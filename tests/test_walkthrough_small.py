"""Issue 24, item 10: the smaller rough edges of the walk-through, one test each."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from funnel.config import PROJECT_ROOT
from funnel.core import lifecycle
from funnel.models import Subscriber
from tests.admin_support import ADMIN, PASSWORD, a_subscriber, post
from tests.conftest import csrf_token, sign_up_and_confirm
from tests.test_admin_failures import failed_delivery


def _emails_copy(tmp_path: Path) -> Path:
    target = tmp_path / "emails-copy"
    shutil.copytree(PROJECT_ROOT / "emails", target)
    return target


def test_worker_summary_counts_held_emails_and_logs_one_line(app_config, tmp_path, clock,
                                                             caplog):
    from funnel import create_app
    from funnel.db import make_engine

    emails = _emails_copy(tmp_path)
    step = emails / "sequences" / "plan" / "01-stretch.md"
    step.write_text(step.read_text().replace("{{ first_name }}", "{{ first_name | nope }}", 1))
    app = create_app({**app_config, "EMAILS_DIR": str(emails)})
    from sqlalchemy.orm import Session

    engine = make_engine(app.config["DATABASE_URL"], immediate=False)
    with Session(engine) as db:
        a_subscriber(db, clock, "held@example.com")
    engine.dispose()
    with caplog.at_level(logging.DEBUG):
        result = app.test_cli_runner().invoke(args=["worker", "--once"])
    app.extensions["funnel"].engine.dispose()
    assert result.exit_code == 0, result.output
    assert re.search(r"\bheld 1\b", result.output), result.output
    held = [r for r in caplog.records if r.levelno >= logging.ERROR and "held" in r.getMessage()]
    assert held, "the held email is logged"
    assert all(r.exc_info is None for r in held), "no traceback at error level"
    assert "nope" in held[0].getMessage()  # the reason, on its one line


def test_retrying_one_failed_send_says_one_send(app, db, clock, logged_in):
    sub = a_subscriber(db, clock, "one@example.com")
    failed_delivery(db, clock, sub, slug="lateral-hip-stretch")
    post(logged_in, "/admin/failures/lateral-hip-stretch/retry", "/admin/")
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert "1 failed send of" in page
    assert "1 failed sends" not in page


def test_a_wrong_password_keeps_the_address_typed(client, admin):
    resp = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD + "x",
                                             "csrf_token": csrf_token(client, "/admin/login")})
    assert resp.status_code == 401
    html = resp.get_data(as_text=True)
    assert re.search(rf'name="email"[^>]*value="{re.escape(ADMIN)}"', html), html
    # The password is never echoed back.
    assert PASSWORD not in html


def test_the_unsubscribe_page_offers_a_pause_instead(client, outbox):
    sign_up_and_confirm(client, outbox, "tired@example.com")
    msg = outbox.to("tired@example.com")[-1]
    page = client.get(outbox.link(msg, "unsubscribe")).get_data(as_text=True)
    m = re.search(r'<a href="https?://[^/"]+(/preferences/[^"#]+)#pause-heading">Pause instead</a>',
                  page)
    assert m, page
    prefs = client.get(m.group(1))
    assert prefs.status_code == 200
    assert 'id="pause-heading"' in prefs.get_data(as_text=True)


def test_a_mistyped_picture_name_gets_a_did_you_mean(app_config, tmp_path):
    from funnel import create_app

    emails = _emails_copy(tmp_path)
    step = emails / "sequences" / "plan" / "01-stretch.md"
    step.write_text(step.read_text().replace("images/stretch-1-start.svg",
                                             "images/strech-1-start.svg"))
    app = create_app({**app_config, "EMAILS_DIR": str(emails)})
    result = app.test_cli_runner().invoke(args=["emails", "check"])
    app.extensions["funnel"].engine.dispose()
    assert "images/strech-1-start.svg" in result.output
    assert "did you mean 'images/stretch-1-start.svg'?" in result.output


def test_a_future_now_keeps_real_pending_sign_ups(app, db, runner, clock):
    pending = Subscriber(email="waiting@example.com", status=lifecycle.PENDING, timezone="UTC",
                         created_at=clock.now)
    db.add(pending)
    db.commit()
    future = datetime.now(UTC) + timedelta(days=90)  # past PENDING_RETENTION_DAYS (30)
    result = runner.invoke(args=["worker", "--once", "--now", future.isoformat()])
    assert result.exit_code == 0, result.output
    assert "--now is in the future" in result.output
    db.rollback()
    assert db.scalar(select(Subscriber).where(Subscriber.email == "waiting@example.com"))


def test_part_one_does_not_assume_the_reader_saw_the_article(app, db, clock, outbox, run_worker):
    # Imported from another list: they never read the article.
    a_subscriber(db, clock, "imported@example.com")
    run_worker()
    [msg] = outbox.to("imported@example.com")
    assert "Part 1" in msg["Subject"]
    text = outbox.text(msg)
    assert "from the article" not in text
    assert "the stretch" in text.lower()


def test_the_coach_speaks_as_one_person_throughout():
    """The coach signs as "I" ("I read every reply myself"); the emails do not switch
    to a corporate "we" for hopes and promises."""
    files = [*sorted((PROJECT_ROOT / "emails" / "sequences" / "plan").glob("*.md")),
             *sorted((PROJECT_ROOT / "emails" / "broadcasts").glob("*.md"))]
    assert len(files) >= 9
    assert "I read every reply" in (PROJECT_ROOT / "emails" / "coach.yml").read_text()
    for path in files:
        found = re.findall(r"\bWe (?:hope|will send|wish|promise)\b", path.read_text())
        assert not found, (path.name, found)


def test_the_plan_page_links_to_each_week(client, outbox):
    welcome = sign_up_and_confirm(client, outbox, "weeks@example.com")
    path = re.search(r'href="(/plan/[A-Za-z0-9._\-]+)"', welcome.get_data(as_text=True)).group(1)
    html = client.get(path).get_data(as_text=True)
    nav = re.search(r'<nav class="weeks"[^>]*>(.*?)</nav>', html, re.DOTALL)
    assert nav, "no week links"
    targets = re.findall(r'href="#(week-\d+)"', nav.group(1))
    assert targets == [f"week-{n}" for n in range(1, 7)]
    for target in targets:
        assert f'id="{target}"' in html
