"""sign-in limits count in the database when there is no Redis, so that every web process
sees the same counts

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'rate_limit_hit',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=500), nullable=False),
        sa.Column('at', sa.Double(), nullable=False),
        sa.Column('expires_at', sa.Double(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_limit_hit')),
    )
    op.create_index('ix_rate_limit_hit_key_at', 'rate_limit_hit', ['key', 'at'])
    op.create_index(op.f('ix_rate_limit_hit_expires_at'), 'rate_limit_hit', ['expires_at'])


def downgrade():
    op.drop_table('rate_limit_hit')
