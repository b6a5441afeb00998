"""share links as records: who made each, until when it works, revocation, every view

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'share_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.String(length=320), nullable=True),
        sa.Column('views', sa.Integer(), nullable=False),
        sa.Column('last_viewed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_share_link')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_share_link_token_hash')),
    )
    op.create_index(op.f('ix_share_link_domain'), 'share_link', ['domain'])
    op.create_table(
        'share_view',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('share_link_id', sa.Integer(), nullable=False),
        sa.Column('viewed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['share_link_id'], ['share_link.id'],
                                name=op.f('fk_share_view_share_link_id_share_link'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_share_view')),
    )
    op.create_index(op.f('ix_share_view_share_link_id'), 'share_view', ['share_link_id'])


def downgrade():
    op.drop_table('share_view')
    op.drop_table('share_link')
