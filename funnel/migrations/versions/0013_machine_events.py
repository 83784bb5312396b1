"""Machine opens and scanner clicks, kept apart from people's events.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "machine_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("provider_event_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("step_slug", sa.String(length=100), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.CheckConstraint("kind IN ('open', 'click')", name=op.f("ck_machine_event_kind")),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"], ondelete="CASCADE",
                                name=op.f("fk_machine_event_delivery_id_delivery")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_event")),
        sa.UniqueConstraint("provider_event_id", name=op.f("uq_machine_event_provider_event_id")),
    )
    op.create_index(op.f("ix_machine_event_delivery_id"), "machine_event", ["delivery_id"])
    op.create_index(op.f("ix_machine_event_at"), "machine_event", ["at"])


def downgrade() -> None:
    op.drop_table("machine_event")
