"""Counts of recipients per status, per domain and per credential, kept by the database itself:
pages read these small tables instead of counting a million recipients on every view.

Triggers on ``recipient`` (the same on both databases, written for each) append a row
``(key, status, +1)`` for a recipient added or moved into a status, domain or credential, and
``(key, status, -1)`` for one removed or moved out, in the statement that changes the
recipient. Nothing is ever updated in place: two transactions that change recipients of the
same domain never wait for each other, so the lock order (``helpdesk.ingest``) is untouched.
A count is the sum of its key's rows. ``fold`` replaces the rows appended so far by one row
per key, now and then (a periodic task), so the sums read as many rows as there are keys plus
what changed since the last fold, never the whole history."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, insert

from .models import CredentialTally, DialectDDL, DomainTally, Recipient, db

# The columns each tally is keyed by, besides the status.
TALLIES = {DomainTally.__table__: "email_domain", CredentialTally.__table__: "credential_id"}


def _rows(table: str, key: str, row: str, n: int) -> str:
    """The SQL appending ``n`` for the ``row`` (``NEW`` or ``OLD``) of a recipient."""
    return (f"INSERT INTO {table} ({key}, status, n) SELECT {row}.{key}, {row}.status, {n} "
            f"WHERE {row}.{key} IS NOT NULL;")


def _appends(row: str, n: int) -> str:
    return " ".join(_rows(t.name, key, row, n) for t, key in TALLIES.items())


# An update moves a recipient only when one of these changed.
_MOVED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}"
                     for c in ("status", "email_domain", "credential_id"))

DDL = {
    "postgresql": (
        "CREATE OR REPLACE FUNCTION recipient_tally() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        f"IF TG_OP IN ('UPDATE', 'DELETE') THEN {_appends('OLD', -1)} END IF; "
        f"IF TG_OP IN ('UPDATE', 'INSERT') THEN {_appends('NEW', 1)} END IF; "
        "RETURN NULL; END $$",
        "CREATE OR REPLACE TRIGGER recipient_tally_insert AFTER INSERT ON recipient "
        "FOR EACH ROW EXECUTE FUNCTION recipient_tally()",
        "CREATE OR REPLACE TRIGGER recipient_tally_delete AFTER DELETE ON recipient "
        "FOR EACH ROW EXECUTE FUNCTION recipient_tally()",
        "CREATE OR REPLACE TRIGGER recipient_tally_update AFTER UPDATE OF status, email_domain, "
        f"credential_id ON recipient FOR EACH ROW WHEN ({_MOVED}) "
        "EXECUTE FUNCTION recipient_tally()",
    ),
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS recipient_tally_insert AFTER INSERT ON recipient BEGIN "
        f"{_appends('NEW', 1)} END",
        "CREATE TRIGGER IF NOT EXISTS recipient_tally_delete AFTER DELETE ON recipient BEGIN "
        f"{_appends('OLD', -1)} END",
        "CREATE TRIGGER IF NOT EXISTS recipient_tally_update AFTER UPDATE OF status, "
        "email_domain, credential_id ON recipient "
        f"WHEN {_MOVED.replace('IS DISTINCT FROM', 'IS NOT')} "
        f"BEGIN {_appends('OLD', -1)} {_appends('NEW', 1)} END",
    ),
}
DROP = {
    "postgresql": ("DROP TRIGGER IF EXISTS recipient_tally_insert ON recipient",
                   "DROP TRIGGER IF EXISTS recipient_tally_delete ON recipient",
                   "DROP TRIGGER IF EXISTS recipient_tally_update ON recipient",
                   "DROP FUNCTION IF EXISTS recipient_tally()"),
    "sqlite": ("DROP TRIGGER IF EXISTS recipient_tally_insert",
               "DROP TRIGGER IF EXISTS recipient_tally_delete",
               "DROP TRIGGER IF EXISTS recipient_tally_update"),
}
# The recipients there before the triggers (a migration): counted once.
BACKFILL = tuple(
    f"INSERT INTO {t.name} ({key}, status, n) SELECT {key}, status, count(*) FROM recipient "
    f"WHERE {key} IS NOT NULL GROUP BY {key}, status" for t, key in TALLIES.items())


# The tallies' tables may come after the recipients': both databases resolve them when the
# triggers run.
TRIGGERS = DialectDDL(Recipient.__table__, DDL, DROP)


def fold() -> int:
    """Replace each tally's rows by one row per key and status (those that sum to nought
    dropped), in one transaction. Returns how many rows were folded. Exact while recipients
    change: it sums only the rows its own DELETE removed, so a row appended meanwhile stays
    as it is, and a second fold at the same time finds those rows gone."""
    folded = 0
    try:
        for table, key in TALLIES.items():
            removed = db.session.execute(
                delete(table).returning(table.c[key], table.c.status, table.c.n)).all()
            sums: Counter = Counter()
            for k, status, n in removed:
                sums[k, status] += n
            rows = [{key: k, "status": status, "n": n} for (k, status), n in sums.items() if n]
            if rows:
                db.session.execute(insert(table), rows)
            folded += len(removed)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return folded
