"""Several sequences: who is in which (issue 25). People already in the plan
carry on: each subscriber with plan history or a confirmation gets a "plan" row,
started when they confirmed, so nothing is resent and nothing restarts.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sequence_enrollment",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint("state IN ('active', 'finished', 'stopped')",
                           name=op.f("ck_sequence_enrollment_state")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE",
                                name=op.f("fk_sequence_enrollment_subscriber_id_subscriber")),
        sa.PrimaryKeyConstraint("subscriber_id", "sequence", name=op.f("pk_sequence_enrollment")),
    )
    op.create_index("ix_sequence_enrollment_state", "sequence_enrollment",
                    ["sequence", "state", "ended_at"])
    # The plan's progress so far, as the plan's enrollment: everyone confirmed once
    # or with a plan email. "active" even for those who had every step: the worker
    # marks them finished, dated by their last plan email, when it next looks.
    op.execute(
        "INSERT INTO sequence_enrollment (subscriber_id, sequence, state, started_at) "
        "SELECT s.id, 'plan', 'active', COALESCE(s.confirmed_at, s.created_at) FROM subscriber s "
        "WHERE s.confirmed_at IS NOT NULL OR EXISTS (SELECT 1 FROM delivery d "
        "WHERE d.subscriber_id = s.id AND d.kind = 'drip')")
    # Everyone confirmed from the beginning of time counts for the plan (other
    # sequences that start on confirming take only people confirmed after they appear).
    op.execute("INSERT INTO app_state (key, value) VALUES "
               "('sequence_seen:plan', '1970-01-01T00:00:00+00:00')")


def downgrade() -> None:
    op.execute("DELETE FROM app_state WHERE key LIKE 'sequence_seen:%' "
               "OR key LIKE 'sequence_mark:%'")
    op.drop_index("ix_sequence_enrollment_state", table_name="sequence_enrollment")
    op.drop_table("sequence_enrollment")
