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
    # Not in batch mode: on SQLite that copies the table and loses its expression index.
    op.add_column('delivery', sa.Column('leased_until', sa.DateTime(timezone=True),
                                        nullable=True))
    op.create_index('ix_delivery_leased_until', 'delivery', ['leased_until'])
    op.create_index('ix_delivery_unanswered', 'delivery', ['sent_at', 'send_due_at'])


def downgrade():
    op.drop_index('ix_delivery_unanswered', table_name='delivery')
    op.drop_index('ix_delivery_leased_until', table_name='delivery')
    op.drop_column('delivery', 'leased_until')
