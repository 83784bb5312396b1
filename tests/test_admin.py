"""The marketer's dashboard over HTTP: login, CSRF, the pages and the actions."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from funnel.accounts.passwords import hash_password
from funnel.models import AdminUser, ConsentRecord, Subscriber, Suppression, Visit
from funnel.reporting import periods
from funnel.runtime import make_worker
from tests.conftest import csrf_token, sign_up, sign_up_and_confirm
from tests.test_stats import known  # noqa: F401  (the fixture: a month with known numbers)

ADMIN = "coach@example.com"
PASSWORD = "correct horse battery"


@pytest.fixture
def admin(db, clock):
    db.add(AdminUser(email=ADMIN, password_hash=hash_password(PASSWORD), created_at=clock.now))
    db.commit()
    return ADMIN


def log_in(client, email: str = ADMIN, password: str = PASSWORD, next_path: str = ""):
    token = csrf_token(client, "/admin/login")
    url = "/admin/login" + (f"?next={next_path}" if next_path else "")
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def logged_in(client, admin):
    resp = log_in(client)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/")
    return client


def page_token(client, path: str) -> str:
    return csrf_token(client, path)


def reload(db, sub: Subscriber) -> Subscriber | None:
    """The subscriber as the database has it now, after the app's commits."""
    db.rollback()
    db.expunge_all()
    return db.get(Subscriber, sub.id)


# -- access ------------------------------------------------------------------------

def test_every_admin_page_and_action_needs_a_login(client, db, clock, make_subscriber):
    sub = make_subscriber()
    for path in ("/admin/", "/admin/stats.csv", "/admin/subscribers", "/admin/subscribers.csv",
                 f"/admin/subscribers/{sub.public_id}", "/admin/suppression",
                 "/admin/?days=7"):
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert resp.headers["Location"].startswith("/admin/login?next="), path
    token = page_token(client, "/admin/login")  # a valid token, but nobody logged in
    for path in (f"/admin/subscribers/{sub.public_id}/unsubscribe",
                 f"/admin/subscribers/{sub.public_id}/erase", "/admin/suppression"):
        resp = client.post(path, data={"csrf_token": token, "confirm": "yes",
                                       "email": sub.email, "action": "add"})
        assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"], path
    assert reload(db, sub).status == "confirmed"
    assert db.scalar(select(Suppression)) is None


def test_login_goes_back_to_the_page_asked_for(client, admin):
    resp = client.get("/admin/subscribers?q=ann")
    assert resp.headers["Location"] == "/admin/login?next=/admin/subscribers?q%3Dann"
    resp = log_in(client, next_path="/admin/subscribers%3Fq%3Dann")
    assert resp.headers["Location"] == "/admin/subscribers?q=ann"
    assert client.get("/admin/subscribers?q=ann").status_code == 200


def test_wrong_password_is_refused(client, admin):
    resp = log_in(client, password="wrong password!")
    assert resp.status_code == 401
    assert "match an account" in resp.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_attempts_are_rate_limited(client, app, admin):
    app.config["RATELIMIT_LOGIN"] = "3 per minute"
    statuses = [log_in(client, password="guess number x").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    # Even the right password waits: guessing cannot continue at speed.
    assert log_in(client).status_code == 429
    assert client.get("/admin/").status_code == 302


def test_session_times_out_after_8_idle_hours(logged_in, clock):
    assert logged_in.get("/admin/").status_code == 200
    clock.advance(hours=7)
    assert logged_in.get("/admin/subscribers").status_code == 200  # activity keeps it alive
    clock.advance(hours=4)  # 11 hours in: within the 12-hour absolute lifetime
    assert logged_in.get("/admin/").status_code == 200
    clock.advance(hours=8, minutes=1)
    resp = logged_in.get("/admin/")
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]


def test_admin_posts_need_a_csrf_token(logged_in, db, clock, make_subscriber):
    sub = make_subscriber()
    for path, data in ((f"/admin/subscribers/{sub.public_id}/unsubscribe", {}),
                       (f"/admin/subscribers/{sub.public_id}/erase", {"confirm": "yes"}),
                       ("/admin/suppression", {"email": sub.email, "action": "add"}),
                       ("/admin/logout", {})):
        resp = logged_in.post(path, data=data)
        assert resp.status_code == 400, path
        assert "expired" in resp.get_data(as_text=True)
    assert reload(db, sub).status == "confirmed"
    assert db.scalar(select(Suppression)) is None
    assert logged_in.get("/admin/").status_code == 200  # still logged in


def test_logout(logged_in):
    token = page_token(logged_in, "/admin/")
    resp = logged_in.post("/admin/logout", data={"csrf_token": token})
    assert resp.status_code == 302
    assert logged_in.get("/admin/").status_code == 302


def test_pages_are_not_cached(logged_in):
    resp = logged_in.get("/admin/subscribers")
    assert resp.headers["Cache-Control"] == "no-store"


# -- the dashboard ---------------------------------------------------------------------

def metric(html: str, name: str) -> str:
    m = re.search(rf'data-metric="{name}">([\d,]+)', html)
    assert m, name
    return m.group(1)


def test_dashboard_shows_a_known_month(logged_in, known):  # noqa: F811
    html = logged_in.get("/admin/?from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert "01 Nov 2026 to 30 Nov 2026" in html
    assert [metric(html, m) for m in ("article_visits", "landing_visits", "signups",
                                      "confirmations", "sent", "unsubscribes")] == [
        "15", "6", "3", "3", "5", "1"]
    assert "50.0% of landing visits" in html and "100.0% of sign-ups" in html
    # Charts are inline SVG images with a text alternative; nothing is loaded from elsewhere.
    for chart in ("chart-daily", "chart-funnel-article", "chart-funnel-direct", "chart-steps"):
        assert f'id="{chart}"' in html and f'aria-labelledby="{chart}-title {chart}-desc"' in html
    assert "3 sign-ups and 3 confirmations over 30 days" in html
    assert "<script" not in html and "src=" not in html
    # Both paths together carry no conversion: the landing page is not a subset of the article.
    assert '<tr data-stage="signups"><th scope="row">Sign-ups</th><td class="num">3</td></tr>' \
        in html
    # Nobody in the known month followed the article's link: all of it is the direct funnel.
    direct = html[html.index('id="funnel-direct"'):]
    assert re.search(r'data-stage="signups"><th scope="row">Signed up</th><td class="num">3</td>'
                     r'<td class="num">50.0%</td>', direct)
    steps = re.search(r'<tr data-step="lateral-hip-stretch">.*?</tr>', html, re.DOTALL)
    assert steps  # the real sequence's steps are listed even with nothing sent
    assert ">facebook<" in html and ">google.com<" in html


def test_dashboard_defaults_to_the_last_30_days_and_survives_bad_dates(logged_in, clock):
    html = logged_in.get("/admin/").get_data(as_text=True)
    assert "02 Nov 2026 to 01 Dec 2026" in html  # the clock says 1 Dec 2026
    html = logged_in.get("/admin/?from=yesterday").get_data(as_text=True)
    assert "written like 2026-12-31" in html and "02 Nov 2026 to 01 Dec 2026" in html
    html = logged_in.get("/admin/?days=7").get_data(as_text=True)
    assert "25 Nov 2026 to 01 Dec 2026" in html


def test_visits_counted_by_the_site_show_up_without_personal_data(logged_in, client, db):
    headers = {"Referer": "https://www.strava.com/clubs/42", "User-Agent": "Runner/1.0"}
    client.get("/?utm_source=strava", headers=headers, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    client.get("/free-plan?utm_source=strava")
    html = logged_in.get("/admin/").get_data(as_text=True)
    assert (metric(html, "article_visits"), metric(html, "landing_visits")) == ("1", "1")
    assert ">strava<" in html
    db.rollback()
    stored = [tuple(r) for r in db.execute(select(Visit.__table__))]
    assert "203.0.113.9" not in repr(stored) and "Runner/1.0" not in repr(stored)
    assert set(Visit.__table__.columns.keys()) == {
        "id", "page", "at", "referrer_host", "utm_source", "utm_medium", "utm_campaign", "via"}


def test_numbers_as_csv(logged_in, known):  # noqa: F811
    period = "from=2026-11-01&to=2026-11-30"
    resp = logged_in.get(f"/admin/stats.csv?report=funnel&{period}")
    assert resp.mimetype == "text/csv"
    assert "funnel-funnel-2026-11-01-to-2026-11-30.csv" in resp.headers["Content-Disposition"]
    rows = {r["stage"]: r for r in csv.DictReader(io.StringIO(resp.get_data(as_text=True)))}
    assert rows["signups"]["count"] == "3" and rows["signups"]["conversion_from_previous"] == "0.5000"
    assert rows["opened"]["count"] == "3"
    daily = list(csv.DictReader(io.StringIO(
        logged_in.get(f"/admin/stats.csv?report=daily&{period}").get_data(as_text=True))))
    assert len(daily) == 30 and daily[4]["day"] == "2026-11-05" and daily[4]["signups"] == "2"
    steps = {r["step"]: r for r in csv.DictReader(io.StringIO(
        logged_in.get(f"/admin/stats.csv?report=steps&{period}").get_data(as_text=True)))}
    assert steps["step-1"]["sent"] == "3" and steps["step-1"]["opened_rate"] == "0.6667"
    sources = {r["source"]: r for r in csv.DictReader(io.StringIO(
        logged_in.get(f"/admin/stats.csv?report=sources&{period}").get_data(as_text=True)))}
    assert sources["facebook"]["signups"] == "1"
    assert logged_in.get("/admin/stats.csv?report=nope").status_code == 404


# -- the list ------------------------------------------------------------------------

def test_search_by_address_and_status(logged_in, db, clock, make_subscriber):
    for email, status in (("ann@example.com", "confirmed"), ("anna@example.org", "pending"),
                          ("bob@example.com", "confirmed"), ("100%_sure@example.com", "pending")):
        make_subscriber(email, status)
    def found(query: str) -> list[str]:
        html = logged_in.get(f"/admin/subscribers?{query}").get_data(as_text=True)
        return sorted(re.findall(r'<td><a href="/admin/subscribers/[^"]+">([^<]+)</a>', html))
    assert found("q=ANN") == ["ann@example.com", "anna@example.org"]
    assert found("q=ann&status=confirmed") == ["ann@example.com"]
    assert found("status=pending") == ["100%_sure@example.com", "anna@example.org"]
    assert found("q=%25_") == ["100%_sure@example.com"]  # % and _ are literal
    assert found("q=nobody") == []
    assert found("") == ["100%_sure@example.com", "ann@example.com", "anna@example.org",
                         "bob@example.com"]


def test_the_list_is_paged(logged_in, db, clock):
    for i in range(60):
        db.add(Subscriber(email=f"p{i:02d}@example.com", status="pending", timezone="UTC",
                          created_at=clock.now))
    db.commit()
    first = logged_in.get("/admin/subscribers").get_data(as_text=True)
    assert "60 subscribers" in first and 'rel="prev"' not in first
    shown = re.findall(r'<td><a href="/admin/subscribers/[^"]+">([^<]+)</a>', first)
    assert len(shown) == 50
    older = html.unescape(re.search(r'href="([^"]+)" rel="next"', first).group(1))
    second = logged_in.get(older).get_data(as_text=True)
    rest = re.findall(r'<td><a href="/admin/subscribers/[^"]+">([^<]+)</a>', second)
    # All 60 exactly once, though they signed up at the same moment (ties go by id).
    assert len(rest) == 10 and sorted(shown + rest) == [f"p{i:02d}@example.com" for i in range(60)]
    assert 'rel="next"' not in second
    newer = html.unescape(re.search(r'href="([^"]+)" rel="prev"', second).group(1))
    back = logged_in.get(newer).get_data(as_text=True)
    assert re.findall(r'<td><a href="/admin/subscribers/[^"]+">([^<]+)</a>', back) == shown
    searched = logged_in.get("/admin/subscribers?q=%40example.com").get_data(as_text=True)
    assert "60 subscribers" in searched
    assert len(re.findall(r'<td><a href="/admin/subscribers/[^"]+">', searched)) == 50
    older = html.unescape(re.search(r'href="([^"]+)" rel="next"', searched).group(1))
    rest_searched = logged_in.get(older).get_data(as_text=True)
    assert "60 subscribers" in rest_searched
    assert len(re.findall(r'<td><a href="/admin/subscribers/[^"]+">', rest_searched)) == 10
    oldest = logged_in.get("/admin/subscribers?last=1").get_data(as_text=True)
    assert re.findall(r'<td><a href="/admin/subscribers/[^"]+">([^<]+)</a>', oldest)[-1] == (
        rest[-1])


def test_one_subscribers_history(logged_in, client, outbox, app, clock, db):
    sign_up_and_confirm(client, outbox, "hist@example.com", "Hana", utm_source="podcast")
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "hist@example.com"))
    html = logged_in.get(f"/admin/subscribers/{sub.public_id}").get_data(as_text=True)
    assert "<h1>hist@example.com</h1>" in html
    assert ">signup<" in html and ">confirm<" in html and "Email me the Run Stronger" in html
    assert "Part 1: the lateral hip and low back stretch" in html and ">sent" in html
    assert "podcast" in html
    assert logged_in.get("/admin/subscribers/nope").status_code == 404


def test_unsubscribe_from_the_dashboard(logged_in, db, clock, app, outbox, make_subscriber):
    sub = make_subscriber()
    path = f"/admin/subscribers/{sub.public_id}"
    resp = logged_in.post(path + "/unsubscribe", data={"csrf_token": page_token(logged_in, path)})
    assert resp.status_code == 303
    assert "no more emails" in logged_in.get(path).get_data(as_text=True)
    sub = reload(db, sub)
    assert sub.status == "unsubscribed"
    assert sub.consents[-1].action == "withdraw" and ADMIN in sub.consents[-1].text
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    assert len(outbox) == 0


def test_erase_from_the_dashboard(logged_in, db, clock, client, outbox, make_subscriber):
    sub = make_subscriber("erase.me@example.com")
    path = f"/admin/subscribers/{sub.public_id}"
    token = page_token(logged_in, path)
    resp = logged_in.post(path + "/erase", data={"csrf_token": token})
    assert resp.status_code == 303 and reload(db, sub) is not None  # the box was not ticked
    resp = logged_in.post(path + "/erase", data={"csrf_token": token, "confirm": "yes"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/subscribers"
    page = logged_in.get("/admin/subscribers").get_data(as_text=True)
    assert "Erased." in page and "erase.me" not in page
    assert reload(db, sub) is None
    assert db.scalar(select(ConsentRecord)) is None
    # Signing up again is quietly ignored: the address is suppressed.
    sign_up(client, "erase.me@example.com")
    assert len(outbox) == 0


def test_suppression_list_check_and_add(logged_in, db, clock, client, outbox, make_subscriber):
    sub = make_subscriber("stop@example.com")
    token = page_token(logged_in, "/admin/suppression")
    html = logged_in.post("/admin/suppression", data={
        "csrf_token": token, "email": "Stop@Example.com", "action": "check"}).get_data(as_text=True)
    assert "Not on the suppression list" in html
    resp = logged_in.post("/admin/suppression", data={
        "csrf_token": token, "email": "stop@example.com", "action": "add"})
    assert resp.status_code == 303
    html = logged_in.get("/admin/suppression").get_data(as_text=True)
    assert "never be mailed" in html and '<strong id="suppressed-total">1</strong>' in html
    html = logged_in.post("/admin/suppression", data={
        "csrf_token": token, "email": "stop@example.com", "action": "check"}).get_data(as_text=True)
    assert "On the suppression list (added by admin" in html
    assert reload(db, sub).status == "unsubscribed"
    html = logged_in.post("/admin/suppression", data={
        "csrf_token": token, "email": "not an address", "action": "check"},
        follow_redirects=True).get_data(as_text=True)
    assert "look right" in html


def test_export_from_the_dashboard(logged_in, db, clock, make_subscriber):
    make_subscriber("one@example.com", "confirmed")
    make_subscriber("two@example.com", "pending")
    resp = logged_in.get("/admin/subscribers.csv?status=confirmed")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    assert resp.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["email"] for r in rows] == ["one@example.com"]
    rows = list(csv.DictReader(io.StringIO(
        logged_in.get("/admin/subscribers.csv").get_data(as_text=True))))
    assert {r["email"] for r in rows} == {"one@example.com", "two@example.com"}


# -- demo data -------------------------------------------------------------------------

def test_demo_seed_fills_an_empty_database_once(runner, app, db, clock):
    from funnel.reporting import stats

    result = runner.invoke(args=["demo", "seed", "--days", "7", "--scale", "0.05"])
    assert result.exit_code == 0, result.output
    m = re.search(r"seeded 7 days: (\d+) article visits, (\d+) landing page visits, "
                  r"(\d+) sign-ups, (\d+) confirmations, (\d+) emails sent", result.output)
    assert m, result.output
    first_day = clock.now.date() - timedelta(days=6)
    counts = stats.funnel_counts(db, *periods.utc_day_bounds(first_day, clock.now.date()))
    assert (counts.article_visits, counts.landing_visits, counts.signups, counts.confirmations,
            counts.sent) == tuple(int(g) for g in m.groups())
    assert db.scalar(select(Subscriber).where(~Subscriber.email.like("%@example.%"))) is None
    again = runner.invoke(args=["demo", "seed"])
    assert again.exit_code != 0 and "empty database" in again.output
    app.config["FUNNEL_ENV"] = "production"
    refused = runner.invoke(args=["demo", "seed"])
    assert refused.exit_code != 0 and "never added in production" in refused.output
