"""Indexes for the dashboard at a million subscribers.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # A trusted extension since PostgreSQL 13: the database's owner may add it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index("ix_subscriber_created_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_subscriber_email_trgm", ["email"], unique=False,
                              postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"})


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriber_email_trgm")
        batch_op.drop_index("ix_subscriber_created_id")
