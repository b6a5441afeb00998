"""recipients by last change: the recipients view's default order walks an index

Revision ID: 0014
Revises: 0013
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_recipient_updated', 'recipient', ['updated_at', 'id'])


def downgrade():
    op.drop_index('ix_recipient_updated', table_name='recipient')
