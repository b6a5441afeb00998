"""Lists over a big database: a million recipients across a thousand credentials.

Through the real app (Flask's test client, signed in, so auth and templates count): a
credential's page filtered by status, the API's recipients at a domain (with a Bearer token),
and the lookup page. Baseline, timed in the same run: the bare SQL query that returns the same
rows (the same filters, order and LIMIT), run with the database driver directly. Goal: the app's
median under three times the bare query's.

    python bench/listing.py [--recipients 1000000] [--credentials 1000] [--repeat 30]
                            [--database-url postgresql://postgres@127.0.0.1/hd_listing]

The data is generated in bulk (executemany on SQLite, COPY on PostgreSQL) and kept: a SQLite
file under /tmp by default, reused by the next run of the same size. A PostgreSQL database given
here is emptied and filled again when it does not hold data of the size asked for: name one of
its own.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentile, timings  # noqa: E402

GOAL_RATIO = 3.0
BIG_PROVIDERS = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com",
                 "gmx.de", "web.de", "orange.fr", "aol.com", "proton.me")
FIRST_NAMES = ("Ada", "Bram", "Chloé", "Dmitri", "Emeka", "Fatima", "Gao", "Hanna", "Ines",
               "Jonas", "Kaito", "Lena", "Mateo", "Nadia", "Oren", "Priya", "Quinn", "Rosa",
               "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe")
LAST_NAMES = ("Adeyemi", "Berger", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat",
              "Ivanova", "Jensen", "Kowalski", "Lopez", "Müller", "Novak", "Okafor", "Petrov",
              "Quispe", "Rossi", "Schmidt", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz",
              "Zhang")
# How often each status shows in the generated data.
STATUS_WEIGHTS = {"opened": 55, "not_opened": 22, "bounced": 8, "sending": 5, "not_sent": 6,
                  "not_provided": 4}
AGENT = "bench-agent@issuer.example"


def company_domain(k: int) -> str:
    return f"company{k}.example"


def generate(recipients: int, credentials: int, seed: int = 7):
    """The credential rows and, lazily, the recipient rows (as column dicts)."""
    from helpdesk.models import CredentialState, utcnow

    rng = random.Random(seed)
    now = utcnow()
    companies = max(1, recipients // 200)
    credential_rows = [{"id": i + 1, "title": f"Course certificate {i + 1}",
                        "state": CredentialState.published, "scheduled_at": None,
                        "send_email": True, "created_at": now - timedelta(days=60),
                        "published_at": now - timedelta(days=30)}
                       for i in range(credentials)]
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())

    def recipient_rows():
        per_credential = -(-recipients // credentials)
        for i in range(recipients):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            status = rng.choices(statuses, weights)[0]
            # Four in ten at the big mailbox providers, the others at their company.
            domain = (rng.choice(BIG_PROVIDERS) if rng.random() < 0.4
                      else company_domain(rng.randrange(companies)))
            email = None if status == "not_provided" else f"{first}.{last}{i}@{domain}".lower()
            changed = now - timedelta(seconds=rng.randrange(30 * 86400))
            yield {"id": i + 1, "credential_id": i // per_credential + 1,
                   "name": f"{first} {last}", "email": email,
                   "email_domain": domain if email else None, "email_error": None,
                   "typo_dismissed_for": None, "status": status, "nudges": 0,
                   "created_at": changed - timedelta(days=1), "updated_at": changed}

    return credential_rows, recipient_rows()


def bulk_load(connection, table, rows, chunk: int = 50_000) -> None:
    """Rows into a table with the driver itself: COPY on PostgreSQL, executemany on SQLite;
    values go through the columns' own bind processors (enums, UTC datetimes)."""
    dialect = connection.dialect
    names = [c.name for c in table.columns]
    processors = [table.c[n].type.bind_processor(dialect) for n in names]

    def as_tuple(row):
        return tuple(p(row[n]) if p else row[n] for n, p in zip(names, processors))

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

    from helpdesk.auth import create_user
    from helpdesk.models import Credential, Recipient, User, db

    with app.app_context():
        db.create_all()
        have = (db.session.scalar(select(func.count()).select_from(Recipient)),
                db.session.scalar(select(func.count()).select_from(Credential)))
        ready = db.session.scalar(select(User.id).where(User.email == AGENT)) is not None
        if have == (recipients, credentials) and ready:
            return False
        db.session.remove()
        db.drop_all()
        db.create_all()
        credential_rows, recipient_rows = generate(recipients, credentials)
        table = Recipient.__table__
        with db.engine.begin() as connection:
            # Indexes built once at the end (a sort) rather than updated row by row.
            for index in table.indexes:
                index.drop(connection)
            bulk_load(connection, Credential.__table__, credential_rows)
            bulk_load(connection, table, recipient_rows)
            for index in table.indexes:
                index.create(connection)
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('recipient', 'id'), "
                    "(SELECT max(id) FROM recipient))")
                connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('credential', 'id'), "
                    "(SELECT max(id) FROM credential))")
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("VACUUM ANALYZE recipient")  # what autovacuum would do
        create_user(AGENT, "bench-password", "agent")
        return True


# --- the cases: one page of the app and the bare query that gives the same rows ---------------

RECIPIENT_COLUMNS = ("id, credential_id, name, email, email_domain, email_error, "
                     "typo_dismissed_for, status, nudges, created_at, updated_at")


def like_contains(q: str) -> str:
    return "%" + q.lower().replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


def cases(app, token: str, credentials: int) -> list[tuple[str, str, dict, str, tuple]]:
    """(what, app path, request headers, bare SQL with ``{p}`` for a parameter, parameters)."""
    from sqlalchemy import func, select

    from helpdesk.models import Recipient, db

    with app.app_context():
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
    # An address or a domain is looked up through indexes (lower(email) and email_domain);
    # other text also reads every name and address.
    lookup_by_index_sql = (f"SELECT {RECIPIENT_COLUMNS} FROM recipient "
                           "WHERE lower(email) BETWEEN {p} AND {p} OR email_domain = {p} "
                           "ORDER BY updated_at DESC, id DESC LIMIT 50")
    lookup_text_sql = (f"SELECT {RECIPIENT_COLUMNS} FROM recipient "
                       "WHERE lower(email) BETWEEN {p} AND {p} OR email_domain = {p} "
                       "OR lower(name) LIKE {p} ESCAPE '/' OR lower(email) LIKE {p} ESCAPE '/' "
                       "ORDER BY updated_at DESC, id DESC LIMIT 50")
    name = "kowalski"
    return [
        ("credential page, status=bounced", f"/credentials/{credential_id}?status=bounced", {},
         f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE credential_id = {{p}} "
         f"AND status = {{p}} ORDER BY name, id LIMIT {page}", (credential_id, "bounced")),
        (f"API recipients, domain={company}", f"/api/v1/recipients?domain={company}", bearer,
         f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE email_domain = {{p}} "
         f"ORDER BY id LIMIT {page}", (company,)),
        (f"API recipients, domain={biggest}", f"/api/v1/recipients?domain={biggest}", bearer,
         f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE email_domain = {{p}} "
         f"ORDER BY id LIMIT {page}", (biggest,)),
        ("lookup, an address", f"/lookup?q={someone}", {}, lookup_by_index_sql,
         (someone.lower(), someone.lower() + "\U0010ffff", someone.lower())),
        (f"lookup, domain {company}", f"/lookup?q={company}", {}, lookup_by_index_sql,
         (company, company + "\U0010ffff", company)),
        (f"lookup, a name ({name})", f"/lookup?q={name}", {}, lookup_text_sql,
         (name, name + "\U0010ffff", name, like_contains(name), like_contains(name))),
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


def measure(client, path, headers, run_bare, sql, params, repeat: int, budget: float):
    def app_call():
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: "
                             f"{response.get_data(as_text=True)[:300]}")

    def bare_call():
        run_bare(sql, params)

    # Slow cases (a scan of every row) get fewer repeats, so that a run stays within minutes.
    start = time.perf_counter()
    app_call()
    bare_call()
    once = time.perf_counter() - start
    n = max(5, min(repeat, int(budget / max(once, 1e-6))))
    app_samples, bare_samples = [], []
    for _ in range(n):  # interleaved, so a busy moment of the machine hits both alike
        app_samples += timings(app_call, 1, warmup=0)
        bare_samples += timings(bare_call, 1, warmup=0)
    return app_samples, bare_samples, len(run_bare(sql, params))


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

    cached = Path(tempfile.gettempdir()) / (f"hd-bench-listing-{args.recipients}-"
                                            f"{args.credentials}.db")
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
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"listing on {backend}: {args.recipients:,} recipients across {args.credentials:,} "
          f"credentials ({prepared}); {machine()}")
    print(f"  {'query':44} {'app median':>10} {'app p95':>9} {'bare median':>11} "
          f"{'bare p95':>9} {'rows':>5} {'ratio':>6}")
    worst = 0.0
    for what, path, headers, sql, params in cases(app, token, args.credentials):
        app_samples, bare_samples, rows = measure(client, path, headers, run_bare, sql, params,
                                                  args.repeat, args.budget)
        ratio = statistics.median(app_samples) / statistics.median(bare_samples)
        worst = max(worst, ratio)
        print(f"  {what:44} {ms(statistics.median(app_samples))} "
              f"{ms(percentile(app_samples, 0.95), 9)} {ms(statistics.median(bare_samples), 11)} "
              f"{ms(percentile(bare_samples, 0.95), 9)} {rows:5d} {ratio:6.2f}")
    connection.close()
    met = worst < GOAL_RATIO
    print(f"  worst ratio {worst:.2f} (goal < {GOAL_RATIO:g}: {'met' if met else 'NOT met'}); "
          "times in ms, each case's app and bare runs interleaved")
    return 0


def ms(seconds: float, width: int = 10) -> str:
    return f"{seconds * 1000:{width}.2f}"


if __name__ == "__main__":
    sys.exit(main())
