

# -- the newsletter (issue 13) -------------------------------------------------

BROADCAST_SCHEDULED = "scheduled"
BROADCAST_SENDING = "sending"
BROADCAST_SENT = "sent"
BROADCAST_CANCELLED = "cancelled"
BROADCAST_STATUSES = (BROADCAST_SCHEDULED, BROADCAST_SENDING, BROADCAST_SENT, BROADCAST_CANCELLED)
# What became of one recipient; NULL while still to do.
OUTCOME_SENT = "sent"            # handed to the send step (its delivery row says how it went)
OUTCOME_PAUSED = "paused"        # paused when their turn came: the pause means no email
OUTCOME_LEFT = "left"            # unsubscribed, bounced, complained or dropped the topic since
OUTCOME_CANCELLED = "cancelled"  # the broadcast was cancelled first
OUTCOMES = (OUTCOME_SENT, OUTCOME_PAUSED, OUTCOME_LEFT, OUTCOME_CANCELLED)


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
        CheckConstraint(
            "status IN ('scheduled', 'sending', 'sent', 'cancelled')", name="status"),
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
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('sent', 'paused', 'left', 'cancelled')",
            name="outcome"),
    )
