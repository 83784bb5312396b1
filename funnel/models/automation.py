"""Tables for tags, several sequences and the coach's rules (issue 25).

Imported by ``funnel.models``, so ``Base`` knows them wherever the models are used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from funnel.core.states import EnrollmentState, TagSource, check_in
from funnel.core.tags import TAG_MAX
from funnel.models.base import Base, UTCDateTime

TAG_REASON_MAX = 200


class SubscriberTag(Base):
    """One tag on one subscriber: when, by what (``source``) and why (``reason``).

    The key (subscriber, tag) makes adding a tag twice a no-op; removing deletes the
    row, so adding it again later is a new ``added_at`` (what ``tag_added`` rules see).
    """

    __tablename__ = "subscriber_tag"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(TAG_MAX), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(TAG_REASON_MAX))

    __table_args__ = (
        # "Everyone tagged X": audiences, rules and the tag list start from the tag.
        Index("ix_subscriber_tag_tag", "tag", "subscriber_id"),
        CheckConstraint(check_in("source", TagSource), name="source"),
    )


class SequenceEnrollment(Base):
    """One subscriber in one sequence. Which steps they had is in ``delivery`` (slugs
    are unique across sequences); this row says whether they are still in it."""

    __tablename__ = "sequence_enrollment"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True)
    sequence: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    # Step 1's delay counts from here (the plan: the moment they confirmed).
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        # Who is in a sequence, and who finished it lately ("finished: X" starts).
        Index("ix_sequence_enrollment_state", "sequence", "state", "ended_at"),
        CheckConstraint(check_in("state", EnrollmentState), name="state"),
    )


class RuleFiring(Base):
    """One rule fired for one subscriber. Written in the same transaction as the
    rule's actions, with a unique key: a worker killed mid-rule leaves neither
    (the next pass does both, once); two workers cannot both fire it.
    ``trigger`` is empty for a rule that fires once per person, else what set it
    off this time (the click's event, the tag's date…) for ``repeat: true``."""

    __tablename__ = "rule_firing"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(100))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(100), default="", server_default="")
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("rule", "subscriber_id", "trigger", name="uq_rule_firing_once"),
        # The admin's last firings of a rule, and a pass's own firings.
        Index("ix_rule_firing_rule_at", "rule", "fired_at"),
        Index("ix_rule_firing_subscriber", "subscriber_id"),
    )
