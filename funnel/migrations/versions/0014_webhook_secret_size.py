"""Room for webhook signing secrets encrypted at rest (a Fernet token is about
170 characters; the plain secret was 50). Secrets already stored in plain text
are sealed by the worker's next pass (funnel/hooks/dispatch.py), which has the
key; a migration does not.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoint") as batch:
        batch.alter_column("secret", existing_type=sa.String(length=100),
                           type_=sa.String(length=400), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoint") as batch:
        batch.alter_column("secret", existing_type=sa.String(length=400),
                           type_=sa.String(length=100), existing_nullable=False)
