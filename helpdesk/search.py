"""Finding recipients by a piece of their name or address through an index, on both databases:
a trigram GIN index (``pg_trgm``) on PostgreSQL, an FTS5 table with the trigram tokenizer, kept
in step by triggers, on SQLite. Neither is something SQLAlchemy's metadata can describe, so the
statements live here: run when the tables are created and by migration 0007."""
from __future__ import annotations

from sqlalchemy import Boolean, Select, any_, func, literal_column, or_, select, table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from .models import DialectDDL, Recipient

FTS_TABLE = "recipient_search"
# What the databases hold besides the models' own schema (a migration check leaves them out).
EXTRA_TABLES = frozenset({FTS_TABLE, *(f"{FTS_TABLE}_{part}" for part in
                                       ("data", "idx", "docsize", "config", "content"))})
EXTRA_INDEXES = frozenset({"ix_recipient_name_trgm", "ix_recipient_email_trgm"})
# A trigram index finds a piece of text of at least three characters.
MIN_INDEXED_LENGTH = 3

DDL = {
    "postgresql": (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "CREATE INDEX IF NOT EXISTS ix_recipient_name_trgm ON recipient "
        "USING gin (lower(name) gin_trgm_ops)",
        "CREATE INDEX IF NOT EXISTS ix_recipient_email_trgm ON recipient "
        "USING gin (lower(email) gin_trgm_ops)",
    ),
    "sqlite": (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(name, email, "
        f"content='recipient', content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER IF NOT EXISTS recipient_search_insert AFTER INSERT ON recipient BEGIN "
        f"INSERT INTO {FTS_TABLE}(rowid, name, email) VALUES (new.id, new.name, new.email); END",
        f"CREATE TRIGGER IF NOT EXISTS recipient_search_delete AFTER DELETE ON recipient BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, name, email) "
        f"VALUES ('delete', old.id, old.name, old.email); END",
        f"CREATE TRIGGER IF NOT EXISTS recipient_search_update AFTER UPDATE OF name, email "
        f"ON recipient BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, name, email) "
        f"VALUES ('delete', old.id, old.name, old.email); "
        f"INSERT INTO {FTS_TABLE}(rowid, name, email) VALUES (new.id, new.name, new.email); END",
        # Rows that were there before the index (a migration): index them all once.
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
    ),
}
DROP = {
    "postgresql": ("DROP INDEX IF EXISTS ix_recipient_name_trgm",
                   "DROP INDEX IF EXISTS ix_recipient_email_trgm"),
    "sqlite": ("DROP TRIGGER IF EXISTS recipient_search_insert",
               "DROP TRIGGER IF EXISTS recipient_search_delete",
               "DROP TRIGGER IF EXISTS recipient_search_update",
               f"DROP TABLE IF EXISTS {FTS_TABLE}"),
}


INDEX = DialectDDL(Recipient.__table__, DDL, DROP)


class NameOrAddressContains(ColumnElement):
    """Recipients whose name or address contains ``text``, whatever its case, written for
    each database's index."""

    type = Boolean()
    inherit_cache = False  # the text decides the SQL's shape (short texts scan)
    # A condition in itself: SQLite must not get "… = 1" after it, which hides the OR of
    # indexed terms it sits in from the planner (a scan of the whole table instead).
    _is_implicitly_boolean = True

    def __init__(self, text: str):
        self.text = text


def name_or_address_contains(text: str) -> NameOrAddressContains:
    return NameOrAddressContains(text.strip())


def _scan(text: str):
    return or_(Recipient.name.icontains(text, autoescape=True),
               Recipient.email.icontains(text, autoescape=True))


def _lowered_contains(text: str):
    """lower(column) LIKE '%…%', exactly the expression the trigram GIN indexes are built on
    (``icontains`` is ILIKE on the column itself there, which no index of ours answers)."""
    pattern = "%" + text.lower().replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    return or_(func.lower(Recipient.name).like(pattern, escape="/"),
               func.lower(Recipient.email).like(pattern, escape="/"))


@compiles(NameOrAddressContains)
def _compile_default(element, compiler, **kw) -> str:
    return compiler.process(_lowered_contains(element.text), **kw)


@compiles(NameOrAddressContains, "sqlite")
def _compile_sqlite(element, compiler, **kw) -> str:
    if len(element.text) < MIN_INDEXED_LENGTH:
        return compiler.process(_scan(element.text), **kw)
    phrase = '"' + element.text.replace('"', '""') + '"'  # one FTS5 string: a substring
    fts = table(FTS_TABLE)
    matches = select(literal_column("rowid")).select_from(fts).where(
        literal_column(FTS_TABLE).op("MATCH")(phrase))
    return compiler.process(Recipient.id.in_(matches), **kw)


class InSubquery(ColumnElement):
    """``column IN (subquery)``, written so that it can be one branch of an OR of indexed
    terms: PostgreSQL plans ``IN (subquery)`` inside an OR as a filter over every row (a hashed
    subplan), but ``= ANY(ARRAY(subquery))`` as a seek (the array made once, then an index
    scan for its values, OR-ed with the other indexes' results)."""

    type = Boolean()
    inherit_cache = False
    _is_implicitly_boolean = True

    def __init__(self, column, subquery: Select):
        self.column, self.subquery = column, subquery


def in_subquery(column, subquery: Select) -> InSubquery:
    return InSubquery(column, subquery)


@compiles(InSubquery)
def _compile_in(element, compiler, **kw) -> str:
    return compiler.process(element.column.in_(element.subquery), **kw)


@compiles(InSubquery, "postgresql")
def _compile_in_postgresql(element, compiler, **kw) -> str:
    return compiler.process(
        element.column == any_(func.array(element.subquery.scalar_subquery())), **kw)
