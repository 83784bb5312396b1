"""The marketer's control room: browser imports, arrival path, consent source

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JOB_STATES = ("uploaded", "previewed", "queued", "running", "done", "failed")
VIA = ("article", "direct")


def upgrade() -> None:
    op.create_table(
        'import_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('filename', sa.String(length=200), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('mapping', sa.Text(), nullable=True),
        sa.Column('confirmed', sa.Boolean(), nullable=False),
        sa.Column('consent_source', sa.String(length=300), nullable=True),
        sa.Column('created_by', sa.String(length=254), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rows_total', sa.Integer(), nullable=True),
        sa.Column('rows_done', sa.Integer(), nullable=True),
        sa.Column('report', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('optin_requested_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('optin_sent', sa.Integer(), nullable=False, server_default='0'),
        sa.CheckConstraint("state IN ('" + "', '".join(JOB_STATES) + "')",
                           name=op.f('ck_import_job_state')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_job')),
        sa.UniqueConstraint('public_id', name=op.f('uq_import_job_public_id')),
    )
    op.create_index('ix_import_job_state', 'import_job', ['state'])
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via', sa.String(length=16), nullable=True))
        batch_op.create_check_constraint('via', "via IS NULL OR via IN ('article', 'direct')")
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('arrived_via', sa.String(length=16), nullable=True))
        batch_op.create_check_constraint(
            'arrived_via', "arrived_via IS NULL OR arrived_via IN ('article', 'direct')")
    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        # Who stated consent on someone's behalf (an import, a confirmation by hand).
        batch_op.add_column(sa.Column('stated_by', sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.drop_column('stated_by')
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_constraint('ck_subscriber_arrived_via', type_='check')
        batch_op.drop_column('arrived_via')
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_constraint('ck_visit_via', type_='check')
        batch_op.drop_column('via')
    op.drop_index('ix_import_job_state', table_name='import_job')
    op.drop_table('import_job')
