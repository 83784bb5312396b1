"""Revocable admin sessions: a per-account session version.

Each admin session cookie carries the version it was made under; logging out
or changing the password raises it, which ends every copy of the cookie.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_user") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("admin_user") as batch:
        batch.drop_column("session_version")
