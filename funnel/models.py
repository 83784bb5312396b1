"""The database schema as SQLAlchemy 2.0 typed models.

Models hold data only; what happens to a subscriber lives in ``core.lifecycle``
and the use cases in ``services``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from funnel.core.states import (
    ConsentAction,
    DeliveryKind,
    DeliveryState,
    EventKind,
    SubscriberStatus,
    VisitPage,
    check_in,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which drops the zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
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
        CheckConstraint(check_in("status", SubscriberStatus), name="status"),
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

    subscriber: Mapped[Subscriber] = relationship(back_populates="consents")

    __table_args__ = (
        # Sign-ups and confirmations per period: the dashboard's funnel and daily chart.
        Index("ix_consent_record_action_at", "action", "at"),
        CheckConstraint(check_in("action", ConsentAction), name="action"),
    )


class Delivery(Base):
    """One step of the sequence for one subscriber: at most one row, ever."""

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Opaque id given to the provider (custom_args) and used as the outbox file name.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    # drip (a sequence step), broadcast (a one-off newsletter, step_slug = its
    # slug) or system (confirm-…, already-subscribed-…); see funnel/sending.py.
    kind: Mapped[str] = mapped_column(String(16), default=DeliveryKind.DRIP, server_default="drip")
    step_slug: Mapped[str] = mapped_column(String(100))
    # queued | held -> sending -> sent | retry -> sending ... | failed | unknown
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.SENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When an unsettled row (queued, retry, held) is next tried; NULL once settled.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    subscriber: Mapped[Subscriber] = relationship(back_populates="deliveries")
    events: Mapped[list[DeliveryEvent]] = relationship(
        back_populates="delivery", cascade="all, delete-orphan"
    )

    __table_args__ = (
        UniqueConstraint("subscriber_id", "kind", "step_slug",
                         name="uq_delivery_subscriber_kind_step"),
        CheckConstraint(check_in("kind", DeliveryKind), name="kind"),
        Index("ix_delivery_step_state", "step_slug", "state"),
        # Emails sent per period, per step: the dashboard's engagement table.
        Index("ix_delivery_sent_at", "sent_at"),
        Index("ix_delivery_retry_at", "retry_at"),
        CheckConstraint(check_in("state", DeliveryState), name="state"),
    )


class DeliveryEvent(Base):
    """What the provider told us happened to a delivery (delivered, open, bounce…)."""

    __tablename__ = "delivery_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True
    )
    # Set when the event names no delivery we know but an address we do (a bounce
    # for a confirmation email): erasure then deletes by key, not by searching text.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    provider_event_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    step_slug: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[Delivery | None] = relationship(back_populates="events")

    __table_args__ = (
        Index("ix_delivery_event_kind_at", "kind", "at"),
        CheckConstraint(check_in("kind", EventKind), name="kind"),
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

    __table_args__ = (
        # Visits per page per period (the funnel) and per day.
        Index("ix_visit_page_at", "page", "at"),
        CheckConstraint(check_in("page", VisitPage), name="page"),
    )


class AppState(Base):
    """Small key/value facts the workers share, e.g. the sequence they scheduled for."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AdminUser(Base):
    """A marketer who can log in to the dashboard."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
