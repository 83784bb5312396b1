"""When a subscriber's next step is due. Pure functions: everything comes in as arguments.

Rules (README "The drip schedule"):
- Step 1's delay counts from confirmation; every later step's from when the
  previous one actually went out, so an outage shifts the plan instead of
  bunching it up, and catching up is one step at a time.
- Two steps are never closer than ``min_gap``, whatever the delays say.
- A step goes out inside the sending window in the subscriber's own time zone
  (``window=(0, 24)`` means any time); a pause holds everything until it ends.
- Which step is next is decided by slug: the first step, in the current order,
  after the last one the subscriber received that they have not had yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Seq
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from funnel.core.sequence import Step


def next_step(steps: Seq[Step], received: Iterable[str]) -> Step | None:
    """The next step for someone who has received ``received`` (oldest first).

    A step added before the subscriber's position is not sent to them; a removed
    step is simply gone; after a reorder they continue after their latest step.
    """
    received = list(received)
    done = set(received)
    index = {s.slug: i for i, s in enumerate(steps)}
    position = -1
    for slug in reversed(received):
        if slug in index:
            position = index[slug]
            break
    for step in steps[position + 1 :]:
        if step.slug not in done:
            return step
    return None


def into_window(t: datetime, tz: ZoneInfo, window: tuple[int, int]) -> datetime:
    """The first moment at or after ``t`` that is inside the local window."""
    start, end = window
    if start == 0 and end == 24:
        return t
    local = t.astimezone(tz)
    if start <= local.hour < end:
        return t
    day = local.date() if local.hour < start else local.date() + timedelta(days=1)
    for _ in range(3):
        # Build the wall-clock time and round-trip it through UTC: a DST gap
        # can push a naive local time forward, which is still inside the window.
        opening = datetime(day.year, day.month, day.day, start, tzinfo=tz)
        opening_utc = opening.astimezone(t.tzinfo)
        if opening_utc >= t:
            return opening_utc
        day += timedelta(days=1)
    return t  # unreachable for sane windows


def due_at(
    step: Step,
    *,
    confirmed_at: datetime,
    last_sent_at: datetime | None,
    tz: ZoneInfo,
    default_window: tuple[int, int],
    min_gap: timedelta,
    paused_until: datetime | None = None,
) -> datetime:
    if last_sent_at is None:
        due = confirmed_at + step.delay
    else:
        due = last_sent_at + max(step.delay, min_gap)
    if paused_until is not None and paused_until > due:
        due = paused_until
    return into_window(due, tz, step.window or default_window)


def zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ValueError, KeyError, OSError):
        return ZoneInfo(default)
