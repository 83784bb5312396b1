"""The scheduling form of a broadcast, read in the admin's own time zone.

The audience controls (plan, sign-up dates, source, campaign, tags, the plan topic)
are turned into the same ``key=value`` text the page always took (``plan=finished,
source=instagram``), which stays the one representation: the confirm page and the
command line show it, and the optional text field can still add to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app, request
from sqlalchemy import func, select

from funnel import runtime
from funnel.core import timezones
from funnel.core.broadcast import (
    PLAN_CHOICES,
    WANTS_PLAN_CHOICES,
    Broadcast,
    Filter,
    parse_local_time,
    parse_where,
)
from funnel.core.schedule import zone
from funnel.models import AdminUser, Subscriber, SubscriberTag
from funnel.newsletter import subject_tests

CONTROL_KEYS = ("plan", "signed_up_after", "signed_up_before", "source", "campaign", "tag",
                "without_tag", "wants_plan")


def admin_zone_name(admin: AdminUser | None) -> str:
    name = admin.timezone if admin is not None and admin.timezone else None
    return name if name in timezones.accepted_zones() else runtime.rt().settings.default_timezone


def admin_zone(admin: AdminUser | None) -> ZoneInfo:
    return zone(admin_zone_name(admin), "UTC")


def where_text(form) -> str:
    """``plan=finished, source=instagram`` from the controls, then the text field."""
    pairs = []
    for key in CONTROL_KEYS:
        value = (form.get(key) or "").strip()
        if value and value != "any":
            if "," in value or "=" in value:
                raise ValueError(f"{key.replace('_', ' ')} cannot hold ',' or '='")
            pairs.append(f"{key}={value}")
    extra = (form.get("where") or "").strip()
    return ", ".join([*pairs, extra] if extra else pairs)


def parse_when(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """``2026-12-08T07:00`` read in the admin's zone; refused if past, said in that zone."""
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a date and time: pick one, e.g. 2026-12-08 07:00"
                         ) from exc
    if local.tzinfo is None:
        local = local.replace(tzinfo=tz)
    at = local.astimezone(UTC)
    if at < now:
        shown = now.astimezone(tz)
        raise ValueError(f"{local:%d %b %Y %H:%M} ({tz.key}) is in the past: it is now "
                         f"{shown:%d %b %Y %H:%M} there. Pick a later time, or leave it "
                         "empty to send now")
    return at


@dataclass(frozen=True)
class Plan:
    at: datetime | None
    local: time | None
    flt: Filter
    test: subject_tests.TestPlan
    form: dict[str, str]  # what to carry to the confirm step
    where: str


def plan_from_form(item: Broadcast, admin: AdminUser | None) -> Plan:
    """The form's choices, checked; raises ValueError with a message for the page."""
    now = runtime.now()
    form = request.form
    at_text = (form.get("at") or "").strip()
    local_text = (form.get("local") or "").strip()
    where = where_text(form)
    at = parse_when(at_text, admin_zone(admin), now) if at_text else None
    local = parse_local_time(local_text) if local_text else None
    flt = item.audience.merged(parse_where([w for w in where.split(",") if w.strip()]))
    test = subject_tests.TestPlan(
        sample_percent=subject_tests.parse_sample(form.get("test_sample")),
        wait=subject_tests.parse_wait(form.get("test_wait")),
        min_per_subject=current_app.config.get("SUBJECT_TEST_MIN_PER_SUBJECT",
                                               subject_tests.MIN_PER_SUBJECT))
    carried = {"at": at_text, "local": local_text, "where": where,
               "test_sample": str(test.sample_percent),
               "test_wait": (form.get("test_wait") or "").strip()}
    return Plan(at=at, local=local, flt=flt, test=test, form=carried, where=where)


def choices() -> dict[str, list[str]]:
    """The values the source, campaign and tag menus offer: what the list holds."""
    s = runtime.session()

    def distinct(col) -> list[str]:
        return [v for v in s.scalars(select(func.lower(col)).where(col.is_not(None))
                                     .distinct().order_by(func.lower(col)).limit(200)) if v]

    return {"plan": list(PLAN_CHOICES), "source": distinct(Subscriber.utm_source),
            "campaign": distinct(Subscriber.utm_campaign), "tag": distinct(SubscriberTag.tag),
            "wants_plan": list(WANTS_PLAN_CHOICES)}
