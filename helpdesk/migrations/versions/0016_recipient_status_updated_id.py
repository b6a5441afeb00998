"""recipients by status and last change, then id: a deep keyset page of one status is a seek

Revision ID: 0016
Revises: 0015
"""
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_recipient_status_updated', table_name='recipient')
    op.create_index('ix_recipient_status_updated', 'recipient', ['status', 'updated_at', 'id'])


def downgrade():
    op.drop_index('ix_recipient_status_updated', table_name='recipient')
    op.create_index('ix_recipient_status_updated', 'recipient', ['status', 'updated_at'])
