"""The coach's studio: admin roles and time zones, and subject tests on broadcasts.

Every admin account that exists before this migration becomes an owner (the
server default), so nobody loses access on upgrade.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# Frozen copies of the constants in funnel.core.states as of this migration.
ROLES = ("owner", "editor", "viewer")
TEST_STATES = ("testing", "decided", "skipped")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("admin_user") as batch:
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=False,
                                   server_default="owner"))
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.create_check_constraint("role", _in("role", ROLES))
    with op.batch_alter_table("broadcast") as batch:
        batch.add_column(sa.Column("test_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("test_subjects", sa.Text(), nullable=True))
        batch.add_column(sa.Column("test_sample", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_wait_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_decide_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("test_winner", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_note", sa.Text(), nullable=True))
        batch.create_check_constraint("test_state",
                                      "test_state IS NULL OR " + _in("test_state", TEST_STATES))
    with op.batch_alter_table("broadcast_recipient") as batch:
        batch.add_column(sa.Column("variant", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sampled", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("broadcast_recipient") as batch:
        batch.drop_column("sampled")
        batch.drop_column("variant")
    with op.batch_alter_table("broadcast") as batch:
        batch.drop_constraint(batch.f("ck_broadcast_test_state"), type_="check")
        for name in ("test_note", "test_winner", "test_decide_at", "test_wait_seconds",
                     "test_sample", "test_subjects", "test_state"):
            batch.drop_column(name)
    with op.batch_alter_table("admin_user") as batch:
        batch.drop_constraint(batch.f("ck_admin_user_role"), type_="check")
        batch.drop_column("timezone")
        batch.drop_column("role")
