"""constraints and dashboard indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

CHECK constraints for every state, action and kind column (values from
funnel.core.states), the indexes the dashboard's queries use, and a nullable
subscriber key on provider events so erasure deletes them by key.
"""
import sqlalchemy as sa
from alembic import op

# The values as they stood at this revision: a migration must not change meaning
# when the constants move on (tests/test_migrations.py compares them with the models).
SUBSCRIBER_STATUSES = ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained')
DELIVERY_STATES = ('queued', 'sending', 'sent', 'retry', 'held', 'failed', 'unknown')
CONSENT_ACTIONS = ('signup', 'confirm', 'withdraw', 'import')
EVENT_KINDS = ('delivered', 'open', 'click', 'bounce', 'dropped', 'spamreport', 'unsubscribe', 'group_unsubscribe', 'blocked')
VISIT_PAGES = ('article', 'landing')


def check_in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.create_index('ix_consent_record_action_at', ['action', 'at'], unique=False)
        batch_op.create_check_constraint('action', check_in('action', CONSENT_ACTIONS))

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_sent_at', ['sent_at'], unique=False)
        batch_op.create_check_constraint('state', check_in('state', DELIVERY_STATES))

    with op.batch_alter_table('delivery_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscriber_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_delivery_event_kind_at', ['kind', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_event_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_delivery_event_subscriber_id_subscriber'), 'subscriber', ['subscriber_id'], ['id'], ondelete='CASCADE')
        batch_op.create_check_constraint('kind', check_in('kind', EVENT_KINDS))

    # Events recorded before this revision name their subscriber only in free text.
    op.execute(
        "UPDATE delivery_event SET subscriber_id = (SELECT s.id FROM subscriber s "
        "WHERE lower(delivery_event.detail) LIKE '%' || s.email || '%' LIMIT 1) "
        "WHERE delivery_id IS NULL AND detail IS NOT NULL"
    )

    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_check_constraint('status', check_in('status', SUBSCRIBER_STATUSES))

    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_at'))
        batch_op.create_index('ix_visit_page_at', ['page', 'at'], unique=False)
        batch_op.create_check_constraint('page', check_in('page', VISIT_PAGES))



def downgrade() -> None:
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_visit_page'), type_='check')
        batch_op.drop_index('ix_visit_page_at')
        batch_op.create_index(batch_op.f('ix_visit_at'), ['at'], unique=False)

    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_subscriber_status'), type_='check')
        batch_op.drop_index('ix_subscriber_status_created')

    with op.batch_alter_table('delivery_event', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_delivery_event_kind'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_delivery_event_subscriber_id_subscriber'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_delivery_event_subscriber_id'))
        batch_op.drop_index('ix_delivery_event_kind_at')
        batch_op.drop_column('subscriber_id')

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_delivery_state'), type_='check')
        batch_op.drop_index('ix_delivery_sent_at')

    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_consent_record_action'), type_='check')
        batch_op.drop_index('ix_consent_record_action_at')

