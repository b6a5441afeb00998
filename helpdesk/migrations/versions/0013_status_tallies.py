"""status tallies: recipients per status, per domain and per credential, kept by triggers

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

from helpdesk import tallies


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'domain_tally',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email_domain', sa.String(length=255), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_tally')),
    )
    op.create_index('ix_domain_tally_domain_status', 'domain_tally',
                    ['email_domain', 'status', 'n'])
    op.create_table(
        'credential_tally',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('credential_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credential_tally')),
    )
    op.create_index('ix_credential_tally_credential_status', 'credential_tally',
                    ['credential_id', 'status', 'n'])
    # Counted, then kept: the migration runs while nothing else writes.
    for statement in tallies.BACKFILL:
        op.execute(statement)
    tallies.TRIGGERS.create_on(op.get_bind())


def downgrade():
    tallies.TRIGGERS.drop_on(op.get_bind())
    op.drop_table('credential_tally')
    op.drop_table('domain_tally')
