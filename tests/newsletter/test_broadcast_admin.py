"""The newsletter's admin pages: the audience count before confirming, scheduling,
progress, cancel, per-broadcast figures with a CSV, and previews on the email pages."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from sqlalchemy import select

from funnel.models import Broadcast, Delivery, DeliveryEvent
from tests.conftest import csrf_token
from tests.newsletter_support import add, run_worker, write_broadcast


@pytest.fixture
def readers(db, clock):
    for i in range(3):
        add(db, f"r{i}@example.com", now=clock.now)
    add(db, "pending@example.com", status="pending", now=clock.now)


def text(resp) -> str:
    """What a reader sees: the page without its tags."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True))))


def test_pages_need_the_login(client):
    for path in ("/admin/broadcasts/", "/admin/broadcasts/first-issue",
                 "/admin/broadcasts/first-issue/figures.csv"):
        assert client.get(path).status_code == 302
    assert client.post("/admin/broadcasts/first-issue/schedule").status_code in (302, 400)


def test_schedule_shows_the_count_before_confirming(logged_in, db, readers, runner, outbox):
    client = logged_in
    page = client.get("/admin/broadcasts/first-issue")
    assert page.status_code == 200
    assert re.search(r'id="would-get">3<', page.get_data(as_text=True))
    token = csrf_token(client, "/admin/broadcasts/first-issue")
    step1 = client.post("/admin/broadcasts/first-issue/schedule",
                        data={"csrf_token": token, "at": "", "local": "", "where": ""})
    assert step1.status_code == 200
    assert "3 subscribers will get it" in text(step1)
    assert "Not confirmed yet 1" in text(step1)
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None  # nothing until confirmed
    confirm = client.post("/admin/broadcasts/first-issue/schedule",
                          data={"csrf_token": token, "at": "", "local": "", "where": "",
                                "confirm": "yes"})
    assert confirm.status_code == 303
    assert len(outbox) == 0  # the web request sends nothing: the worker does
    page = client.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert "Scheduled &#39;first-issue&#39; for 3 subscribers" in page
    assert '<progress id="progress" max="3" value="0"' in page
    run_worker(runner)
    page = client.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert 'value="3"' in page and 'id="status">sent<' in page


def test_bad_schedule_input_is_refused(logged_in, db, readers):
    client = logged_in
    token = csrf_token(client, "/admin/broadcasts/first-issue")
    for data, message in (({"at": "2020-01-01T09:00"}, "is in the past"),
                          ({"local": "25:00"}, "HH:MM"),
                          ({"where": "plan=sometimes"}, "plan must be")):
        resp = client.post("/admin/broadcasts/first-issue/schedule",
                           data={"csrf_token": token, "confirm": "yes", **data},
                           follow_redirects=True)
        assert message in text(resp)
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None
    assert client.post("/admin/broadcasts/nope/schedule",
                       data={"csrf_token": token}).status_code == 404


def test_figures_and_csv(logged_in, db, readers, runner, clock):
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    run_worker(runner)
    db.rollback()
    deliveries = db.scalars(select(Delivery).where(Delivery.kind == "broadcast")).all()
    for d, kinds in zip(deliveries, (["delivered", "open", "click"], ["delivered", "open"],
                                     ["bounce"]), strict=True):
        for k in kinds:
            db.add(DeliveryEvent(delivery_id=d.id, kind=k, step_slug=d.step_slug, at=clock.now))
    db.commit()
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    for key, n in (("delivered", 2), ("opened", 2), ("clicked", 1), ("bounced", 1),
                   ("complained", 0), ("unsubscribed", 0)):
        assert f'id="fig-{key}">{n}<' in page, key
    resp = logged_in.get("/admin/broadcasts/first-issue/figures.csv")
    assert resp.mimetype == "text/csv"
    [row] = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert (row["sent"], row["delivered"], row["opened"], row["clicked"], row["bounced"],
            row["spam"]) == ("3", "2", "2", "1", "1", "0")
    dash = logged_in.get("/admin/").get_data(as_text=True)
    assert "first-issue" in dash  # the dashboard's per-email table has it too


def test_cancel_from_the_page(logged_in, db, readers, runner, clock):
    assert runner.invoke(args=["broadcast", "send", "first-issue", "--at",
                               "2026-12-05T09:00"]).exit_code == 0
    token = csrf_token(logged_in, "/admin/broadcasts/first-issue")
    resp = logged_in.post("/admin/broadcasts/first-issue/cancel", data={"csrf_token": token},
                          follow_redirects=True)
    assert "Cancelled 'first-issue': 0 went out, 3 will not get it." in text(resp)


def test_email_pages_preview_broadcasts(logged_in, emails_dir):
    index = logged_in.get("/admin/emails/").get_data(as_text=True)
    assert "first-issue" in index
    page = logged_in.get("/admin/emails/first-issue")
    assert page.status_code == 200
    assert "375" in page.get_data(as_text=True)
    assert "Hi Alex," in logged_in.get("/admin/emails/first-issue/text").get_data(as_text=True)
    html = logged_in.get("/admin/emails/first-issue/html").get_data(as_text=True)
    assert "why the hip stretch turns away" in html
    write_broadcast(emails_dir, "typo", body="Hi {{ frist_name }}\n")
    index = logged_in.get("/admin/emails/").get_data(as_text=True)
    assert "frist_name" in index
