"""a delivery being sent carries its worker's lease

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('delivery') as batch_op:
        batch_op.add_column(sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_delivery_leased_until', ['leased_until'])
        batch_op.create_index('ix_delivery_unanswered', ['sent_at', 'send_due_at'])


def downgrade():
    with op.batch_alter_table('delivery') as batch_op:
        batch_op.drop_index('ix_delivery_unanswered')
        batch_op.drop_index('ix_delivery_leased_until')
        batch_op.drop_column('leased_until')
