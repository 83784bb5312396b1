"""A stranger cannot tell from the answer's time whether an address is on the list:
the API and the embedded form write the same one intake row whoever the address
belongs to, so new and known addresses are answered in the same time."""

from __future__ import annotations

import statistics
import time

import pytest

from funnel.accounts import api_keys as keys
from tests.conftest import take_in

BLOG = "https://blog.runstronger.example"
ROUNDS = 41
KNOWN = "known.runner@example.com"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "EMBED_ORIGINS": [BLOG], "API_RATELIMIT": "100000 per minute",
            "RATELIMIT_SIGNUP": "100000 per minute", "RATELIMIT_SIGNUP_ATTEMPTS": "100000 per minute"}


def paired_gap(send, tag: str) -> tuple[float, float, float]:
    """Median time for new and for known addresses, and the median of their paired
    differences (ms). Sent alternately, so a busy neighbour slows both alike."""
    new, known, gaps = [], [], []
    for i in range(ROUNDS):
        pair = []
        for email in (f"{tag}{i}@example.com", KNOWN) if i % 2 else (KNOWN, f"{tag}{i}@example.com"):
            start = time.perf_counter()
            resp = send(email)
            pair.append((email, time.perf_counter() - start, resp))
        for email, took, resp in pair:
            assert resp.status_code in (202, 303), resp.get_data(as_text=True)
            (known if email == KNOWN else new).append(took * 1000)
        gaps.append(new[-1] - known[-1])
    return statistics.median(new), statistics.median(known), statistics.median(gaps)


def assert_same_time(app, send, tag: str) -> None:
    send(KNOWN)  # on the list, confirmed, before the measuring starts
    take_in(app)
    from sqlalchemy import update

    from funnel.models import Subscriber

    with app.extensions["funnel"].sessions() as s:
        s.execute(update(Subscriber).where(Subscriber.email == KNOWN).values(
            status="confirmed", confirmed_at=Subscriber.created_at))
        s.commit()
    for _ in range(5):  # warm: compiled statements, pools, caches
        send(KNOWN)
        send(f"warm{tag}{_}@example.com")
    # Doing the whole sign-up in the request made a new address slower by 30 %
    # (17.3 against 13.3 ms median in the probe) and here by over 70 % (the test's
    # database commits more slowly); one INSERT for both leaves only noise. A real
    # gap shows in every measurement; a neighbour's burst of load in one, so a
    # measurement is taken again (at most three) before the test fails.
    seen = []
    for attempt in range(3):
        new, known, gap = paired_gap(send, f"{tag}{attempt}x")
        print(f"{tag}: new {new:.2f} ms, known {known:.2f} ms, paired gap {gap:+.2f} ms")
        seen.append((new, known, gap))
        if abs(gap) < max(2.0, 0.15 * known):
            return
    raise AssertionError(f"new and known addresses differ in every measurement: {seen}")


def test_the_api_answers_new_and_known_addresses_in_the_same_time(app, client, db):
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        token = keys.create_key(s, "timing", ["subscribers:write"], now=rt.clock())[1]
    auth = {"Authorization": f"Bearer {token}"}

    def send(email):
        return client.post("/api/v1/subscribers", json={"email": email}, headers=auth)

    assert_same_time(app, send, "api")


def test_the_embedded_form_answers_new_and_known_addresses_in_the_same_time(app, client, db):
    def send(email):
        return client.post("/embed/subscribe", data={"email": email}, headers={"Origin": BLOG})

    assert_same_time(app, send, "embed")
