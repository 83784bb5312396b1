"""Where a person is with the plan, so every page and email says what is true for
them: still in the plan, finished it, getting the newsletter only, or paused.

Flask-free; ``now`` is passed in. Works on the ORM subscriber and on the worker's
``SubscriberRow`` alike (both have ``deliveries``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from funnel.core import lifecycle
from funnel.core.states import DeliveryKind, DeliveryState

IN_PLAN = "in-plan"
FINISHED = "finished"
NEWSLETTER_ONLY = "newsletter-only"
PAUSED = "paused"
NOT_CONFIRMED = "not-confirmed"

# A step counts as had once it left us (sent), or we gave up on it for good.
_HAD = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.UNKNOWN)


def plan_finished(sub: Any, last_step: str | None) -> bool:
    """The plan's last email went out to them (what "finished the plan" means)."""
    return last_step is not None and any(
        d.kind == DeliveryKind.DRIP and d.step_slug == last_step and d.state in _HAD
        for d in sub.deliveries)


def plan_stage(sub: Any, last_step: str | None, now: datetime) -> str:
    if sub.status != lifecycle.CONFIRMED:
        return NOT_CONFIRMED
    if plan_finished(sub, last_step):
        return FINISHED  # a pause changes nothing of a plan that is done
    if lifecycle.is_paused(sub, now):
        return PAUSED
    if not sub.wants_plan:
        return NEWSLETTER_ONLY
    return IN_PLAN


# The sentence the "already on the list" email gives each stage ({{ plan_status }}).
ALREADY_SAYS = {
    IN_PLAN: "Your plan keeps coming as before: each part arrives on its day.",
    FINISHED: ("You have had the whole plan. It stays on your own page, to read again "
               "or print whenever you like."),
    NEWSLETTER_ONLY: ("You chose the newsletter without the plan emails. The whole plan is "
                      "still on your own page, and your preferences switch the emails back on."),
    PAUSED: ("Your emails are paused. The plan carries on where you left off once the "
             "pause ends; your preferences end it sooner."),
}


def last_step(emails_dir: str) -> str | None:
    """The slug of the plan's last email (None while the sequence cannot be read)."""
    from funnel.core.sequence import EmailFileError, load_sequence

    try:
        steps = load_sequence(emails_dir).steps
    except (EmailFileError, OSError):
        return None
    return steps[-1].slug if steps else None
