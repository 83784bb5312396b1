"""Opens and clicks no person made: told apart, kept apart, shown apart, and never
counted in the dashboard's figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from funnel.core.machine_events import Seen, bursts, classify
from funnel.models import Delivery, DeliveryEvent, MachineEvent, Subscriber
from funnel.runtime import make_worker
from tests.conftest import sign_up_and_confirm
from tests.sendgrid_support import Signer, post_events

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"


def seen(kind: str, seconds: float, **kw) -> Seen:  # type: ignore[no-untyped-def]
    return Seen(kind=kind, at=T0 + timedelta(seconds=seconds), sent_at=T0, **kw)


@pytest.mark.parametrize("event, machine", [
    (seen("open", 3, provider_says_machine=True), True),
    (seen("open", 40, ip="17.58.101.7", user_agent="Mozilla/5.0"), True),  # Apple's proxy
    (seen("open", 86_400, ip="17.58.101.7", user_agent="Mozilla/5.0"), False),  # a day later
    (seen("open", 5, user_agent="Mozilla/5.0 (via ggpht.com GoogleImageProxy)"), True),
    (seen("open", 4, ip="203.0.113.9", user_agent=IPHONE), False),  # early alone: a person
    (seen("open", 600, ip="203.0.113.9", user_agent=IPHONE), False),
    (seen("click", 2, method="HEAD"), True),
    (seen("click", 3, user_agent="Mozilla/5.0 (compatible; Barracuda Sentinel)"), True),
    (seen("click", 3, ip="17.1.2.3", user_agent="Mozilla/5.0"), True),
    (seen("click", 3, ip="203.0.113.9", user_agent=IPHONE), False),
    (seen("click", 900, ip="203.0.113.9", user_agent=IPHONE), False),
    (seen("open", 1, ip="not an address"), False),
])
def test_classify(event, machine):
    assert (classify(event) is not None) == machine


def test_every_link_at_once_is_a_burst_a_person_clicking_twice_is_not():
    at = [T0 + timedelta(seconds=s) for s in (5, 5.2, 5.4, 5.9, 300, 600)]
    clicks = [("a", at[0], "/1"), ("a", at[1], "/2"), ("a", at[2], "/3"), ("b", at[3], "/1"),
              ("b", at[4], "/2"), ("a", at[5], "/1")]
    assert bursts(clicks) == {0, 1, 2}


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def app_config(app_config, signer):
    return {**app_config, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def test_machine_events_are_kept_apart_and_left_out_of_the_figures(app, client, db, clock,
                                                                  outbox, signer, logged_in):
    sign_up_and_confirm(client, outbox, "reader@example.com")
    assert make_worker(app.extensions["funnel"]).run_pass(clock.now).sent == 1
    db.rollback()
    d = db.scalar(select(Delivery).join(Subscriber).where(
        Subscriber.email == "reader@example.com", Delivery.kind == "drip"))
    ts = int(clock.now.timestamp())
    base = {"email": "reader@example.com", "delivery_id": d.public_id, "timestamp": ts}
    events = [
        {**base, "event": "open", "sg_event_id": "o1", "sg_machine_open": True,
         "ip": "17.58.1.1", "useragent": "Mozilla/5.0"},
        {**base, "event": "open", "sg_event_id": "o2", "ip": "66.249.1.1",
         "useragent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"},
        *[{**base, "event": "click", "sg_event_id": f"c{i}", "ip": "198.51.100.4",
           "useragent": "Mozilla/5.0", "url": f"https://example.org/{i}"} for i in range(3)],
    ]
    resp = post_events(client, signer, events, ts)
    assert resp.status_code == 200 and resp.get_json()["recorded"] == 0
    # A person, later: one open and one click.
    later = ts + 3600
    people = [{**base, "timestamp": later, "event": "open", "sg_event_id": "o3",
               "ip": "203.0.113.9", "useragent": IPHONE},
              {**base, "timestamp": later, "event": "click", "sg_event_id": "c9",
               "ip": "203.0.113.9", "useragent": IPHONE, "url": "https://example.org/0"}]
    assert post_events(client, signer, people, ts).get_json()["recorded"] == 2
    # Posted again (SendGrid retries): nothing twice.
    assert post_events(client, signer, events, ts).get_json()["duplicates"] == 5

    db.rollback()
    kept = {e.provider_event_id: e.reason for e in db.scalars(select(MachineEvent))}
    assert set(kept) == {"o1", "o2", "c0", "c1", "c2"}
    assert "Apple" in kept["o1"] and "proxy" in kept["o2"] and "scanner" in kept["c0"]
    assert db.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.kind.in_(("open", "click")))) == 2
    # The dashboard counts the person's open and click, and shows the machines apart.
    clock.advance(hours=2)
    page = logged_in.get("/admin/").get_data(as_text=True)
    row = re.search(rf'<tr data-step="{re.escape(d.step_slug)}">(.*?)</tr>', page, re.S)
    assert row, page
    cells = re.findall(r'<td class="num">([\d,]+)', row.group(1))
    sent, _delivered, opened, clicked = (int(c.replace(",", "")) for c in cells[:4])
    assert (sent, opened, clicked) == (1, 1, 1)
    assert 'data-metric="machine_opens">2<' in page and 'data-metric="scanner_clicks">3<' in page
