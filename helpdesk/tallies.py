"""Counts of recipients per status, per domain and per credential, kept by the database itself:
pages read these small tables instead of counting a million recipients on every view.

Triggers on ``recipient`` (the same on both databases, written for each) append a row
``(key, status, +1)`` for a recipient added or moved into a status, domain or credential, and
``(key, status, -1)`` for one removed or moved out, in the statement that changes the
recipient. On PostgreSQL they run once a statement and append one row per key and status that
the statement moved (``+n`` or ``-n``): publishing a thousand recipients appends two rows per
tally, not four thousand; SQLite has row triggers only, and appends per recipient. Nothing is
ever updated in place: two transactions that change recipients of the same domain never wait
for each other, so the lock order (``helpdesk.ingest``) is untouched.
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

def _moved(table: str, key: str, sources: str) -> str:
    """The SQL appending, for a statement's ``sources`` (transition tables with their sign),
    the recipients it moved into or out of each key and status."""
    rows = " UNION ALL ".join(f"SELECT {key} AS k, status, {sign} AS n FROM {source}"
                              for source, sign in sources)
    return (f"INSERT INTO {table} ({key}, status, n) SELECT k, status, sum(n) FROM ({rows}) "
            "AS moved WHERE k IS NOT NULL GROUP BY k, status HAVING sum(n) <> 0;")


def _statement_appends(sources) -> str:
    return " ".join(_moved(t.name, key, sources) for t, key in TALLIES.items())


# What each operation's trigger reads: the rows it removed (-1) and those it added (+1). An
# update that moved nothing sums to nought and appends nothing.
_SOURCES = {"INSERT": [("new_rows", 1)], "DELETE": [("old_rows", -1)],
            "UPDATE": [("old_rows", -1), ("new_rows", 1)]}
_REFERENCING = {"INSERT": "NEW TABLE AS new_rows", "DELETE": "OLD TABLE AS old_rows",
                "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}

DDL = {
    "postgresql": (
        "CREATE OR REPLACE FUNCTION recipient_tally() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        + " ".join(f"{'IF' if i == 0 else 'ELSIF'} TG_OP = '{op}' THEN "
                   f"{_statement_appends(sources)}" for i, (op, sources) in
                   enumerate(_SOURCES.items()))
        + " END IF; RETURN NULL; END $$",
        # A transition table rules out a column list (UPDATE OF) and a WHEN on the rows.
        *(f"CREATE OR REPLACE TRIGGER recipient_tally_{op.lower()} AFTER {op} ON recipient "
          f"REFERENCING {_REFERENCING[op]} FOR EACH STATEMENT EXECUTE FUNCTION recipient_tally()"
          for op in _SOURCES),
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
