"""messages left in a bounce mailbox are remembered, so that they are not read every minute

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('skipped_message',
    sa.Column('mailbox', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('skipped_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('mailbox', 'key', name=op.f('pk_skipped_message'))
    )


def downgrade():
    op.drop_table('skipped_message')
