"""The subscriber's lifecycle: pending → confirmed → unsubscribed / bounced / complained.

Only these transitions exist; anything else raises, so a bug cannot quietly move
someone who unsubscribed back onto the list.
"""

from __future__ import annotations

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
