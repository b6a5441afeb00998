"""recipients carry their cause, its evidence and a typo suggestion

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Plain ALTER TABLEs, no batch: SQLite's batch mode copies the table and would lose the
# expression index on lower(email). Existing recipients start as "not sent" until
# ``helpdesk causes refresh`` diagnoses them from their events.


def upgrade():
    op.add_column('recipient', sa.Column('cause', sa.String(length=20), nullable=False,
                                         server_default='not_sent'))
    op.add_column('recipient', sa.Column('evidence', sa.String(length=500), nullable=True))
    op.add_column('recipient', sa.Column('typo_suggestion', sa.String(length=320),
                                         nullable=True))
    op.create_index('ix_recipient_cause', 'recipient', ['cause', 'id'], unique=False)
    op.create_index('ix_recipient_domain_cause', 'recipient', ['email_domain', 'cause'],
                    unique=False)


def downgrade():
    op.drop_index('ix_recipient_domain_cause', table_name='recipient')
    op.drop_index('ix_recipient_cause', table_name='recipient')
    op.drop_column('recipient', 'typo_suggestion')
    op.drop_column('recipient', 'evidence')
    op.drop_column('recipient', 'cause')
