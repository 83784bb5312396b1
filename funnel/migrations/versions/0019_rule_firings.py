"""The coach's rules: one row per rule fired per subscriber (issue 25).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_firing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=100), server_default="", nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE",
                                name=op.f("fk_rule_firing_subscriber_id_subscriber")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_firing")),
        sa.UniqueConstraint("rule", "subscriber_id", "trigger", name="uq_rule_firing_once"),
    )
    op.create_index("ix_rule_firing_rule_at", "rule_firing", ["rule", "fired_at"])
    op.create_index("ix_rule_firing_subscriber", "rule_firing", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_rule_firing_subscriber", table_name="rule_firing")
    op.drop_index("ix_rule_firing_rule_at", table_name="rule_firing")
    op.drop_table("rule_firing")
