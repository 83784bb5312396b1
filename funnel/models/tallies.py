"""The dashboard's kept figures: delta rows written by triggers
(``funnel.reporting.triggers``), folded by ``funnel.reporting.tallies.compact``.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    CheckConstraint,
    Date,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from funnel.core.states import SETTLED, WAITING, ProgressPart, RecipientOutcome
from funnel.models.base import Base


def _values(values) -> str:
    return ", ".join(repr(str(v)) for v in values)


# A reader's outcome (or WAITING) for a recipient row; a settled state for a delivery row.
PROGRESS_VALUES = (
    f"(part = '{ProgressPart.RECIPIENT}' AND value IN ({_values([*RecipientOutcome, WAITING])}))"
    f" OR (part = '{ProgressPart.DELIVERY}' AND value IN ({_values(SETTLED)}))")


class StatusTally(Base):
    """Deltas of the number of subscribers per status, appended by triggers (funnel.reporting.tallies)."""

    __tablename__ = "status_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)


class StepTally(Base):
    """Deltas of emails sent per UTC day and step, and of those with each event group.

    Appended by triggers on delivery (funnel.reporting.tallies); the sums are the dashboard's
    per-step figures without reading the deliveries.
    """

    __tablename__ = "step_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    step_slug: Mapped[str] = mapped_column(String(100))
    sent: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int] = mapped_column(Integer)
    clicked: Mapped[int] = mapped_column(Integer)
    unsubscribed: Mapped[int] = mapped_column(Integer)
    bounced: Mapped[int] = mapped_column(Integer)
    complained: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_step_tally_day", "day"),)


class VisitTally(Base):
    """Deltas of page views per UTC day and what brought them, appended by triggers on visit."""

    __tablename__ = "visit_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    page: Mapped[str] = mapped_column(String(32))
    via: Mapped[str | None] = mapped_column(String(16))
    referrer_host: Mapped[str | None] = mapped_column(String(255))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_visit_tally_day", "day"),)


class ProblemTally(Base):
    """Deltas of failed and held sends per email, kind, state and error, appended by
    triggers on delivery and subscriber (migration 0010); the dashboard's problems panel.

    ``retryable``: of those, failed steps of the plan whose subscriber is confirmed.
    """

    __tablename__ = "problem_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_slug: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    n: Mapped[int] = mapped_column(Integer)
    retryable: Mapped[int] = mapped_column(Integer)


class ConsentTally(Base):
    """Deltas of consent records per UTC day and action, with the day of the same
    person's previous record of that action and where the person came from
    (migration 0010; read by funnel.reporting.people_tally)."""

    __tablename__ = "consent_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    action: Mapped[str] = mapped_column(String(16))
    prev_day: Mapped[date | None] = mapped_column(Date)
    utm_source: Mapped[str | None] = mapped_column(String(100))
    referrer: Mapped[str | None] = mapped_column(String(500))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    arrived_via: Mapped[str | None] = mapped_column(String(16))
    signed_up: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_consent_tally_day", "day"),)


class EventTally(Base):
    """Deltas of provider events per UTC day and group, with the day of the same
    email's previous event of that group (migration 0010): "emails opened in a period"
    without a distinct count over the period's events."""

    __tablename__ = "event_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    event_group: Mapped[str] = mapped_column(String(16))
    prev_day: Mapped[date | None] = mapped_column(Date)
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_event_tally_day", "day"),)


class LinkTally(Base):
    """Deltas of clicks per UTC day, email and link, with the day of the same email's
    previous click on that link (its own day for a click with no email; migration 0010)."""

    __tablename__ = "link_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    step_slug: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    prev_day: Mapped[date | None] = mapped_column(Date)
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_link_tally_day", "day"),)


class LinkUnsubscribeTally(Base):
    """Deltas of the emails credited with an unsubscribe through our own link, per UTC
    day sent and step (the last email before the unsubscribe, when the provider did
    not report one for it; migration 0010)."""

    __tablename__ = "link_unsubscribe_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    step_slug: Mapped[str] = mapped_column(String(100))
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_link_unsubscribe_tally_day", "day"),)


class BroadcastTally(Base):
    """Deltas of one newsletter issue's progress (migration 0024): its readers per
    outcome and its emails per settled delivery state, appended by triggers on
    broadcast_recipient and delivery (funnel.newsletter.kept_progress), so the issue's
    page reads a few rows instead of counting every reader while it is sent."""

    __tablename__ = "broadcast_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100))
    part: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_broadcast_tally_slug", "slug"),
        CheckConstraint(PROGRESS_VALUES, name="value"),
    )
