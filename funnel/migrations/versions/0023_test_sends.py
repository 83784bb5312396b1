"""Test sends go through the worker: one row per test an admin asks for.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# A frozen copy of funnel.core.states.TestSendState as of this migration.
STATES = ("queued", "sending", "sent", "failed")


def upgrade() -> None:
    op.create_table(
        "test_send",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("email_path", sa.String(length=300), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("broadcast", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.CheckConstraint("state IN ({})".format(", ".join(repr(s) for s in STATES)),
                           name=op.f("ck_test_send_state")),
        sa.ForeignKeyConstraint(["admin_id"], ["admin_user.id"], ondelete="CASCADE",
                                name=op.f("fk_test_send_admin_id_admin_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_send")),
    )
    op.create_index("ix_test_send_state", "test_send", ["state", "requested_at"])
    op.create_index("ix_test_send_admin", "test_send", ["admin_id", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_test_send_admin", table_name="test_send")
    op.drop_index("ix_test_send_state", table_name="test_send")
    op.drop_table("test_send")
