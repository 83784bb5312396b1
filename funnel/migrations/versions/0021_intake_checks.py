"""The sign-up intake is every front's way in: its ``via`` names the front (the
landing page reached from the article or not, the embedded form, the API), and a
row the worker's checks refuse stays, marked refused with its reason, and is never
mailed.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

VIA = "via IN ('article', 'direct', 'embed', 'api')"
STATE = "state IN ('waiting', 'refused')"


def upgrade() -> None:
    # Rows written before this revision came from the landing page with no via.
    op.execute("UPDATE signup_intake SET via = 'direct' WHERE via IS NULL "
               "OR via NOT IN ('article', 'direct')")
    with op.batch_alter_table("signup_intake", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), server_default="waiting",
                                      nullable=False))
        batch_op.add_column(sa.Column("refused_reason", sa.String(length=200), nullable=True))
        batch_op.create_check_constraint("via", VIA)
        batch_op.create_check_constraint("state", STATE)


def downgrade() -> None:
    with op.batch_alter_table("signup_intake", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_signup_intake_state"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_signup_intake_via"), type_="check")
        batch_op.drop_column("refused_reason")
        batch_op.drop_column("state")
