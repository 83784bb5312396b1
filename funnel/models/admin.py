"""The coach's side: admin accounts and their sessions, their test sends, browser
imports, API keys and outbound webhooks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from funnel.core.states import (
    AdminRole,
    ArrivalPath,
    EndpointState,
    ImportJobState,
    MessageState,
    TestSendState,
    check_in,
)
from funnel.models.base import Base, UTCDateTime, new_public_id


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
    # Two-factor sign-in (funnel/web/admin/two_factor.py): the TOTP secret, encrypted like
    # webhook secrets; set at enrolment, in force once ``totp_enabled_at`` is set.
    totp_secret: Mapped[str | None] = mapped_column(String(400))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last 30-second step a code was accepted for: a code works once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Hashes (SHA-256) of the unused recovery codes, space-separated.
    recovery_hashes: Mapped[str | None] = mapped_column(Text)

    # What the account may do (core.states.AdminRole); accounts made before roles are owners.
    role: Mapped[str] = mapped_column(String(16), default=AdminRole.OWNER,
                                      server_default=AdminRole.OWNER.value)
    # The zone times are typed and shown in on the admin pages; NULL until the browser
    # has told us (guessed once with Intl.DateTimeFormat) or the admin chose one.
    timezone: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (CheckConstraint(check_in("role", AdminRole), name="role"),)


class AdminSession(Base):
    """One signed-in browser of an admin account, so the account can see where it
    is signed in and end any of them (funnel/web/admin/sessions.py)."""

    __tablename__ = "admin_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_user.id", ondelete="CASCADE"),
                                          index=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # in the cookie
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdminTestSend(Base):
    """One test of an email an admin asked for from the studio pages; the worker
    sends it (``funnel.studio.test_sends``), never the web request."""

    __tablename__ = "test_send"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_user.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(254))
    # The email file, relative to EMAILS_DIR: read again when the worker sends.
    email_path: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(200))
    broadcast: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str | None] = mapped_column(String(500))  # a subject test's variant
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default=TestSendState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(1000))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(300))
    provider_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(check_in("state", TestSendState), name="state"),
        Index("ix_test_send_state", "state", "requested_at"),
        Index("ix_test_send_admin", "admin_id", "requested_at"),
    )


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
    # Standard Webhooks secret ("whsec_" + base64), shown to the marketer to verify
    # with, stored encrypted (funnel/hooks/secret_box.py: a Fernet token).
    secret: Mapped[str] = mapped_column(String(400))
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

    @property
    def plain_secret(self) -> str | None:
        """The secret in the clear, only on the object that registered it (to show
        once); never stored, never loaded."""
        return self.__dict__.get("_plain_secret")

    @plain_secret.setter
    def plain_secret(self, value: str) -> None:
        self.__dict__["_plain_secret"] = value


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
