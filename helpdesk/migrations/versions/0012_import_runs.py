"""import runs: an import's summary is a page of its own (POST-redirect-GET), its form's key
imports once

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'import_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=True),
        sa.Column('credential_id', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rows', sa.JSON(), nullable=False),
        sa.Column('queued', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['credential_id'], ['credential.id'],
                                name=op.f('fk_import_run_credential_id_credential'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_run')),
        sa.UniqueConstraint('key', name=op.f('uq_import_run_key')),
    )
    with op.batch_alter_table('import_run') as batch_op:
        batch_op.create_index(batch_op.f('ix_import_run_credential_id'), ['credential_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('import_run') as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_run_credential_id'))
    op.drop_table('import_run')
