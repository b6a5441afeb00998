"""Costs that grow with the work, not with the history.

- Publishing costs a constant number of SQL statements per chunk of recipients, never a few per
  recipient.
- Every statement of a per-event path (the tracking pixel, a webhook batch, a bounce report,
  recording send answers) finds its rows through an index: its plan, on SQLite and on
  PostgreSQL (with sequential scans priced out, so that a missing index shows as a scan), never
  scans a table.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, select

from helpdesk import publishing
from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.maintenance import ingest_bounce
from helpdesk.models import Credential, Delivery, db, utcnow
from helpdesk.pixel import pixel_url

DSN = Path(__file__).parent / "data" / "dsn"


@contextmanager
def captured_statements():
    """Every statement the app sends to the database meanwhile, with its parameters."""
    seen: list[tuple[str, object]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)


def _first_row(parameters):
    if isinstance(parameters, list):
        return parameters[0] if parameters else ()
    return parameters


def _pg_full_scans(plan: list[str]) -> list[str]:
    """The nodes of a PostgreSQL plan that read a whole table or a whole index: a sequential
    scan, or an index scan with no condition on the index (it only filters what it reads)."""
    nodes: list[list[str]] = []
    for line in plan:
        if not nodes or line.lstrip().startswith("->"):
            nodes.append([line.strip()])
        else:
            nodes[-1].append(line.strip())
    return [node[0] for node in nodes
            if "Seq Scan" in node[0] or (re.search(r"Index (Only )?Scan", node[0])
                                         and not any("Index Cond" in d for d in node[1:]))]


def scans(statements) -> list[str]:
    """The lines of these statements' plans that read a whole table."""
    found = []
    dialect = db.engine.dialect.name
    with db.engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            if not re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT)\b", statement, re.I):
                continue
            if dialect == "postgresql":
                plan = [row[0] for row in conn.exec_driver_sql(
                    "EXPLAIN " + statement, _first_row(parameters))]
                found += [f"{node}  <-  {statement}" for node in _pg_full_scans(plan)]
            else:
                plan = [row[3] for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, _first_row(parameters))]
                found += [f"{line}  <-  {statement}" for line in plan
                          if re.match(r"SCAN (?!(\d+ )?CONSTANT ROW)", line)]
        conn.rollback()
    return found


def test_the_plan_check_sees_a_scan(app):
    # delivery.email has no index of its own: looking a delivery up by it reads the table.
    statement = str(select(Delivery.id).where(Delivery.email == "x").compile(db.engine))
    parameters = {"email_1": "x"} if db.engine.dialect.name == "postgresql" else ("x",)
    assert scans([(statement.replace(":email_1", "%(email_1)s"), parameters)])


def _history(count: int = 30) -> list[int]:
    """Some stored history: a published credential whose recipients were each sent to."""
    credential = create_credential("History", [
        {"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(count)],
        state="published")
    return [r.id for r in credential.recipients]


def test_publishing_costs_the_same_statements_for_ten_or_ten_times_more_recipients(
        app_factory, tmp_path):
    # A queue that stores tasks without running them: only publishing's own statements count.
    app = app_factory(QUEUE_URL=str(tmp_path / "queue.db"))
    counts = {}
    with app.app_context():
        for size in (20, 200):
            credential = create_credential(f"{size} people", [
                {"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(size)])
            with captured_statements() as seen:
                assert publishing.publish(db.session.get(Credential, credential.id)) == size
            counts[size] = len(seen)
            assert db.session.scalar(select(Delivery.id).join(Delivery.recipient).where(
                Delivery.recipient.has(credential_id=credential.id)).limit(1)) is not None
    assert counts[200] == counts[20], counts


def test_a_tracking_pixel_hit_seeks_its_rows(app, client):
    _history()
    delivery = db.session.scalars(select(Delivery).order_by(Delivery.id)).first()
    path = urlsplit(pixel_url(delivery)).path
    with captured_statements() as seen:
        assert client.get(path).status_code == 200
    assert seen and scans(seen) == []


def test_a_webhook_batch_seeks_its_rows(app):
    _history()
    deliveries = db.session.scalars(select(Delivery).order_by(Delivery.id).limit(10)).all()
    now = utcnow()
    batch = [ProviderEvent(provider=d.provider, type="delivered", event_id=f"{d.id}:delivered",
                           occurred_at=now + timedelta(seconds=1), correlation_id=d.correlation_id,
                           recipient=d.email) for d in deliveries]
    batch += [ProviderEvent(provider="smtp", type="opened", event_id=f"m{i}:opened",
                            occurred_at=now, message_id=f"<m{i}@example.com>")
              for i in range(3)]
    with captured_statements() as seen:
        assert record_events(batch).stored == len(batch)
    assert scans(seen) == []


def test_a_bounce_report_seeks_its_rows(app):
    _history()
    with captured_statements() as seen:
        result = ingest_bounce((DSN / "postfix-failed.eml").read_bytes())
    assert result is not None and result.received
    assert scans(seen) == []


def test_recording_send_answers_seeks_its_rows(app, sink):
    _history()  # sent for real through the sink: send_batch recorded each answer
    credential = create_credential("More", [
        {"name": f"Q{i}", "email": f"q{i}@example.com"} for i in range(5)])
    with captured_statements() as seen:
        publishing.publish(db.session.get(Credential, credential.id))
    assert len(sink.messages) >= 35
    assert scans(seen) == []
