"""lighter writes per new delivery: partial indexes on delivery.provider_message_id and
delivery.leased_until (null until the send), and on PostgreSQL tally triggers that run once a
statement instead of once a recipient

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa

from helpdesk import tallies


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

COLUMNS = ('provider_message_id', 'leased_until')

# The row triggers of 0013 on PostgreSQL, for the downgrade.
_APPENDS = {row: " ".join(
    f"INSERT INTO {table} ({key}, status, n) SELECT {row}.{key}, {row}.status, {n} "
    f"WHERE {row}.{key} IS NOT NULL;"
    for table, key in (("domain_tally", "email_domain"), ("credential_tally", "credential_id")))
    for row, n in (("OLD", -1), ("NEW", 1))}
ROW_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION recipient_tally() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN IF TG_OP IN ('UPDATE', 'DELETE') THEN {_APPENDS['OLD']} END IF; "
    f"IF TG_OP IN ('UPDATE', 'INSERT') THEN {_APPENDS['NEW']} END IF; RETURN NULL; END $$",
    "CREATE TRIGGER recipient_tally_insert AFTER INSERT ON recipient "
    "FOR EACH ROW EXECUTE FUNCTION recipient_tally()",
    "CREATE TRIGGER recipient_tally_delete AFTER DELETE ON recipient "
    "FOR EACH ROW EXECUTE FUNCTION recipient_tally()",
    "CREATE TRIGGER recipient_tally_update AFTER UPDATE OF status, email_domain, credential_id "
    "ON recipient FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR "
    "OLD.email_domain IS DISTINCT FROM NEW.email_domain OR "
    "OLD.credential_id IS DISTINCT FROM NEW.credential_id) EXECUTE FUNCTION recipient_tally()",
)


def upgrade():
    for column in COLUMNS:
        op.drop_index(f'ix_delivery_{column}', table_name='delivery')
        op.create_index(f'ix_delivery_{column}', 'delivery', [column],
                        sqlite_where=sa.text(f'{column} IS NOT NULL'),
                        postgresql_where=sa.text(f'{column} IS NOT NULL'))
    if op.get_bind().dialect.name == 'postgresql':
        # The counts stay as they are: the new triggers append what changes from now on.
        for statement in tallies.DROP['postgresql'] + tallies.DDL['postgresql']:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for statement in tallies.DROP['postgresql'] + ROW_TRIGGERS:
            op.execute(statement)
    for column in COLUMNS:
        op.drop_index(f'ix_delivery_{column}', table_name='delivery')
        op.create_index(f'ix_delivery_{column}', 'delivery', [column])
