"""users no longer carry failed sign-ins: the per-account limit counts in the rate limiter's
storage (Redis when configured), so that it holds across processes

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user') as batch_op:
        batch_op.drop_column('first_failure_at')
        batch_op.drop_column('login_failures')


def downgrade():
    with op.batch_alter_table('user') as batch_op:
        batch_op.add_column(sa.Column('login_failures', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('first_failure_at', sa.DateTime(timezone=True),
                                      nullable=True))
