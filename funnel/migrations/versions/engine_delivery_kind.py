"""Delivery kind (drip, broadcast, system) and retry time; held and queued states.

Revision ID: engine
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "engine"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                      server_default="drip"))
        batch_op.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_delivery_subscriber_step", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_subscriber_kind_step",
                                          ["subscriber_id", "kind", "step_slug"])
        batch_op.create_check_constraint(op.f("ck_delivery_kind"), "kind IN ('drip', 'broadcast', 'system')")
        batch_op.create_index("ix_delivery_retry_at", ["retry_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_retry_at")
        batch_op.drop_constraint("ck_delivery_kind", type_="check")
        batch_op.drop_constraint("uq_delivery_subscriber_kind_step", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_subscriber_step",
                                          ["subscriber_id", "step_slug"])
        batch_op.drop_column("retry_at")
        batch_op.drop_column("kind")
