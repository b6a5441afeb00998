"""an audit log: who fixed, resent, nudged, published, deleted, imported, created or revoked what

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=320), nullable=True),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('credential_id', sa.Integer(), nullable=True),
        sa.Column('recipient_id', sa.Integer(), nullable=True),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry')),
    )
    op.create_index('ix_audit_entry_recipient', 'audit_entry', ['recipient_id', 'id'])
    op.create_index('ix_audit_entry_credential', 'audit_entry', ['credential_id', 'id'])
    op.create_index('ix_audit_entry_action', 'audit_entry', ['action', 'id'])


def downgrade():
    op.drop_table('audit_entry')
