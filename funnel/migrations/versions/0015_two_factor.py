"""Two-factor sign-in for admin accounts: an encrypted TOTP secret, when it was
turned on, the last time step used (a code works once) and the hashes of the
unused recovery codes.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_user") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(length=400), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recovery_hashes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_user") as batch:
        batch.drop_column("recovery_hashes")
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_secret")
