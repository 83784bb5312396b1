"""Tags on subscribers: when, by what and why each was added (issue 25).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TAG_SOURCES = ("import", "admin", "api", "cli", "rule")


def upgrade() -> None:
    op.create_table(
        "subscriber_tag",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint("source IN (" + ", ".join(f"'{s}'" for s in TAG_SOURCES) + ")",
                           name=op.f("ck_subscriber_tag_source")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE",
                                name=op.f("fk_subscriber_tag_subscriber_id_subscriber")),
        sa.PrimaryKeyConstraint("subscriber_id", "tag", name=op.f("pk_subscriber_tag")),
    )
    op.create_index("ix_subscriber_tag_tag", "subscriber_tag", ["tag", "subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_subscriber_tag_tag", table_name="subscriber_tag")
    op.drop_table("subscriber_tag")
