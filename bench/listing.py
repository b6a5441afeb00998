"""Lists over a big database: a million recipients across a thousand credentials.

Through the real app (Flask's test client, signed in, so auth and templates count): a
credential's page filtered by status, the API's recipients at a domain (with a Bearer token),
the lookup page, and the recipients view across credentials (its first page, a deep keyset page
and the name search). Two baselines, timed in the same run, interleaved: the bare SQL query that
returns the same rows (the same filters, order and LIMIT, through the same indexes), run with the
database driver directly, and a minimal Flask view running that query and rendering the same
rows as a plain table (Flask, Jinja and the test client without anything of helpdesk). Goal: the
app's median under three times the bare query's.

The name search's own statement, caught as the app sends it, is shown with its query plan
(``EXPLAIN ANALYZE`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite): through the trigram
indexes, not a scan of the table.

    python bench/listing.py [--recipients 1000000] [--credentials 1000] [--repeat 30]
                            [--database-url postgresql://postgres@127.0.0.1/hd_listing]

The data is generated in bulk (executemany on SQLite, COPY on PostgreSQL; the indexes, the
trigram index included, built once at the end) and kept: a SQLite file under /tmp by default,
reused by the next run of the same size. A PostgreSQL database given here is emptied and filled
again when it does not hold data of the size and version asked for: name one of its own.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentile, timings  # noqa: E402

GOAL_RATIO = 3.0
BIG_PROVIDERS = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com",
                 "gmx.de", "web.de", "orange.fr", "aol.com", "proton.me")
FIRST_NAMES = ("Ada", "Bram", "Chloé", "Dmitri", "Emeka", "Fatima", "Gao", "Hanna", "Ines",
               "Jonas", "Kaito", "Lena", "Mateo", "Nadia", "Oren", "Priya", "Quinn", "Rosa",
               "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe")
# Family names as two parts (Kowal + ski), 900 of them: a family name is shared by about one
# recipient in a thousand, as in a real list, and a full name by a few dozen.
NAME_STARTS = ("Adey", "Berg", "Cost", "Dub", "Erik", "Fisch", "Garc", "Horv", "Ivan", "Jens",
               "Kowal", "Lop", "Müll", "Nov", "Oka", "Petr", "Quisp", "Ross", "Schm", "Tan",
               "Ued", "Varg", "Web", "Xav", "Yilm", "Zhan", "Moret", "Lind", "Sato", "Brun")
NAME_ENDS = ("ski", "er", "emi", "ois", "sen", "ova", "ez", "idt", "aka", "ani", "ström", "uez",
             "ic", "ak", "etti", "ham", "mann", "oto", "elli", "ard", "escu", "yan", "oglu",
             "aite", "berg", "wicz", "ides", "ssen", "quist", "ovic")
DATA_VERSION = 3  # bumped when the generated data changes: a cached database is made again
# How often each status shows in the generated data, and the cause each gets.
STATUS_WEIGHTS = {"opened": 55, "not_opened": 22, "bounced": 8, "sending": 5, "not_sent": 6,
                  "not_provided": 4}
CAUSE_OF = {"opened": "opened", "not_opened": "not_opened", "bounced": "mailbox_unknown",
            "sending": "sending", "not_sent": "not_sent", "not_provided": "no_address"}
SEARCHED_NAME = "kowalski"  # a family name: about a thousand recipients
SEARCHED_FULL_NAME = "lena kowalski"  # a full name: a few dozen
AGENT = "bench-agent@issuer.example"


def company_domain(k: int) -> str:
    return f"company{k}.example"


def generate(recipients: int, credentials: int, seed: int = 7):
    """The credential rows and, lazily, the recipient rows (as column dicts)."""
    from helpdesk.models import CredentialState, utcnow

    rng = random.Random(seed)
    now = utcnow()
    companies = max(1, recipients // 200)
    credential_rows = [{"id": i + 1, "title": f"Course certificate {i + 1} (data v{DATA_VERSION})",
                        "state": CredentialState.published, "scheduled_at": None,
                        "send_email": True, "created_at": now - timedelta(days=60),
                        "published_at": now - timedelta(days=30)}
                       for i in range(credentials)]
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())

    def recipient_rows():
        per_credential = -(-recipients // credentials)
        for i in range(recipients):
            first, last = rng.choice(FIRST_NAMES), rng.choice(NAME_STARTS) + rng.choice(NAME_ENDS)
            status = rng.choices(statuses, weights)[0]
            # Four in ten at the big mailbox providers, the others at their company.
            domain = (rng.choice(BIG_PROVIDERS) if rng.random() < 0.4
                      else company_domain(rng.randrange(companies)))
            email = None if status == "not_provided" else f"{first}.{last}{i}@{domain}".lower()
            changed = now - timedelta(seconds=rng.randrange(30 * 86400))
            yield {"id": i + 1, "credential_id": i // per_credential + 1,
                   "name": f"{first} {last}", "email": email,
                   "email_domain": domain if email else None, "email_error": None,
                   "typo_dismissed_for": None, "status": status, "cause": CAUSE_OF[status],
                   "evidence": None, "typo_suggestion": None, "nudges": 0,
                   "created_at": changed - timedelta(days=1), "updated_at": changed}

    return credential_rows, recipient_rows()


def bulk_load(connection, table, rows, chunk: int = 50_000) -> None:
    """Rows into a table with the driver itself: COPY on PostgreSQL, executemany on SQLite;
    values go through the columns' own bind processors (enums, UTC datetimes)."""
    dialect = connection.dialect
    names = [c.name for c in table.columns]
    processors = [table.c[n].type.bind_processor(dialect) for n in names]

    # A column the generator does not fill takes its scalar default (or NULL).
    defaults = {c.name: c.default.arg if c.default is not None and c.default.is_scalar else None
                for c in table.columns}

    def as_tuple(row):
        values = (row.get(n, defaults[n]) for n in names)
        return tuple(p(v) if p else v for v, p in zip(values, processors))

    raw = connection.connection.dbapi_connection
    cursor = raw.cursor()
    if dialect.name == "postgresql":
        with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(as_tuple(row))
    else:
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) "
               f"VALUES ({', '.join('?' * len(names))})")
        batch = []
        for row in rows:
            batch.append(as_tuple(row))
            if len(batch) == chunk:
                cursor.executemany(sql, batch)
                batch = []
        cursor.executemany(sql, batch)
    cursor.close()


def ensure_data(app, recipients: int, credentials: int) -> bool:
    """Fill the database unless it already holds data of this size. Returns whether it
    generated."""
    from sqlalchemy import func, select

    from helpdesk import search, tallies
    from helpdesk.auth import create_user
    from helpdesk.models import Credential, Recipient, User, db

    with app.app_context():
        db.create_all()
        have = (db.session.scalar(select(func.count()).select_from(Recipient)),
                db.session.scalar(select(func.count()).select_from(Credential)))
        ready = db.session.scalar(select(User.id).where(User.email == AGENT)) is not None
        current = (db.session.scalar(select(Credential.title).where(Credential.id == 1)) or "") \
            .endswith(f"(data v{DATA_VERSION})")
        if have == (recipients, credentials) and ready and current:
            return False
        db.session.remove()
        db.drop_all()
        db.create_all()
        credential_rows, recipient_rows = generate(recipients, credentials)
        table = Recipient.__table__
        with db.engine.begin() as connection:
            # Indexes built once at the end (a sort) rather than updated row by row; the search
            # index too (its triggers dropped meanwhile; its DDL ends by indexing every row).
            # The status tallies' triggers likewise: the tallies are counted once after.
            dialect = connection.dialect.name
            for statement in (*search.DROP.get(dialect, ()), *tallies.DROP.get(dialect, ())):
                connection.exec_driver_sql(statement)
            for index in table.indexes:
                index.drop(connection)
            bulk_load(connection, Credential.__table__, credential_rows)
            bulk_load(connection, table, recipient_rows)
            for index in table.indexes:
                index.create(connection)
            for statement in (*search.DDL.get(dialect, ()), *tallies.BACKFILL,
                              *tallies.DDL.get(dialect, ())):
                connection.exec_driver_sql(statement)
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('recipient', 'id'), "
                    "(SELECT max(id) FROM recipient))")
                connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('credential', 'id'), "
                    "(SELECT max(id) FROM credential))")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            # What autovacuum (or a periodic ANALYZE) would do: the planner knows the data.
            c.exec_driver_sql("VACUUM ANALYZE recipient" if db.engine.dialect.name == "postgresql"
                              else "ANALYZE")
        create_user(AGENT, "bench-password", "agent")
        return True


# --- the cases: one page of the app and the bare query that gives the same rows ---------------

RECIPIENT_COLUMNS = ("id, credential_id, name, email, email_domain, email_error, "
                     "typo_dismissed_for, status, cause, evidence, nudges, created_at, updated_at")


def like_contains(q: str) -> str:
    return "%" + q.lower().replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


def contains_sql(dialect: str) -> tuple[str, int]:
    """A name or address containing the text, through each database's trigram index, as
    ``helpdesk.search`` writes it: the SQL and how many parameters it takes."""
    if dialect == "postgresql":
        return ("lower(name) LIKE {p} ESCAPE '/' OR lower(email) LIKE {p} ESCAPE '/'", 2)
    return ("id IN (SELECT rowid FROM recipient_search WHERE recipient_search MATCH {p})", 1)


def contains_params(dialect: str, q: str) -> tuple:
    return (like_contains(q),) * 2 if dialect == "postgresql" else ('"' + q + '"',)


@dataclass
class Case:
    what: str
    path: str
    headers: dict
    sql: str  # with {p} for each parameter
    params: tuple


def cases(app, token: str, credentials: int, run_bare) -> list[Case]:
    from sqlalchemy import func, select

    from helpdesk.models import Recipient, db

    with app.app_context():
        dialect = db.engine.dialect.name
        credential_id = credentials // 2 + 1
        # A company's domain (a few hundred recipients) and the biggest mailbox provider.
        company = company_domain(42)
        someone = db.session.scalar(select(Recipient.email).where(
            Recipient.email_domain == company, Recipient.status == "bounced")
            .order_by(Recipient.id).limit(1)) or db.session.scalar(
            select(Recipient.email).where(Recipient.email.is_not(None)).limit(1))
        biggest = db.session.scalar(
            select(Recipient.email_domain).where(Recipient.email_domain.in_(BIG_PROVIDERS))
            .group_by(Recipient.email_domain).order_by(func.count().desc()).limit(1))
    bearer = {"Authorization": f"Bearer {token}"}
    page = app.config["PAGE_SIZE"]
    newest = "ORDER BY updated_at DESC, id DESC"
    # Where a deep page starts: the 50,000th bounced recipient (at most), newest first (a keyset, as the
    # view's "next" links give it), in the driver's own representation of the time.
    bounced = run_bare("SELECT count(*) FROM recipient WHERE status = {p}", ("bounced",))[0][0]
    depth = min(50_000, bounced // 2)
    deep_at, deep_id = run_bare(f"SELECT updated_at, id FROM recipient WHERE status = {{p}} "
                                f"{newest} LIMIT 1 OFFSET {depth}", ("bounced",))[0]
    deep_iso = (deep_at if isinstance(deep_at, datetime) else datetime.fromisoformat(deep_at)) \
        .replace(tzinfo=timezone.utc).isoformat() if not getattr(deep_at, "tzinfo", None) \
        else deep_at.isoformat()
    contains, n = contains_sql(dialect)
    # The lookup and the view's search: the address it starts, the domain it names, or a name
    # or address containing it (helpdesk.queries.search_condition).
    search_sql = (f"SELECT {RECIPIENT_COLUMNS} FROM recipient "
                  f"WHERE lower(email) BETWEEN {{p}} AND {{p}} OR email_domain = {{p}} "
                  f"OR {contains} {newest} LIMIT {{limit}}")

    def search(q: str, limit: int) -> tuple[str, tuple]:
        return (search_sql.replace("{limit}", str(limit)),
                (q, q + "\U0010ffff", q, *contains_params(dialect, q)))

    by_index_sql = (f"SELECT {RECIPIENT_COLUMNS} FROM recipient "
                    f"WHERE lower(email) BETWEEN {{p}} AND {{p}} OR email_domain = {{p}} "
                    f"{newest} LIMIT 50")
    return [
        Case("credential page, status=bounced", f"/credentials/{credential_id}?status=bounced",
             {}, f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE credential_id = {{p}} "
             f"AND status = {{p}} ORDER BY name, id LIMIT {page}", (credential_id, "bounced")),
        Case(f"API recipients, domain={company}", f"/api/v1/recipients?domain={company}", bearer,
             f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE email_domain = {{p}} "
             f"ORDER BY id LIMIT {page}", (company,)),
        Case(f"API recipients, domain={biggest}", f"/api/v1/recipients?domain={biggest}", bearer,
             f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE email_domain = {{p}} "
             f"ORDER BY id LIMIT {page}", (biggest,)),
        Case("lookup, an address", f"/lookup?q={someone}", {}, by_index_sql,
             (someone.lower(), someone.lower() + "\U0010ffff", someone.lower())),
        Case(f"lookup, domain {company}", f"/lookup?q={company}", {}, by_index_sql,
             (company, company + "\U0010ffff", company)),
        Case(f"lookup, a name ({SEARCHED_NAME})", f"/lookup?q={SEARCHED_NAME}", {},
             *search(SEARCHED_NAME, 50)),
        Case("recipients view, first page", "/recipients", {},
             f"SELECT {RECIPIENT_COLUMNS} FROM recipient {newest} LIMIT {page + 1}", ()),
        Case(f"recipients view, bounced, {depth // page:,} pages deep",
             "/recipients?" + urlencode({"status": "bounced", "after": f"{deep_iso}~{deep_id}"}),
             {},
             f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE status = {{p}} AND "
             f"(updated_at < {{p}} OR (updated_at = {{p}} AND id < {{p}})) {newest} "
             f"LIMIT {page + 1}", ("bounced", deep_at, deep_at, deep_id)),
        Case(f"recipients view, search {SEARCHED_NAME}", f"/recipients?q={SEARCHED_NAME}", {},
             *search(SEARCHED_NAME, page + 1)),
        Case(f"recipients view, search {SEARCHED_FULL_NAME}",
             f"/recipients?q={SEARCHED_FULL_NAME.replace(' ', '+')}", {},
             *search(SEARCHED_FULL_NAME, page + 1)),
    ]


def bare_runner(database_url: str):
    """A function running SQL with the driver directly, fetching every row."""
    if database_url.startswith("postgres"):
        import psycopg

        conn = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"),
                               autocommit=True)
        mark = "%s"
    else:
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        mark = "?"

    def run(sql: str, params: tuple) -> list:
        cursor = conn.cursor()
        cursor.execute(sql.format(p=mark), params)
        rows = cursor.fetchall()
        cursor.close()
        return rows

    return run, conn


# The other baseline: Flask and Jinja with nothing of helpdesk, rendering the rows the bare query
# returns as a table (name, address, status, cause, last change), as the app's lists show them.
MINIMAL_PAGE = """<!doctype html><title>Rows</title><table>
{% for r in rows %}<tr><td><a href="/r/{{ r[0] }}">{{ r[2] }}</a></td><td>{{ r[3] or "" }}</td>
<td>{{ r[7] }}</td><td>{{ r[8] }}</td><td>{{ r[12] }}</td></tr>{% endfor %}</table>"""


def minimal_app(run_bare, all_cases: list[Case]):
    from flask import Flask, render_template_string

    minimal = Flask("minimal")

    @minimal.route("/case/<int:n>")
    def rows(n: int):
        case = all_cases[n]
        return render_template_string(MINIMAL_PAGE, rows=run_bare(case.sql, case.params))

    return minimal.test_client()


def measure(client, minimal, n: int, case: Case, run_bare, repeat: int, budget: float):
    def app_call():
        response = client.get(case.path, headers=case.headers)
        if response.status_code != 200:
            raise SystemExit(f"{case.path} answered {response.status_code}: "
                             f"{response.get_data(as_text=True)[:300]}")

    def minimal_call():
        minimal.get(f"/case/{n}").close()

    def bare_call():
        run_bare(case.sql, case.params)

    # Slow cases get fewer repeats, so that a run stays within minutes.
    start = time.perf_counter()
    app_call()
    minimal_call()
    bare_call()
    once = time.perf_counter() - start
    n_runs = max(5, min(repeat, int(budget / max(once, 1e-6))))
    samples: dict[str, list[float]] = {"app": [], "minimal": [], "bare": []}
    for _ in range(n_runs):  # interleaved, so a busy moment of the machine hits all alike
        samples["app"] += timings(app_call, 1, warmup=0)
        samples["minimal"] += timings(minimal_call, 1, warmup=0)
        samples["bare"] += timings(bare_call, 1, warmup=0)
    return samples, len(run_bare(case.sql, case.params))


def search_plan(app, client, path: str) -> tuple[str, list[str]]:
    """The name search's page query as the app sends it (caught on the engine while the page
    is asked for) and the database's plan for it."""
    from sqlalchemy import event

    from helpdesk.models import db

    caught = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM recipient" in statement and "LIMIT" in statement and (
                "recipient_search" in statement or "LIKE" in statement):
            caught.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    statement, parameters = caught[0]
    with app.app_context(), db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) "
            plan = [row[0] for row in connection.exec_driver_sql(explain + statement, parameters)]
        else:
            plan = [row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
    return " ".join(statement.split()), plan


def scans(plan: list[str]) -> bool:
    """Whether a plan reads the whole recipient table."""
    return any("Seq Scan on recipient " in line
               or re.match(r"\s*SCAN recipient(?!\S)(?!.*USING)", line) for line in plan)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--credentials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds at most for one case's repeats")
    parser.add_argument("--database-url", help="PostgreSQL URL (emptied and filled when its "
                        "data is not of this size); default: a SQLite file cached under /tmp")
    args = parser.parse_args(argv)
    if args.recipients < args.credentials:
        parser.error("--recipients must be at least --credentials")

    from helpdesk import create_app
    from helpdesk.auth import create_token
    from helpdesk.models import User, db

    cached = Path(tempfile.gettempdir()) / (f"hd-bench-listing-v{DATA_VERSION}-"
                                            f"{args.recipients}-{args.credentials}.db")
    database_url = args.database_url or f"sqlite:///{cached}"
    workdir = Path(tempfile.mkdtemp(prefix="hd-bench-listing-"))
    app = create_app({"INSTANCE_PATH": str(workdir / "instance"), "SECRET_KEY": "bench-secret",
                      "DATABASE_URL": database_url, "QUEUE_URL": "immediate",
                      "RATELIMIT_ENABLED": False})
    started = time.perf_counter()
    generated = ensure_data(app, args.recipients, args.credentials)
    prepared = (f"generated in {time.perf_counter() - started:.1f} s" if generated
                else "reused")
    with app.app_context():
        agent = db.session.scalar(db.select(User).where(User.email == AGENT))
        token = create_token(agent)
        agent_id = agent.get_id()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = agent_id
        session["_fresh"] = True

    run_bare, connection = bare_runner(database_url)
    all_cases = cases(app, token, args.credentials, run_bare)
    minimal = minimal_app(run_bare, all_cases)
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"listing on {backend}: {args.recipients:,} recipients across {args.credentials:,} "
          f"credentials ({prepared}); {machine()}")
    print(f"  {'query':44} {'app':>8} {'app p95':>8} {'minimal':>8} {'bare':>8} {'bare p95':>8} "
          f"{'rows':>5} {'/bare':>6} {'/minimal':>8}")
    worst = 0.0
    for n, case in enumerate(all_cases):
        samples, rows = measure(client, minimal, n, case, run_bare, args.repeat, args.budget)
        app_ms, minimal_ms, bare_ms = (statistics.median(samples[k]) for k in
                                       ("app", "minimal", "bare"))
        worst = max(worst, app_ms / bare_ms)
        print(f"  {case.what:44} {ms(app_ms)} {ms(percentile(samples['app'], 0.95))} "
              f"{ms(minimal_ms)} {ms(bare_ms)} {ms(percentile(samples['bare'], 0.95))} "
              f"{rows:5d} {app_ms / bare_ms:6.2f} {app_ms / minimal_ms:8.2f}")
    connection.close()
    met = worst < GOAL_RATIO
    print(f"  worst app/bare {worst:.2f} (goal < {GOAL_RATIO:g}: {'met' if met else 'NOT met'}); "
          "medians in ms, each case's app, minimal Flask and bare runs interleaved")
    statement, plan = search_plan(app, client, f"/recipients?q={SEARCHED_NAME}")
    print(f"\nthe name search as the app sends it ({'SCANS the table' if scans(plan) else 'no scan'}):"
          f"\n  {statement}\nits plan:")
    for line in plan:
        print(f"  {line}")
    return 0


def ms(seconds: float, width: int = 8) -> str:
    return f"{seconds * 1000:{width}.2f}"


if __name__ == "__main__":
    sys.exit(main())
