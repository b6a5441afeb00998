"""Costs that grow with the work, not with the history.

1. Publishing: a draft credential of N recipients published through ``publishing.publish``
   (deliveries created, queued events recorded, statuses refreshed, sends handed to a queue that
   stores them), at several N. Baseline, timed in the same run: the driver's own
   ``executemany`` of the same delivery rows into a table of the same shape. Goal: within 3× of
   the baseline, and the same cost per recipient at every N.
2. Per-event paths with more and more history stored: a tracking-pixel hit, 10 events and a
   1,000-event batch recorded through ``ingest.record_events``. Goal: the largest history within
   1.5× of the smallest.
3. Pages with the same history (2% of it bounced, a quarter of those at a misspelt mailbox
   domain): the typos page, ``/domains``, the recipients API's first and last page, signed in,
   through the test client. Baseline, timed interleaved in the same run: the bare SQL giving
   the same rows with the driver. Goal: within 3× of it at the largest history.

    python bench/growth.py [--publish 1000,10000,100000] [--publish-rounds 3]
                           [--stored 10000,100000,1000000]
                           [--repeat 20] [--no-pages]
                           [--database-url postgresql://postgres@127.0.0.1/hd_growth]
    python bench/growth.py --tally-cost 6 [--database-url …]   # only what the tallies cost ingest

A PostgreSQL database given here is emptied first: name one of its own. SQLite runs in a
temporary file.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentile  # noqa: E402
from listing import (RECIPIENT_COLUMNS, Case, bare_runner, bulk_load, measure,  # noqa: E402
                     minimal_app)

PUBLISH_GOAL = 3.0
GROWTH_GOAL = 1.5
PAGE_GOAL = 3.0
AGENT = "bench-agent@issuer.example"


def build_app(database_url: str, workdir: Path):
    from helpdesk import create_app

    # The queue stores the send tasks and nothing consumes them: publishing alone is timed.
    return create_app({
        "INSTANCE_PATH": str(workdir / "instance"), "SECRET_KEY": "bench-secret",
        "DATABASE_URL": database_url, "QUEUE_URL": str(workdir / "queue.db"),
        "RATELIMIT_ENABLED": False, "BASE_URL": "http://localhost"})


def complete(table, row: dict) -> dict:
    """A row with every column of the table: the ones not given take their scalar default."""
    out = {}
    for column in table.columns:
        if column.name in row:
            out[column.name] = row[column.name]
        elif column.default is not None and column.default.is_scalar:
            out[column.name] = column.default.arg
        else:
            out[column.name] = None
    return out


def reset_schema() -> None:
    from helpdesk.models import db

    db.session.remove()
    db.drop_all()
    db.create_all()


def fix_sequences(connection) -> None:
    if connection.dialect.name == "postgresql":
        for table in ("credential", "recipient", "delivery", "delivery_event"):
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")


def analyze() -> None:
    from helpdesk.models import db

    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.begin() as c:
            c.exec_driver_sql("ANALYZE")


def count_statements():
    """A context manager counting the statements sent to the database meanwhile."""
    from contextlib import contextmanager

    from sqlalchemy import event

    from helpdesk.models import db

    @contextmanager
    def counting():
        seen = [0]

        def listen(*_args):
            seen[0] += 1

        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            yield seen
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)

    return counting()


# --- 1. publishing --------------------------------------------------------------------------

def load_draft(size: int, first_id: int) -> int:
    """A draft credential with ``size`` recipients, loaded in bulk. Returns its id."""
    from helpdesk.models import Credential, CredentialState, Recipient, db, utcnow

    now = utcnow()
    credential_id = first_id
    with db.engine.begin() as connection:
        bulk_load(connection, Credential.__table__, [complete(Credential.__table__, {
            "id": credential_id, "title": f"{size} certificates", "state": CredentialState.draft,
            "send_email": True, "created_at": now})])
        bulk_load(connection, Recipient.__table__, (complete(Recipient.__table__, {
            "id": first_id * 1_000_000 + i, "credential_id": credential_id,
            "name": f"Recipient {i}", "email": f"r{i}@d{i % 97}.example",
            "email_domain": f"d{i % 97}.example", "status": "not_sent", "nudges": 0,
            "created_at": now, "updated_at": now}) for i in range(size)))
        fix_sequences(connection)
    return credential_id


BASELINE_INDEXES = {"recipient_id", "provider_message_id", "leased_until"}


def baseline_publish(size: int) -> float:
    """The same delivery rows through the driver's executemany into a table like ``delivery``."""
    from sqlalchemy import Column, MetaData, Table

    from helpdesk.models import Delivery, db, new_correlation_id, utcnow

    now = utcnow()
    # The delivery table's columns and keys, without its foreign key, and the column indexes
    # it had when the goal was set (two of them are partial since, and skip a new delivery).
    table = Table("bench_delivery", MetaData(), *(
        Column(c.name, c.type, primary_key=c.primary_key, unique=c.unique,
               index=c.name in BASELINE_INDEXES) for c in Delivery.__table__.columns))
    with db.engine.begin() as connection:
        table.drop(connection, checkfirst=True)
        table.create(connection)
    rows = [complete(table, {"id": None, "recipient_id": i, "email": f"r{i}@d{i % 97}.example",
                             "provider": "smtp", "correlation_id": new_correlation_id(),
                             "status": "sending", "attempts": 0, "kind": "send",
                             "created_at": now, "send_due_at": now}) for i in range(size)]
    names = [c.name for c in table.columns if c.name != "id"]
    dialect = db.engine.dialect
    processors = [table.c[n].type.bind_processor(dialect) for n in names]
    values = [tuple(p(r[n]) if p else r[n] for n, p in zip(names, processors)) for r in rows]
    mark = "%s" if dialect.name == "postgresql" else "?"
    sql = (f"INSERT INTO bench_delivery ({', '.join(names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    start = time.perf_counter()
    with db.engine.begin() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.executemany(sql, values)
        cursor.close()
    elapsed = time.perf_counter() - start
    with db.engine.begin() as connection:
        table.drop(connection)
    return elapsed


def publish_section(app, sizes: list[int], rounds: int) -> None:
    """Each size ``rounds`` times, each publish beside its own baseline (a busy machine moves
    both): the medians, and the median of the ratios."""
    from helpdesk import publishing
    from helpdesk.models import Credential, db

    print(f"  {'recipients':>10} {'publish s':>10} {'ms/recipient':>12} {'statements':>10} "
          f"{'per recipient':>13} {'baseline s':>10} {'ratio':>6}")
    per_recipient, worst = [], 0.0
    with app.app_context():
        reset_schema()
        # Untimed, as a running worker has done before: the statements compiled, the provider
        # loaded, the queue's file open.
        publishing.publish(db.session.get(Credential, load_draft(20, 1)))
        number = 1
        for size in sizes:
            times, baselines, ratios = [], [], []
            for _ in range(rounds):
                number += 1
                credential_id = load_draft(size, number)
                analyze()
                with count_statements() as seen:
                    start = time.perf_counter()
                    queued = publishing.publish(db.session.get(Credential, credential_id))
                    times.append(time.perf_counter() - start)
                if queued != size:
                    raise SystemExit(f"published {queued} of {size}")
                baselines.append(baseline_publish(size))
                ratios.append(times[-1] / baselines[-1])
            elapsed, baseline, ratio = (statistics.median(x) for x in (times, baselines, ratios))
            worst = max(worst, ratio)
            per_recipient.append(elapsed / size)
            print(f"  {size:10,} {elapsed:10.2f} {elapsed / size * 1000:12.3f} {seen[0]:10,} "
                  f"{seen[0] / size:13.4f} {baseline:10.2f} {ratio:6.2f}")
    flat = max(per_recipient) / min(per_recipient)
    print(f"  worst ratio {worst:.2f} (goal <= {PUBLISH_GOAL:g}: "
          f"{'met' if worst <= PUBLISH_GOAL else 'NOT met'}); cost per recipient varies "
          f"{flat:.2f}× between sizes (medians of {rounds})")


# --- 2. per-event paths -----------------------------------------------------------------------

def grow_history(have: int, want: int) -> None:
    """Recipients ``have`` .. ``want`` - 1, each with a delivered delivery and two events."""
    from sqlalchemy import func, select

    from helpdesk import tallies
    from helpdesk.models import (Credential, CredentialState, Delivery, DeliveryEvent,
                                 Recipient, db, utcnow)

    now = utcnow()
    per_credential = 1000
    first_event = (db.session.scalar(select(func.max(DeliveryEvent.id))) or 0) + 1
    db.session.remove()
    with db.engine.begin() as connection:
        first_credential = have // per_credential + 1
        last_credential = (want - 1) // per_credential + 1
        bulk_load(connection, Credential.__table__, (complete(Credential.__table__, {
            "id": c, "title": f"History {c}", "state": CredentialState.published,
            "send_email": True, "created_at": now, "published_at": now})
            for c in range(first_credential, last_credential + 1)))
        bulk_load(connection, Recipient.__table__, (complete(Recipient.__table__, {
            "id": i + 1, "credential_id": i // per_credential + 1, "name": f"Person {i}",
            "nudges": 0, "created_at": now, "updated_at": now, **history_state(i)})
            for i in range(have, want)))
        bulk_load(connection, Delivery.__table__, (complete(Delivery.__table__, {
            "id": i + 1, "recipient_id": i + 1, "email": f"p{i}@c{i % 5000}.example",
            "provider": "smtp", "correlation_id": f"{i:032x}", "status": "not_opened",
            "attempts": 1, "kind": "send", "created_at": now, "send_due_at": now,
            "sent_at": now, "provider_message_id": f"<{i}@bench.example>"})
            for i in range(have, want)))
        bulk_load(connection, DeliveryEvent.__table__, (complete(DeliveryEvent.__table__, {
            "id": first_event + 2 * (i - have) + k, "delivery_id": i + 1, "provider": "smtp",
            "provider_event_id": f"{i:032x}:{kind}", "type": kind,
            "level": "sending" if kind == "queued" else "not_opened", "occurred_at": now,
            "received_at": now, "correlation_id": f"{i:032x}"})
            for i in range(have, want) for k, kind in enumerate(("queued", "accepted"))))
        fix_sequences(connection)
    tallies.fold()  # what the periodic task does
    analyze()


def history_state(i: int) -> dict:
    """Recipient ``i``'s address and state: 2% bounced, a quarter of those (0.5%) at a
    misspelt mailbox domain with the correction stored, as the bounce left them."""
    if i % 200 == 0:
        return {"email": f"p{i}@gmial.com", "email_domain": "gmial.com", "status": "bounced",
                "cause": "typo", "typo_suggestion": f"p{i}@gmail.com",
                "evidence": "550 5.1.2 Host unknown"}
    if i % 50 == 0:
        return {"email": f"p{i}@c{i % 5000}.example", "email_domain": f"c{i % 5000}.example",
                "status": "bounced", "cause": "mailbox_unknown",
                "evidence": "550 5.1.1 No such user"}
    return {"email": f"p{i}@c{i % 5000}.example", "email_domain": f"c{i % 5000}.example",
            "status": "not_opened", "cause": "not_opened"}


def untypo(i: int) -> int:
    """Recipient ``i``, or the next one when ``i`` is at a misspelt domain: an open there would
    make the domain one the installation delivered to, and its typos no typos."""
    return i + 1 if i % 200 == 0 else i


def event_timings(app, stored: int, repeat: int, rng: random.Random) -> dict[str, list[float]]:
    from helpdesk.contract import ProviderEvent
    from helpdesk.ingest import record_events
    from helpdesk.models import Delivery, db, utcnow
    from helpdesk.pixel import pixel_url

    out: dict[str, list[float]] = {"pixel hit": [], "10 events": [], "1,000 events": []}
    client = app.test_client()
    with app.app_context():
        for _ in range(repeat):
            delivery = db.session.get(Delivery, untypo(rng.randrange(stored)) + 1)
            path = urlsplit(pixel_url(delivery)).path
            db.session.remove()
            start = time.perf_counter()
            if client.get(path).status_code != 200:
                raise SystemExit("the pixel did not answer 200")
            out["pixel hit"].append(time.perf_counter() - start)
            for label, size in (("10 events", 10), ("1,000 events", 1000)):
                now = utcnow() + timedelta(seconds=1)
                picked = [untypo(rng.randrange(stored)) for _ in range(size)]
                batch = [ProviderEvent(provider="smtp", type="delivered",
                                       event_id=f"{i:032x}:{uuid.uuid4().hex}",
                                       occurred_at=now, correlation_id=f"{i:032x}",
                                       recipient=f"p{i}@c{i % 5000}.example") for i in picked]
                start = time.perf_counter()
                record_events(batch)
                out[label].append(time.perf_counter() - start)
    return out


def page_cases(app, stored: int, token: str) -> list[tuple[str, str, dict, str, tuple]]:
    """(what, app path, request headers, bare SQL with ``{p}`` for a parameter, parameters)."""
    size = app.config["PAGE_SIZE"]
    bearer = {"Authorization": f"Bearer {token}"}
    last = -(-stored // size)
    return [
        ("typos page", "/typos", {},
         f"SELECT {RECIPIENT_COLUMNS} FROM recipient WHERE cause = {{p}} AND typo_suggestion "
         "IS NOT NULL AND (typo_dismissed_for IS NULL OR typo_dismissed_for <> email) "
         f"ORDER BY id LIMIT {size}", ("typo",)),
        ("/domains", "/domains", {},
         "SELECT email_domain, sum(CASE WHEN status = {p} THEN n ELSE 0 END) AS b, sum(n) AS t "
         "FROM domain_tally GROUP BY email_domain HAVING sum(n) > 0 "
         f"ORDER BY b DESC, t DESC, email_domain LIMIT {size}", ("bounced",)),
        ("API recipients, first page", "/api/v1/recipients", bearer,
         f"SELECT {RECIPIENT_COLUMNS} FROM recipient ORDER BY id LIMIT {size}", ()),
        ("API recipients, last page", f"/api/v1/recipients?page={last}", bearer,
         f"SELECT {RECIPIENT_COLUMNS} FROM recipient ORDER BY id LIMIT {size} "
         f"OFFSET {(last - 1) * size}", ()),
    ]


def signed_in_client(app):
    """A test client signed in as an agent, and an API token of the same agent."""
    from helpdesk.auth import create_token, create_user
    from helpdesk.models import User, db

    with app.app_context():
        agent = db.session.scalar(db.select(User).where(User.email == AGENT)) or create_user(
            AGENT, "bench-password-long-enough")
        token = create_token(agent)
        agent_id = agent.get_id()
        db.session.commit()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = agent_id
        session["_fresh"] = True
    return client, token


def page_timings(app, database_url: str, stored: int, repeat: int) -> dict[str, tuple]:
    client, token = signed_in_client(app)
    run_bare, connection = bare_runner(database_url)
    try:
        cases = [Case(*case) for case in page_cases(app, stored, token)]
        minimal = minimal_app(run_bare, cases)
        timed = {}
        for n, case in enumerate(cases):
            samples, rows = measure(client, minimal, n, case, run_bare, repeat, 20.0)
            timed[case.what] = (samples["app"], samples["bare"], rows)
        return timed
    finally:
        connection.close()


def events_section(app, sizes: list[int], repeat: int, database_url: str,
                   with_pages: bool = True) -> None:
    rng = random.Random(3)
    results: dict[int, dict[str, list[float]]] = {}
    pages: dict[int, dict[str, tuple]] = {}
    with app.app_context():
        reset_schema()
    have = 0
    for size in sizes:
        with app.app_context():
            start = time.perf_counter()
            grow_history(have, size)
            grown = time.perf_counter() - start
        have = size
        results[size] = event_timings(app, size, repeat, rng)
        print(f"  stored {size:>10,} recipients (added in {grown:.1f} s): " + "; ".join(
            f"{label} median {statistics.median(s) * 1000:.2f} ms, "
            f"p95 {percentile(s, 0.95) * 1000:.2f} ms" for label, s in results[size].items()))
        if not with_pages:
            continue
        pages[size] = page_timings(app, database_url, size, repeat)
        print("    pages: " + "; ".join(
            f"{what} {statistics.median(a) * 1000:.2f} ms (bare {statistics.median(b) * 1000:.2f}"
            f" ms, {rows} rows)" for what, (a, b, rows) in pages[size].items()))
    smallest, largest = results[sizes[0]], results[sizes[-1]]
    for label in smallest:
        ratio = statistics.median(largest[label]) / statistics.median(smallest[label])
        print(f"  {label}: {sizes[-1]:,} stored / {sizes[0]:,} stored = {ratio:.2f} "
              f"(goal <= {GROWTH_GOAL:g}: {'met' if ratio <= GROWTH_GOAL else 'NOT met'})")
    for what, (app_samples, bare_samples, _) in pages.get(sizes[-1], {}).items():
        ratio = statistics.median(app_samples) / statistics.median(bare_samples)
        growth = statistics.median(app_samples) / statistics.median(pages[sizes[0]][what][0])
        print(f"  {what}: app / bare at {sizes[-1]:,} stored = {ratio:.2f} (goal <= "
              f"{PAGE_GOAL:g}: {'met' if ratio <= PAGE_GOAL else 'NOT met'}); "
              f"{sizes[-1]:,} / {sizes[0]:,} stored = {growth:.2f}")


# --- 4. what the tallies cost ingest ------------------------------------------------------------

def tally_cost_section(app, rounds: int) -> None:
    """1,000 events that each change a recipient's status (the tallies' worst case: two rows
    appended per change and tally), with the tally triggers and with them dropped,
    interleaved, over 20,000 stored recipients."""
    from helpdesk import tallies
    from helpdesk.contract import ProviderEvent
    from helpdesk.ingest import record_events
    from helpdesk.models import db, utcnow

    out: dict[bool, list[float]] = {True: [], False: []}
    with app.app_context():
        reset_schema()
        grow_history(0, 20_000)
        dialect, batch_number = db.engine.dialect.name, 0
        try:
            for _ in range(rounds):
                for with_triggers in (True, False):
                    with db.engine.begin() as connection:
                        for statement in (tallies.DDL if with_triggers else tallies.DROP)[dialect]:
                            connection.exec_driver_sql(statement)
                    now = utcnow() + timedelta(seconds=1)
                    picked = [i for i in range(batch_number * 1000, (batch_number + 1) * 1000)
                              if untypo(i) == i]
                    batch_number += 1
                    start = time.perf_counter()
                    result = record_events([ProviderEvent(
                        provider="smtp", type="opened", event_id=f"{i:032x}:opened",
                        occurred_at=now, correlation_id=f"{i:032x}",
                        recipient=f"p{i}@c{i % 5000}.example") for i in picked])
                    out[with_triggers].append(time.perf_counter() - start)
                    if len(result.changed) != len(picked):
                        raise SystemExit(f"{len(result.changed)} statuses changed, not "
                                         f"{len(picked)}")
        finally:
            with db.engine.begin() as connection:
                for statement in tallies.DDL[dialect]:
                    connection.exec_driver_sql(statement)
    on, off = statistics.median(out[True]), statistics.median(out[False])
    print(f"  {len(picked)} status changes: with the tally triggers {on * 1000:.0f} ms, without "
          f"{off * 1000:.0f} ms (medians of {rounds}); ratio {on / off:.2f}")


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publish", type=sizes, default=[1000, 10_000, 100_000])
    parser.add_argument("--stored", type=sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--publish-rounds", type=int, default=3,
                        help="publishes (each beside its baseline) per size")
    parser.add_argument("--pages", action=argparse.BooleanOptionalAction, default=True,
                        help="time the pages (part 3) at each stored size")
    parser.add_argument("--tally-cost", type=int, default=0, metavar="ROUNDS",
                        help="only time what the tally triggers cost a batch of status changes")
    parser.add_argument("--database-url", help="PostgreSQL URL (emptied first); default: a "
                        "SQLite file in a temporary folder")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hd-bench-growth-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'growth.db'}"
    app = build_app(database_url, workdir)
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"growth on {backend}; {machine()}")
    if args.tally_cost:
        print("the tallies' cost to ingest:")
        tally_cost_section(app, args.tally_cost)
        return 0
    if args.publish:
        print("publishing (times in seconds):")
        publish_section(app, args.publish, args.publish_rounds)
    print(f"per-event paths and pages ({args.repeat} repeats each, times in ms):")
    if args.stored:
        events_section(app, args.stored, args.repeat, database_url, args.pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
