"""name and address search through a trigram index (pg_trgm; SQLite FTS5 trigram), and earlier
addresses found through an index on the deliveries

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

from helpdesk import search


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_delivery_email_lower', 'delivery', [sa.text('lower(email)')])
    search.INDEX.create_on(op.get_bind())


def downgrade():
    search.INDEX.drop_on(op.get_bind())
    op.drop_index('ix_delivery_email_lower', table_name='delivery')
