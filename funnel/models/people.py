"""The people on the list: subscribers, their sign-ups waiting for the worker,
consent records, the suppression list, page visits and the app's own small state.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from funnel.core.states import (
    ArrivalPath,
    ConsentAction,
    IntakeState,
    IntakeVia,
    SubscriberStatus,
    VisitPage,
    check_in,
)
from funnel.models.automation import SubscriberTag
from funnel.models.base import Base, UTCDateTime, new_public_id

if TYPE_CHECKING:  # the relationships' other ends, resolved by name at run time
    from funnel.models.mail import Delivery


class Subscriber(Base):
    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Opaque id carried in signed links instead of the address or the row id.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))
    referrer: Mapped[str | None] = mapped_column(String(500))
    landing_page: Mapped[str | None] = mapped_column(String(500))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    utm_term: Mapped[str | None] = mapped_column(String(100))
    utm_content: Mapped[str | None] = mapped_column(String(100))
    # "article" when they followed the article's link to the landing page, else "direct".
    arrived_via: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Topics: the free plan and the newsletter, both on at sign-up (issue 13).
    wants_plan: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    wants_newsletter: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The drip engine's cursor: when this subscriber next needs the worker's
    # attention. NULL means nothing is due, so an idle pass reads only the index.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # host:pid, for operators

    consents: Mapped[list[ConsentRecord]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="ConsentRecord.id"
    )
    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="Delivery.id"
    )

    @property
    def tag_names(self) -> frozenset[str]:
        """The subscriber's tags, read from their session (none for an unsaved one)."""
        from sqlalchemy import select
        from sqlalchemy.orm import object_session


        session = object_session(self)
        if session is None or self.id is None:
            return frozenset()
        return frozenset(session.scalars(select(SubscriberTag.tag)
                                         .where(SubscriberTag.subscriber_id == self.id)))

    __table_args__ = (
        Index("ix_subscriber_due", "next_due_at"),
        # The dashboard's list growth and the admin list filter by status and time.
        Index("ix_subscriber_status_created", "status", "created_at"),
        # The admin list, newest first, pages through this at any list size.
        Index("ix_subscriber_created_id", "created_at", "id"),
        # "Part of an address" search (LIKE '%x%') at a million: trigrams on
        # PostgreSQL (migration 0004 adds pg_trgm); a plain index on SQLite.
        Index("ix_subscriber_email_trgm", "email", postgresql_using="gin",
              postgresql_ops={"email": "gin_trgm_ops"}),
        # Unsubscribes through our own link since a day: the dashboard's per-step figures.
        Index("ix_subscriber_unsubscribed_at", "unsubscribed_at"),
        # Who may get the newsletter, counted from the index alone (an index-only
        # scan): the newsletters page at a million readers.
        Index("ix_subscriber_newsletter_audience", "paused_until",
              postgresql_where=text("status = 'confirmed' AND wants_newsletter"),
              sqlite_where=text("status = 'confirmed' AND wants_newsletter")),
        CheckConstraint(check_in("status", SubscriberStatus), name="status"),
        CheckConstraint(check_in("arrived_via", ArrivalPath), name="arrived_via"),
    )


class SignupIntake(Base):
    """A sign-up as the form sent it, written by the web request in one INSERT and
    turned into a subscriber, consent record and queued confirmation by the worker
    (``subscribers.intake.take_intake``), which deletes the row in that same transaction."""

    __tablename__ = "signup_intake"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # already normalised
    first_name: Mapped[str | None] = mapped_column(String(80))
    timezone: Mapped[str] = mapped_column(String(64))
    # The request's time: the worker decides (caps, created_at) as of then.
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    page: Mapped[str | None] = mapped_column(String(500))
    referrer: Mapped[str | None] = mapped_column(String(500))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    utm_term: Mapped[str | None] = mapped_column(String(100))
    utm_content: Mapped[str | None] = mapped_column(String(100))
    via: Mapped[str | None] = mapped_column(String(16))  # the front that wrote it
    # Failed takes of this row alone; at INTAKE_MAX_ATTEMPTS the worker leaves it.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # Refused by the worker's checks (funnel.subscribers.intake_check): kept with why, never mailed.
    state: Mapped[str] = mapped_column(String(16), server_default=str(IntakeState.WAITING))
    refused_reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(check_in("via", IntakeVia), name="via"),
        CheckConstraint(check_in("state", IntakeState), name="state"),
    )


class ConsentRecord(Base):
    """What the subscriber agreed to or withdrew, when and from where."""

    __tablename__ = "consent_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text_version: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    page: Mapped[str | None] = mapped_column(String(500))
    # The campaign that brought them, as a query string (utm_source=…&utm_medium=…).
    utm: Mapped[str | None] = mapped_column(String(600))
    # Who stated consent on the person's behalf (an import's marketer, a confirmation by hand).
    stated_by: Mapped[str | None] = mapped_column(String(254))

    subscriber: Mapped[Subscriber] = relationship(back_populates="consents")

    __table_args__ = (
        # Sign-ups and confirmations per period: the dashboard's funnel and daily chart.
        Index("ix_consent_record_action_at", "action", "at"),
        CheckConstraint(check_in("action", ConsentAction), name="action"),
    )


class Suppression(Base):
    """Addresses we must never mail again, kept as a salted hash after erasure."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(128), unique=True)
    reason: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Visit(Base):
    """A page view counted without any personal data: no IP, no cookie."""

    __tablename__ = "visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    page: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    referrer_host: Mapped[str | None] = mapped_column(String(255))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    # Landing page only: "article" (followed the article's link) or "direct".
    via: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        # Visits per page per period (the funnel) and per day.
        Index("ix_visit_page_at", "page", "at"),
        CheckConstraint(check_in("page", VisitPage), name="page"),
        CheckConstraint(check_in("via", ArrivalPath), name="via"),
    )


class AppState(Base):
    """Small key/value facts the workers share, e.g. the sequence they scheduled for."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
