"""newsletter: broadcasts, their recipients, and the plan/newsletter topics

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("wants_plan", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("wants_newsletter", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("archive", sa.Boolean(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("audience_size", sa.Integer(), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_time", sa.String(length=5), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('scheduled', 'sending', 'sent', 'cancelled')",
                           name=op.f("ck_broadcast_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast")),
        sa.UniqueConstraint("slug", name=op.f("uq_broadcast_slug")),
    )
    op.create_table(
        "broadcast_recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('sent', 'paused', 'left', 'cancelled')",
            name=op.f("ck_broadcast_recipient_outcome")),
        sa.ForeignKeyConstraint(["broadcast_id"], ["broadcast.id"], ondelete="CASCADE",
                                name=op.f("fk_broadcast_recipient_broadcast_id_broadcast")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE",
                                name=op.f("fk_broadcast_recipient_subscriber_id_subscriber")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_recipient")),
        sa.UniqueConstraint("broadcast_id", "subscriber_id",
                            name="uq_broadcast_recipient_once"),
    )
    op.create_index("ix_broadcast_recipient_due", "broadcast_recipient", ["due_at"])
    op.create_index("ix_broadcast_recipient_outcome", "broadcast_recipient",
                    ["broadcast_id", "outcome"])
    op.create_index(op.f("ix_broadcast_recipient_subscriber_id"), "broadcast_recipient",
                    ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("broadcast_recipient")
    op.drop_table("broadcast")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("wants_newsletter")
        batch.drop_column("wants_plan")
