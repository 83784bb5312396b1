"""Who may get the newsletter, counted from a partial index: the newsletters page
at a million readers (a full scan of the list took most of its 638 ms).

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

WHERE = "status = 'confirmed' AND wants_newsletter"


def upgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index("ix_subscriber_newsletter_audience", ["paused_until"], unique=False,
                              postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriber_newsletter_audience")
