"""delivery events carry a reason code from a closed vocabulary

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('delivery_event') as batch_op:
        batch_op.add_column(sa.Column('reason_code', sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table('delivery_event') as batch_op:
        batch_op.drop_column('reason_code')
