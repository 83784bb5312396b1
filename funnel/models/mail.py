"""What is sent and what happened to it: deliveries, the provider's events (and the
machines' apart), newsletter issues and their recipients, revisions of the email files.
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
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from funnel.core.states import (
    BroadcastStatus,
    DeliveryKind,
    DeliveryState,
    EventKind,
    MachineEventKind,
    RecipientOutcome,
    RevisionKind,
    SubjectTestState,
    check_in,
)
from funnel.models.base import Base, UTCDateTime, new_public_id

if TYPE_CHECKING:  # the relationships' other ends, resolved by name at run time
    from funnel.models.people import Subscriber


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
    # True: an open or click the machine-event check (funnel/core/machine_events.py)
    # found to be a person's (a machine's goes to machine_event instead). NULL: not
    # checked: another kind, or recorded before the check existed (migration 0013).
    machine_checked: Mapped[bool | None] = mapped_column(Boolean)

    delivery: Mapped[Delivery | None] = relationship(back_populates="events")

    __table_args__ = (
        # delivery_id included: "distinct emails opened this month" reads the index alone.
        Index("ix_delivery_event_kind_at", "kind", "at", postgresql_include=["delivery_id"]),
        CheckConstraint(check_in("kind", EventKind), name="kind"),
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
    # A subject test (newsletter.subject_tests): NULL state means none was asked for.
    test_state: Mapped[str | None] = mapped_column(String(16))
    test_subjects: Mapped[str | None] = mapped_column(Text)  # JSON list, in the file's order
    test_sample: Mapped[int | None] = mapped_column(Integer)  # percent of the audience
    test_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    test_decide_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    test_winner: Mapped[int | None] = mapped_column(Integer)  # index into test_subjects
    test_note: Mapped[str | None] = mapped_column(Text)  # the decision, or why no test ran

    __table_args__ = (
        CheckConstraint(check_in("status", BroadcastStatus), name="status"),
        CheckConstraint("test_state IS NULL OR " + check_in("test_state", SubjectTestState),
                        name="test_state"),
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
    # Which subject this reader gets (an index into the broadcast's test_subjects),
    # fixed before their email is sent, so nobody ever gets two versions.
    variant: Mapped[int | None] = mapped_column(Integer)
    # In the test's sample (its figures decide), not among the rest who get the winner.
    sampled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

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


class MachineEvent(Base):
    """An open or click no person made (Apple's privacy proxy, a link scanner): kept
    apart from ``delivery_event`` so no figure counts it and nothing is set off by it.
    Why it is a machine's is kept; the address and user agent are not."""

    __tablename__ = "machine_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True)
    provider_event_id: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    step_slug: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    reason: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(check_in("kind", MachineEventKind), name="kind"),
    )


# Tags, several sequences and rules (issue 25) live in their own module; importing
# it here registers them on ``Base.metadata`` wherever the models are used.
from funnel.models import (  # noqa: E402,F401
    RuleFiring,
    SequenceEnrollment,
    SubscriberTag,
)
