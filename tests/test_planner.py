"""Properties of the drip planner: pure decisions on plain data, no database.

The simulation plays a worker that comes by at arbitrary moments (outages of
weeks included), sometimes meets a provider failure, and sends whatever the
planner says. Whatever happens, every send is inside the subscriber's local
window, two steps are never closer than min_gap, each step goes once and in
order, and nobody paused or not confirmed is sent anything.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from funnel.core.sequence import EmailSource, Step
from funnel.drip.planner import (
    DeliveryView,
    GiveUp,
    Hold,
    Rules,
    Send,
    SubscriberView,
    WaitUntil,
    plan,
)

ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC",
         "Pacific/Auckland", "America/Los_Angeles", "Pacific/Chatham"]
RULES = Rules(window=(8, 20), min_gap=timedelta(hours=20), max_attempts=4)
STATUSES = ["pending", "confirmed", "unsubscribed", "bounced", "complained"]


def step(slug: str, days: float = 0, window=None) -> Step:
    return Step(slug, timedelta(days=days), window, EmailSource(Path(f"{slug}.md"), {}, "", 1))


def make_steps(delays: list[int], windows: list) -> list[Step]:
    return [step(f"s{i}", d, windows[i % len(windows)]) for i, d in enumerate(delays)]


times = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                     timezones=st.just(UTC))
windows = st.sampled_from([None, (0, 24), (9, 17), (6, 10), (18, 23)])
# Minutes between worker passes: usually short, sometimes an outage of up to six weeks.
gaps = st.lists(st.one_of(st.integers(1, 180), st.integers(180, 6 * 7 * 24 * 60)),
                min_size=1, max_size=60)


def inside(t: datetime, tz: ZoneInfo, window: tuple[int, int]) -> bool:
    start, end = window
    return (start, end) == (0, 24) or start <= t.astimezone(tz).hour < end


def simulate(steps, confirmed, zone, pass_gaps, failures, pauses=()):
    """Returns the steps done as (slug, time, sent or given up), in the order they were
    settled; asserts the per-send properties on the way."""
    view = SubscriberView("confirmed", confirmed, zone)
    history: list[DeliveryView] = []
    sent: list[tuple[str, datetime]] = []
    done: list[tuple[str, datetime, str]] = []
    now = confirmed
    fail = iter(failures)
    for gap in pass_gaps:
        paused_until = next((until for at, until in pauses if at <= now < until), None)
        decision = plan(replace(view, paused_until=paused_until), history, steps, now, RULES)
        if isinstance(decision, Send):
            assert paused_until is None
            s = decision.step
            assert inside(now, ZoneInfo(zone), s.window or RULES.window), (s.slug, now)
            if sent:
                assert now - sent[-1][1] >= RULES.min_gap
            in_flight = [d for d in history if d.step_slug == s.slug and d.state == "retry"]
            assert decision.retry == bool(in_flight)
            attempts = (in_flight[0].attempts if in_flight else 0) + 1
            history = [d for d in history if d not in in_flight]
            if next(fail, False):
                history.append(DeliveryView(s.slug, "retry", now, None, attempts))
            else:
                history.append(DeliveryView(s.slug, "sent", now, now, attempts))
                sent.append((s.slug, now))
                done.append((s.slug, now, "sent"))
        elif isinstance(decision, GiveUp):
            d = next(d for d in history if d.step_slug == decision.step_slug)
            history[history.index(d)] = replace(d, state=decision.state, sent_at=now)
            done.append((d.step_slug, now, "given up"))
        elif isinstance(decision, WaitUntil):
            assert decision.at > now
        now += timedelta(minutes=gap)
    return done


@settings(max_examples=300, deadline=None)
@given(delays=st.lists(st.integers(0, 10), min_size=1, max_size=6),
       step_windows=st.lists(windows, min_size=1, max_size=3),
       confirmed=times, zone=st.sampled_from(ZONES), pass_gaps=gaps,
       failures=st.lists(st.booleans(), max_size=10))
# Found by hypothesis: the first step fails until it is given up, then the second goes.
@example(delays=[0, 0], step_windows=[None], confirmed=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
         zone="Europe/London", pass_gaps=[60] * 48, failures=[True] * 4)
def test_any_history_sends_in_window_spaced_once_in_order(delays, step_windows, confirmed,
                                                          zone, pass_gaps, failures):
    steps = make_steps(delays, step_windows)
    done = simulate(steps, confirmed, zone, pass_gaps, failures)
    slugs = [s for s, _, _ in done]
    assert len(slugs) == len(set(slugs))  # never twice, never sent after giving up
    # In order: a step given up after its last retry counts as settled, and the plan
    # goes on with the next one (the person is not stuck on a failing provider).
    assert slugs == [s.slug for s in steps][: len(slugs)]


@settings(max_examples=300, deadline=None)
@given(delays=st.lists(st.integers(0, 10), min_size=2, max_size=6),
       confirmed=times, zone=st.sampled_from(ZONES),
       back_at_hour=st.integers(0, 23), back_at_minute=st.integers(0, 59))
def test_catch_up_after_six_weeks_of_outage_waits_for_the_local_window(
        delays, confirmed, zone, back_at_hour, back_at_minute):
    """The bug seen: step 2 was overdue by weeks and went out at 01:00 local."""
    tz = ZoneInfo(zone)
    steps = make_steps(delays, [None])
    first = confirmed + timedelta(days=delays[0])
    history = [DeliveryView("s0", "sent", first, first, 1)]
    back = (first + timedelta(weeks=6)).astimezone(tz).replace(
        hour=back_at_hour, minute=back_at_minute).astimezone(UTC)
    decision = plan(SubscriberView("confirmed", confirmed, zone), history, steps, back, RULES)
    if inside(back, tz, RULES.window):
        assert decision == Send(steps[1])
    else:
        assert isinstance(decision, WaitUntil)
        assert inside(decision.at, tz, RULES.window)
        assert decision.at - back < timedelta(hours=13)  # the next local morning, not later
        again = plan(SubscriberView("confirmed", confirmed, zone), history, steps,
                     decision.at, RULES)
        assert again == Send(steps[1])


def test_the_0100_catch_up_seen_in_production_now_waits_until_0800():
    steps = make_steps([0, 2], [None])
    confirmed = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    history = [DeliveryView("s0", "sent", confirmed, confirmed, 1)]
    back = datetime(2026, 2, 17, 1, 0, tzinfo=UTC)  # 01:00 in London, six weeks later
    decision = plan(SubscriberView("confirmed", confirmed, "Europe/London"), history, steps,
                    back, RULES)
    assert decision == WaitUntil(datetime(2026, 2, 17, 8, 0, tzinfo=UTC),
                                 "outside the sending window")


@settings(max_examples=200, deadline=None)
@given(delays=st.lists(st.integers(0, 10), min_size=1, max_size=6), confirmed=times,
       zone=st.sampled_from(ZONES), pass_gaps=gaps,
       pauses=st.lists(st.tuples(st.integers(0, 60 * 24 * 30), st.integers(1, 60 * 24 * 20)),
                       max_size=3))
def test_never_sent_while_paused(delays, confirmed, zone, pass_gaps, pauses):
    spans = [(confirmed + timedelta(minutes=a), confirmed + timedelta(minutes=a + n))
             for a, n in pauses]
    simulate(make_steps(delays, [None]), confirmed, zone, pass_gaps, [], spans)  # asserts inside


history_items = st.builds(
    DeliveryView, step_slug=st.sampled_from(["s0", "s1", "s2", "other"]),
    state=st.sampled_from(["sent", "failed", "unknown", "sending", "retry", "held", "queued"]),
    created_at=times, sent_at=st.none() | times, attempts=st.integers(0, 9),
    kind=st.sampled_from(["drip", "broadcast", "system"]))


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from(STATUSES), history=st.lists(history_items, max_size=6),
       now=times, confirmed=st.none() | times, paused=st.none() | times)
def test_nobody_unconfirmed_or_paused_is_ever_sent_anything(status, history, now, confirmed,
                                                           paused):
    view = SubscriberView(status, confirmed, "Europe/London", paused)
    decision = plan(view, history, make_steps([0, 2, 3], [None]), now, RULES)
    if status != "confirmed" or confirmed is None:
        assert isinstance(decision, Hold)
    if paused is not None and paused > now:
        assert not isinstance(decision, (Send, GiveUp))


@settings(max_examples=300, deadline=None)
@given(history=st.lists(history_items, max_size=6), others=st.lists(history_items, max_size=6),
       now=times, confirmed=times)
def test_broadcast_and_system_deliveries_do_not_move_the_drip(history, others, now, confirmed):
    drip = [d for d in history if d.kind == "drip"]
    noise = [replace(d, kind=k) for d, k in zip(others, ["broadcast", "system"] * 6)]
    view = SubscriberView("confirmed", confirmed, "Asia/Kolkata")
    steps = make_steps([0, 2, 3], [None])
    assert plan(view, drip + noise, steps, now, RULES) == plan(view, drip, steps, now, RULES)


def test_interrupted_send_is_given_up_only_when_a_resend_could_duplicate():
    confirmed = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    view = SubscriberView("confirmed", confirmed, "UTC")
    steps = make_steps([0, 2], [None])
    history = [DeliveryView("s0", "sending", confirmed, None, 1)]
    assert plan(view, history, steps, confirmed, RULES) == Send(steps[0], retry=True)
    careful = replace(RULES, resend_interrupted=False)
    decision = plan(view, history, steps, confirmed, careful)
    assert isinstance(decision, GiveUp) and decision.state == "unknown"


def test_out_of_attempts_gives_up_and_a_held_step_is_never_passed_over():
    confirmed = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    view = SubscriberView("confirmed", confirmed, "UTC")
    steps = make_steps([0, 2], [None])
    tired = [DeliveryView("s0", "retry", confirmed, None, RULES.max_attempts)]
    assert plan(view, tired, steps, confirmed, RULES) == GiveUp("s0", "gave up after 4 tries")
    # A step held because its file would not render stays next, however long it waits.
    held = [DeliveryView("s0", "held", confirmed, None, 50)]
    later = confirmed + timedelta(days=30)
    assert plan(view, held, steps, later, RULES) == Send(steps[0], retry=True)
