"""Properties of the drip schedule (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funnel.core.schedule import due_at, into_window, next_step
from funnel.core.sequence import EmailSource, Step, parse_delay, parse_window

ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC",
         "Pacific/Auckland", "America/Los_Angeles"]
WINDOW = (8, 20)
MIN_GAP = timedelta(hours=20)


def make_step(slug: str, days: float = 0, window=None) -> Step:
    src = EmailSource(Path(f"{slug}.md"), {"slug": slug}, "", 1)
    return Step(slug=slug, delay=timedelta(days=days), window=window, source=src)


times = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
delays = st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=8)


def simulate(delays_days, confirmed_at, tz, outage_until=None):
    """Run the schedule as a worker would: each step goes out at its due time
    (or when workers come back after an outage)."""
    steps = [make_step(f"s{i}", d, window=(0, 24) if i == 0 else None)
             for i, d in enumerate(delays_days)]
    sent: list[tuple[str, datetime]] = []
    while True:
        step = next_step(steps, [s for s, _ in sent])
        if step is None:
            return steps, sent
        due = due_at(step, confirmed_at=confirmed_at,
                     last_sent_at=sent[-1][1] if sent else None,
                     tz=tz, default_window=WINDOW, min_gap=MIN_GAP)
        if outage_until and due < outage_until:
            # Workers were down: whatever was due goes out when they return,
            # and the next step is planned from that moment.
            due = into_window(outage_until, tz, step.window or WINDOW)
        sent.append((step.slug, due))


@settings(max_examples=200, deadline=None)
@given(delays=delays, confirmed=times, zone=st.sampled_from(ZONES))
def test_order_kept_no_step_twice_window_respected(delays, confirmed, zone):
    tz = ZoneInfo(zone)
    steps, sent = simulate(delays, confirmed, tz)
    assert [s for s, _ in sent] == [s.slug for s in steps]  # each once, in order
    # Step 1 (window "any") goes out exactly its delay after confirming.
    assert sent[0][1] == confirmed + timedelta(days=delays[0])
    for _slug, when in sent[1:]:
        assert WINDOW[0] <= when.astimezone(tz).hour < WINDOW[1]
    times_ = [t for _, t in sent]
    assert times_ == sorted(times_)


@settings(max_examples=200, deadline=None)
@given(delays=delays, confirmed=times, zone=st.sampled_from(ZONES),
       outage=st.integers(min_value=1, max_value=60))
def test_catch_up_is_one_step_at_a_time(delays, confirmed, zone, outage):
    tz = ZoneInfo(zone)
    outage_until = confirmed + timedelta(days=outage)
    _steps, sent = simulate(delays, confirmed, tz, outage_until)
    gaps = [b - a for (_, a), (_, b) in zip(sent, sent[1:])]
    assert all(g >= MIN_GAP for g in gaps), gaps
    # When workers come back, overdue steps are not sent in a burst.
    burst = [t for _, t in sent if outage_until <= t < outage_until + MIN_GAP]
    assert len(burst) <= 1


def test_window_moves_to_next_local_morning():
    tz = ZoneInfo("America/New_York")
    late = datetime(2026, 12, 1, 3, 30, tzinfo=UTC)  # 22:30 the day before in NY
    moved = into_window(late, tz, WINDOW)
    assert moved.astimezone(tz).hour == 8
    assert moved.astimezone(tz).date() == late.astimezone(tz).date() + timedelta(days=1)


def test_window_across_daylight_saving_change():
    tz = ZoneInfo("Europe/London")
    # 29 March 2026: clocks go forward at 01:00 UTC.
    night = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    moved = into_window(night, tz, WINDOW)
    assert moved == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 08:00 BST


def test_pause_holds_the_step_until_it_ends():
    step = make_step("s1", 2)
    sent_at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    pause_end = datetime(2026, 12, 10, 15, tzinfo=UTC)
    due = due_at(step, confirmed_at=sent_at, last_sent_at=sent_at, tz=ZoneInfo("UTC"),
                 default_window=WINDOW, min_gap=MIN_GAP, paused_until=pause_end)
    assert due == pause_end


# -- the marketer edits the sequence while people are mid-way ------------------------

def slugs(*names):
    return [make_step(n) for n in names]


def test_step_added_before_position_is_not_sent_but_after_is():
    steps = slugs("a", "new-early", "b", "c", "new-late")
    assert next_step(steps, ["a", "b"]).slug == "c"
    assert next_step(steps, ["a", "b", "c"]).slug == "new-late"


def test_removed_step_is_skipped():
    assert next_step(slugs("a", "c"), ["a"]).slug == "c"
    # The latest step they got was removed: they continue after the one before it.
    assert next_step(slugs("a", "c", "d"), ["a", "b"]).slug == "c"


def test_reordered_steps_continue_after_latest_received():
    # Had a, b; the marketer moves d before c: both still lie after b, so both go
    # out, in the new order.
    assert next_step(slugs("a", "b", "d", "c"), ["a", "b"]).slug == "d"
    assert next_step(slugs("a", "b", "d", "c"), ["a", "b", "d"]).slug == "c"
    # Moving a step they already had later never sends it again.
    assert next_step(slugs("a", "c", "b"), ["a", "b"]) is None


@pytest.mark.parametrize("text,expected", [
    ("0", timedelta(0)), ("2 days", timedelta(days=2)), ("36 hours", timedelta(hours=36)),
    ("1 week", timedelta(weeks=1)), ("3d", timedelta(days=3)), (5, timedelta(days=5)),
])
def test_delays_a_marketer_writes(text, expected):
    assert parse_delay(text) == expected


@pytest.mark.parametrize("bad", ["soon", "-1 day", "2 fortnights", ""])
def test_unreadable_delay_is_an_error(bad):
    with pytest.raises(ValueError, match="cannot read delay"):
        parse_delay(bad)


def test_windows():
    assert parse_window("any") == (0, 24)
    assert parse_window("7-9") == (7, 9)
    assert parse_window(None) is None
    with pytest.raises(ValueError):
        parse_window("20-8")


def test_a_window_that_opens_at_midnight_holds_a_late_morning_until_midnight():
    # (0, 6): the night only. At 10:00 local the step waits for 00:00 the next day;
    # only (0, 24) means "any time".
    tz = ZoneInfo("Europe/Paris")
    morning = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    moved = into_window(morning, tz, (0, 6))
    assert moved == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # 00:00 on 2 December there
    night = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 03:00 in Paris: inside
    assert into_window(night, tz, (0, 6)) == night


def test_a_window_that_closes_at_midnight_holds_a_morning_until_evening():
    tz = ZoneInfo("UTC")
    morning = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert into_window(morning, tz, (18, 24)) == datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


windows = st.tuples(st.integers(0, 23), st.integers(1, 24)).filter(lambda w: w[0] < w[1])


@settings(max_examples=300, deadline=None)
@given(t=times, zone=st.sampled_from(ZONES), window=windows)
def test_into_window_lands_inside_the_window_at_or_after_t(t, zone, window):
    tz = ZoneInfo(zone)
    start, end = window
    moved = into_window(t, tz, window)
    assert moved >= t
    assert (moved - t) <= timedelta(hours=26)
    local = moved.astimezone(tz)
    # Inside the window, or at its opening hour pushed on by a daylight-saving gap.
    assert start <= local.hour < end or local.hour == start + 1
    if start <= t.astimezone(tz).hour < end:
        assert moved == t  # already inside: sent now
