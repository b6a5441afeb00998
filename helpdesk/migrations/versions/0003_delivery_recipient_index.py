"""index deliveries by recipient: every status refresh reads them

Revision ID: 0003
Revises: 0002
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(op.f('ix_delivery_recipient_id'), 'delivery', ['recipient_id'])


def downgrade():
    op.drop_index(op.f('ix_delivery_recipient_id'), table_name='delivery')
