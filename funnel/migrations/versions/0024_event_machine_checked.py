"""Whether an open or click went through the machine-event check: subject tests
count a checked click as a person's at any moment, and fall back to "not in the
first seconds after sending" only for clicks recorded without the check.

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing rows stay NULL ("not checked"), and adding the
    # column rewrites nothing on either database.
    with op.batch_alter_table("delivery_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("machine_checked", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_event", schema=None) as batch_op:
        batch_op.drop_column("machine_checked")
