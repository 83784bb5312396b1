"""The subscriber's lifecycle: pending → confirmed → unsubscribed / bounced / complained.

Only these transitions exist; anything else raises, so a bug cannot quietly move
someone who unsubscribed back onto the list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

PENDING = "pending"
CONFIRMED = "confirmed"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"

STATUSES = (PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED, COMPLAINED)
# Provider-reported states we never leave on our own: the address is unusable or
# its owner complained. A new sign-up does not lift them.
SUPPRESSED = frozenset({BOUNCED, COMPLAINED})

ALLOWED = {
    PENDING: {CONFIRMED, UNSUBSCRIBED, BOUNCED, COMPLAINED},
    CONFIRMED: {UNSUBSCRIBED, BOUNCED, COMPLAINED},
    # Signing up again restarts double opt-in.
    UNSUBSCRIBED: {PENDING, BOUNCED, COMPLAINED},
    BOUNCED: set(),
    COMPLAINED: set(),
}


class TransitionError(ValueError):
    pass


def transition(current: str, new: str) -> str:
    if new == current:
        return current
    if new not in ALLOWED.get(current, set()):
        raise TransitionError(f"a {current} subscriber cannot become {new}")
    return new


def can_receive_sequence(status: str) -> bool:
    return status == CONFIRMED


# "Until I resume" is a pause that ends so far ahead it never does. Not
# datetime.max: schedule arithmetic on it (time zones, +1 day) must not overflow.
UNTIL_RESUMED = datetime(9000, 1, 1, tzinfo=UTC)


class _Pausable(Protocol):
    paused_until: datetime | None


def is_paused(sub: _Pausable, now: datetime) -> bool:
    return sub.paused_until is not None and sub.paused_until > now


def paused_until_resumed(sub: _Pausable) -> bool:
    return sub.paused_until is not None and sub.paused_until >= UNTIL_RESUMED
