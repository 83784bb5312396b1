"""The database schema as SQLAlchemy 2.0 typed models.

Models hold data only; what happens to a subscriber lives in ``core.lifecycle``
and the use cases in ``services``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from funnel.core.states import (
    ArrivalPath,
    BroadcastStatus,
    ConsentAction,
    DeliveryKind,
    DeliveryState,
    EndpointState,
    EventKind,
    ImportJobState,
    MessageState,
    RecipientOutcome,
    RevisionKind,
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
    (``subscribers.take_intake``), which deletes the row in that same transaction."""

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
    via: Mapped[str | None] = mapped_column(String(16))
    # Failed takes of this row alone; at INTAKE_MAX_ATTEMPTS the worker leaves it.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")


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
    # One bit per event group it has had (funnel.tallies.BITS), kept by a trigger
    # on delivery_event: what step_tally counts.
    engaged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

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
        # The few failed or held sends among millions: the dashboard's problems panel.
        Index("ix_delivery_problems", "state", postgresql_where=text("state IN ('failed', 'held')"),
              sqlite_where=text("state IN ('failed', 'held')")),
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
        # delivery_id included: "distinct emails opened this month" reads the index alone.
        Index("ix_delivery_event_kind_at", "kind", "at", postgresql_include=["delivery_id"]),
        CheckConstraint(check_in("kind", EventKind), name="kind"),
    )


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


class AdminUser(Base):
    """A marketer who can log in to the dashboard."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Raised at logout and password change: cookies made under an older one stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# -- the marketer's control room (README "The control room") --------------------------

ARRIVAL_PATHS = tuple(str(a) for a in ArrivalPath)


class ImportJob(Base):
    """A CSV uploaded on the admin pages, from mapping to the worker's report."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="uploaded")
    mapping: Mapped[str | None] = mapped_column(Text)  # JSON: our field for each column
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_source: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int | None] = mapped_column(Integer)
    report: Mapped[str | None] = mapped_column(Text)  # JSON, see import_jobs.Outcome
    error: Mapped[str | None] = mapped_column(Text)
    optin_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    optin_sent: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint(check_in("state", ImportJobState), name="state"),
        Index("ix_import_job_state", "state"),
    )



# -- Connecting to the coach's world: API keys and outbound webhooks ----------------

API_SCOPES = ("subscribers:read", "subscribers:write", "subscribers:import",
              "subscribers:erase", "stats:read")

# Short names for the states of core/states.py that the webhook code uses most.
ENDPOINT_ACTIVE = EndpointState.ACTIVE
ENDPOINT_DISABLED = EndpointState.DISABLED
MESSAGE_PENDING = MessageState.PENDING
MESSAGE_SENDING = MessageState.SENDING
MESSAGE_DELIVERED = MessageState.DELIVERED
MESSAGE_FAILED = MessageState.FAILED
MESSAGE_SCRUBBED = MessageState.SCRUBBED


class ApiKey(Base):
    """A key for the JSON API. Only a hash of the secret part is stored."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    # The public first part of the key: finds the row, safe to show and log.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated, from API_SCOPES
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class WebhookEndpoint(Base):
    """A URL the marketer registered to be told about events."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[str] = mapped_column(String(500))  # space-separated event types
    # Standard Webhooks secret ("whsec_" + base64), shown to the marketer to verify with.
    secret: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default=ENDPOINT_ACTIVE)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set at the first failure after a success; a day of nothing but failures disables it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(check_in("state", EndpointState), name="state"),
    )

    def event_set(self) -> frozenset[str]:
        return frozenset(self.events.split())


class WebhookMessage(Base):
    """The outbox: one event for one endpoint, written in the transaction that made
    the event, and retried by the worker until delivered or 24 h have passed."""

    __tablename__ = "webhook_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The webhook-id header: the same on every retry, so receivers can de-duplicate.
    msg_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    # Whose data the payload holds (no foreign key: erasure scrubs the payload and
    # clears this, keeping the row as a record that something was withheld).
    subscriber_id: Mapped[int | None] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(16), default=MESSAGE_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(String(1000))

    endpoint: Mapped[WebhookEndpoint] = relationship()

    __table_args__ = (
        CheckConstraint(check_in("state", MessageState), name="state"),
        Index("ix_webhook_message_due", "state", "next_attempt_at"),
    )


# -- the newsletter (issue 13) -------------------------------------------------

BROADCAST_SCHEDULED = BroadcastStatus.SCHEDULED
BROADCAST_SENDING = BroadcastStatus.SENDING
BROADCAST_SENT = BroadcastStatus.SENT
BROADCAST_CANCELLED = BroadcastStatus.CANCELLED
# What became of one recipient; NULL while still to do.
OUTCOME_SENT = RecipientOutcome.SENT
OUTCOME_PAUSED = RecipientOutcome.PAUSED
OUTCOME_LEFT = RecipientOutcome.LEFT
OUTCOME_CANCELLED = RecipientOutcome.CANCELLED


class Broadcast(Base):
    """One scheduled newsletter issue, with the copy of its file that is sent."""

    __tablename__ = "broadcast"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=BROADCAST_SCHEDULED)
    subject: Mapped[str] = mapped_column(String(255))
    # The whole file as scheduled: what every recipient gets and the archive shows,
    # whatever happens to emails/broadcasts/SLUG.md afterwards.
    source: Mapped[str] = mapped_column(Text)
    archive: Mapped[bool] = mapped_column(Boolean, default=True)
    audience: Mapped[str] = mapped_column(Text, default="{}")  # the filter, as JSON
    audience_size: Mapped[int] = mapped_column(Integer, default=0)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    local_time: Mapped[str | None] = mapped_column(String(5))  # HH:MM in each reader's zone
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(check_in("status", BroadcastStatus), name="status"),
    )


class BroadcastRecipient(Base):
    """One person a broadcast is for: the worker's to-do list, leased like the plan's."""

    __tablename__ = "broadcast_recipient"

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    # NULL once settled, so an idle worker pass reads only the index.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))

    broadcast: Mapped[Broadcast] = relationship()
    subscriber: Mapped[Subscriber] = relationship()

    __table_args__ = (
        UniqueConstraint("broadcast_id", "subscriber_id", name="uq_broadcast_recipient_once"),
        Index("ix_broadcast_recipient_due", "due_at"),
        Index("ix_broadcast_recipient_outcome", "broadcast_id", "outcome"),
        CheckConstraint("outcome IS NULL OR " + check_in("outcome", RecipientOutcome),
                        name="outcome"),
    )


class EmailRevision(Base):
    """One save of an email file from the browser's editor (funnel.studio): who, when,
    and the text before and after, so the page shows the change and can put it back."""

    __tablename__ = "email_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Relative to EMAILS_DIR, e.g. "sequence/01-stretch.md": the slug may change.
    path: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    before: Mapped[str | None] = mapped_column(Text)  # None: the file was new
    after: Mapped[str] = mapped_column(Text)
    restored_from: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_email_revision_path", "path", "id"),
        CheckConstraint(check_in("kind", RevisionKind), name="kind"),
    )
