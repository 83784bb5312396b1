"""Email revisions: every save of an email file from the browser's editor.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=254), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('saved', 'draft', 'restored')",
                           name=op.f("ck_email_revision_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_revision")),
    )
    op.create_index("ix_email_revision_path", "email_revision", ["path", "id"])


def downgrade() -> None:
    op.drop_index("ix_email_revision_path", table_name="email_revision")
    op.drop_table("email_revision")
