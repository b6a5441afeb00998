"""Webhook ingest: signed SendGrid-shaped batches of 1,000 events (20% duplicates, shuffled)
posted through the real webhook view into SQLite, or PostgreSQL with --database-url.

Baseline, timed in the same run: the same rows inserted with the database driver's own
``executemany`` ("on conflict do nothing") into a table with the same unique key, one
transaction per batch. Goal: at least a third of the baseline's rate, and a 1,000-event batch
answered in well under a second.

    python bench/ingest.py [--batches 20] [--batch-size 1000]
                           [--database-url postgresql://postgres@127.0.0.1/hd_bench]

A PostgreSQL database given here is emptied first: name one of its own.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (SendgridSigner, machine, percentile, seed_deliveries,  # noqa: E402
                    sendgrid_batches, verdict)

GOAL_RATIO = 1 / 3
GOAL_BATCH_SECONDS = 1.0

BASELINE_TABLE = """CREATE TABLE bench_event (
    id {serial} PRIMARY KEY, delivery_id INTEGER, provider VARCHAR(50) NOT NULL,
    provider_event_id VARCHAR(255) NOT NULL, type VARCHAR(20) NOT NULL, level VARCHAR(20),
    occurred_at {timestamp} NOT NULL, received_at {timestamp} NOT NULL,
    correlation_id VARCHAR(64), severity VARCHAR(20), reason TEXT, mta_response TEXT, raw {json},
    UNIQUE (provider, provider_event_id))"""
BASELINE_INSERT = (
    "INSERT INTO bench_event (delivery_id, provider, provider_event_id, type, level, "
    "occurred_at, received_at, correlation_id, severity, reason, mta_response, raw) "
    "VALUES ({p}) ON CONFLICT (provider, provider_event_id) DO NOTHING")


def build_app(database_url: str, public_key: str, workdir: Path):
    from helpdesk import create_app

    return create_app({
        "INSTANCE_PATH": str(workdir / "instance"), "SECRET_KEY": "bench-secret",
        "DATABASE_URL": database_url, "QUEUE_URL": "immediate",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key, "RATELIMIT_ENABLED": False,
    })


def run_app(app, batches, signer: SendgridSigner) -> tuple[float, list[float], int]:
    client = app.test_client()
    latencies = []
    start = time.perf_counter()
    for batch in batches:
        body = json.dumps(batch).encode()
        headers = signer.headers(body)
        t0 = time.perf_counter()
        response = client.post("/webhooks/sendgrid", data=body, headers=headers)
        latencies.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise SystemExit(f"the webhook answered {response.status_code}: "
                             f"{response.get_data(as_text=True)[:300]}")
    elapsed = time.perf_counter() - start
    from sqlalchemy import func, select

    from helpdesk.models import DeliveryEvent, db

    with app.app_context():
        stored = db.session.scalar(select(func.count()).select_from(DeliveryEvent)
                                   .where(DeliveryEvent.provider == "sendgrid"))
    return elapsed, latencies, stored


def baseline_rows(batches, delivery_ids: dict[str, int]):
    """The rows the app stores, as plain tuples for the driver (raw payload as JSON text)."""
    from helpdesk.status import event_level

    plugin = __import__("helpdesk_sendgrid.webhook", fromlist=["to_event"])
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    out = []
    for batch in batches:
        rows = []
        for item in batch:
            e = plugin.to_event(item)
            rows.append((delivery_ids.get(e.correlation_id), e.provider, e.event_id, e.type,
                         event_level(e.type), e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), now,
                         e.correlation_id, e.severity, e.reason, e.mta_response,
                         json.dumps(e.raw)))
        out.append(rows)
    return out


def run_baseline(database_url: str, rows_by_batch, workdir: Path) -> tuple[float, int]:
    if database_url.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))
        ddl = BASELINE_TABLE.format(serial="SERIAL", timestamp="TIMESTAMPTZ", json="JSON")
        insert = BASELINE_INSERT.format(p=", ".join(["%s"] * 12))
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_event")
            cur.execute(ddl)
        conn.commit()
    else:
        import sqlite3

        conn = sqlite3.connect(workdir / "baseline.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("DROP TABLE IF EXISTS bench_event")
        conn.execute(BASELINE_TABLE.format(serial="INTEGER", timestamp="DATETIME", json="JSON"))
        conn.commit()
        insert = BASELINE_INSERT.format(p=", ".join(["?"] * 12))
    start = time.perf_counter()
    for rows in rows_by_batch:
        cur = conn.cursor()
        cur.executemany(insert, rows)
        conn.commit()
    elapsed = time.perf_counter() - start
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM bench_event")
    stored = cur.fetchone()[0]
    conn.close()
    return elapsed, stored


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--database-url", help="PostgreSQL URL (emptied first); default: a "
                        "fresh SQLite file")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="hd-bench-ingest-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'helpdesk.db'}"
    signer = SendgridSigner()
    app = build_app(database_url, signer.public_key, workdir)
    from sqlalchemy import select

    from helpdesk.models import Delivery, db

    with app.app_context():
        db.drop_all()
        db.create_all()
        # Each delivery gets about four events: enough deliveries that most batches touch
        # new ones, as a big sender's real traffic does.
        deliveries = seed_deliveries(args.batches * args.batch_size // 4 + 1, "sendgrid")
        delivery_ids = dict(db.session.execute(select(Delivery.correlation_id, Delivery.id)).all())
    batches, unique = sendgrid_batches(deliveries, args.batch_size, args.batches,
                                       args.duplicates)
    total = args.batches * args.batch_size

    app_seconds, latencies, stored = run_app(app, batches, signer)
    rows = baseline_rows(batches, delivery_ids)
    base_seconds, base_stored = run_baseline(database_url, rows, workdir)
    if args.database_url:
        with app.app_context():
            db.session.execute(db.text("DROP TABLE IF EXISTS bench_event"))
            db.session.commit()

    app_rate, base_rate = total / app_seconds, total / base_seconds
    ratio = app_rate / base_rate
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"ingest on {backend}: {args.batches} batches of {args.batch_size} events "
          f"({args.duplicates:.0%} duplicates, shuffled); {machine()}")
    print(f"  webhook view : {app_rate:10,.0f} events/s; batch answered in median "
          f"{statistics.median(latencies) * 1000:.0f} ms, p95 "
          f"{percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
          f"stored {stored} of {unique} unique")
    print(f"  executemany  : {base_rate:10,.0f} events/s; stored {base_stored} of {unique} unique")
    print(f"  ratio        : {ratio:.2f} ({verdict(ratio, GOAL_RATIO)}); slowest batch "
          f"{max(latencies):.2f} s ({verdict(max(latencies), GOAL_BATCH_SECONDS, False)})")
    if stored != unique or base_stored != unique:
        print("  ERROR: an event was lost or stored twice")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
