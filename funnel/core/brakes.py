"""The brakes' arithmetic, pure: when complaint and bounce rates warn or stop, and how
a warm-up spreads a newsletter over days. The worker's side is funnel/control/brakes.py.

Thresholds: Gmail and Yahoo ask bulk senders to stay under 0.1 % spam complaints and
never reach 0.3 %; a bounce rate over 5 % reads as a bought or stale list, and at
10 % providers start suspending accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

WARN_COMPLAINTS = 0.001
STOP_COMPLAINTS = 0.003
WARN_BOUNCES = 0.05
STOP_BOUNCES = 0.10
OK, WARN, STOP = "ok", "warn", "stop"
WARMUP_GROWTH = 1.5  # "growing by half each day"


@dataclass(frozen=True)
class Rate:
    scope: str  # "newsletter spring-plan", "the last 24 hours"
    sent: int
    complaints: int
    bounces: int

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sent if self.sent else 0.0


def judge(rate: Rate, min_sent: int) -> tuple[str, str]:
    """(level, why) for one scope; below ``min_sent`` emails a rate says too little."""
    if rate.sent < max(min_sent, 1):
        return OK, ""
    c, b = rate.complaint_rate, rate.bounce_rate
    said = (f"{rate.scope}: {rate.complaints} spam complaint(s) and {rate.bounces} bounce(s) "
            f"in {rate.sent} emails ({c:.2%} complaints, {b:.1%} bounces)")
    if c >= STOP_COMPLAINTS or b >= STOP_BOUNCES:
        limit = (f"complaints at or over {STOP_COMPLAINTS:.1%}" if c >= STOP_COMPLAINTS
                 else f"bounces at or over {STOP_BOUNCES:.0%}")
        return STOP, f"{said}: {limit}"
    if c >= WARN_COMPLAINTS or b >= WARN_BOUNCES:
        limit = (f"complaints at or over {WARN_COMPLAINTS:.1%}" if c >= WARN_COMPLAINTS
                 else f"bounces at or over {WARN_BOUNCES:.0%}")
        return WARN, f"{said}: {limit}"
    return OK, ""


def worst(judged: list[tuple[str, str]]) -> tuple[str, list[str]]:
    stops = [why for level, why in judged if level == STOP]
    if stops:
        return STOP, stops
    warns = [why for level, why in judged if level == WARN]
    return (WARN, warns) if warns else (OK, [])


def daily_allowance(start: int, day: int) -> int:
    """Newsletter emails allowed on the warm-up's ``day`` (0 = its first)."""
    return math.floor(start * WARMUP_GROWTH ** max(day, 0))


def warmup_plan(remaining: int, start: int, first_day: date, today: date,
                used_today: int, max_days: int = 60) -> list[tuple[date, int]]:
    """When each part of ``remaining`` newsletter emails leaves: (day, how many)."""
    plan: list[tuple[date, int]] = []
    day, used = today, used_today
    while remaining > 0 and len(plan) < max_days:
        n = min(remaining, max(daily_allowance(start, (day - first_day).days) - used, 0))
        if n:
            plan.append((day, n))
            remaining -= n
        day, used = day + timedelta(days=1), 0
    return plan
