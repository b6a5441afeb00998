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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, select, update

from helpdesk import diagnosis, ingest, publishing
from helpdesk.causes import DELIVERED_NOT_OPENED, ON_ITS_WAY
from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.maintenance import ingest_bounce
from helpdesk.models import Credential, Delivery, Recipient, db, utcnow
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


def scans(statements, by_condition: bool = False) -> list[str]:
    """The lines of these statements' plans that read a whole table. ``by_condition``: on
    PostgreSQL, walking an index in order is priced out too, so that only a condition the
    indexes answer avoids a scan (on a few rows the planner would rather walk and filter)."""
    found = []
    dialect = db.engine.dialect.name
    with db.engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            if by_condition:
                conn.exec_driver_sql("SET enable_indexscan = off")
                conn.exec_driver_sql("SET enable_indexonlyscan = off")
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
                # An FTS5 table's MATCH ("VIRTUAL TABLE INDEX n:M…") is its index's search.
                found += [f"{line}  <-  {statement}" for line in plan
                          if re.match(r"SCAN (?!(\d+ )?CONSTANT ROW)(?!\S+ VIRTUAL TABLE INDEX \d+:M)",
                                      line)]
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


def test_publishing_in_sets_writes_what_recomputing_each_recipient_gives(
        app_factory, tmp_path, monkeypatch):
    # Chunks of 4 over 11 recipients: a partial last chunk, and a chunk with nobody to send to.
    monkeypatch.setattr(publishing, "CHUNK_SIZE", 4)
    app = app_factory(QUEUE_URL=str(tmp_path / "queue.db"))
    people = [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(6)]
    people[2]["email"] = "p2@gmial.com"  # a likely typo: not one before a bounce says so
    people += [{"name": "No address"}, {"name": "Bad", "email": "not an address"},
               {"name": "Late", "email": "late@example.com"}, {"name": "None 2"},
               {"name": "None 3"}]
    with app.app_context():
        credential = create_credential("Mixed", people)
        ids = [r.id for r in credential.recipients]
        assert publishing.publish(db.session.get(Credential, credential.id)) == 7
        # The generic path (each recipient's deliveries and events read again) changes nothing.
        assert ingest.refresh_recipients(ids) == []
        assert diagnosis.changed_causes(ids) == []
        deliveries = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert sorted(d.recipient.name for d in deliveries) == sorted(
            ["P0", "P1", "P2", "P3", "P4", "P5", "Late"])
        assert len({d.correlation_id for d in deliveries}) == 7
        for d in deliveries:
            assert re.fullmatch(r"[0-9a-f]{32}", d.correlation_id)
            assert (d.email, d.status, d.kind) == (d.recipient.email, "sending", "send")
            assert [(e.type, e.provider_event_id, e.correlation_id) for e in d.events] == [
                ("queued", f"{d.correlation_id}:queued", d.correlation_id)]
        statuses = {r.name: (r.status, r.cause) for r in db.session.scalars(
            select(Recipient).where(Recipient.id.in_(ids)))}
        assert statuses["P2"] == statuses["P0"] == ("sending", ON_ITS_WAY)
        assert statuses["No address"][0] == "not_provided"
        # Published again (nothing new): no recipient is sent to twice.
        assert publishing.publish(db.session.get(Credential, credential.id)) == 0
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 7


def test_resending_a_status_or_a_domain_costs_the_same_statements_for_more_recipients(
        app_factory, tmp_path):
    app = app_factory(QUEUE_URL=str(tmp_path / "queue.db"))
    counts = {}
    with app.app_context():
        for size in (4, 40):
            domain = f"size{size}.example"
            credential = create_credential(f"{size} people", [
                {"name": f"P{i}", "email": f"p{i}@{domain}"} for i in range(size)],
                state="published")
            record_events([ProviderEvent(
                provider=d.provider, type="bounced", event_id=f"{d.correlation_id}:bounced",
                occurred_at=utcnow() + timedelta(seconds=1), correlation_id=d.correlation_id,
                recipient=d.email, severity="hard", mta_response="550 5.7.1 blocked by policy")
                for r in credential.recipients for d in r.deliveries])
            credential_id = credential.id
            db.session.expunge_all()  # nothing cached: each recipient's history is read
            with captured_statements() as seen:
                assert publishing.resend_in_status(credential_id, "bounced").queued == size
            with captured_statements() as seen_domain:
                assert publishing.resend_bounced_at_domain(domain).queued == 0  # sending now
            counts[size] = (len(seen), len(seen_domain))
    assert counts[40] == counts[4], counts


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


@pytest.mark.parametrize("path", ["/recipients?q=lovelace", "/lookup?q=lovelace",
                                  "/recipients?q=ada+lovelace&status=not_opened"])
def test_a_name_search_reads_the_search_index_not_the_table(agent_client, desk, path):
    with captured_statements() as seen:
        html = agent_client.get(path).text
    assert "Ada Lovelace" in html
    searches = [(s, p) for s, p in seen if "FROM recipient" in s
                and ("recipient_search" in s or "LIKE" in s)]
    assert len(searches) >= 1 and scans(searches, by_condition=True) == []


def plans(statements) -> list[str]:
    """Each statement's plan as one line (PostgreSQL's with sequential scans priced out)."""
    out = []
    with db.engine.connect() as conn:
        postgresql = db.engine.dialect.name == "postgresql"
        if postgresql:
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(("EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN ")
                                        + statement, _first_row(parameters))
            out.append(" | ".join(row[0] if postgresql else row[3] for row in rows))
        conn.rollback()
    return out


def test_a_deep_keyset_page_of_one_status_seeks_to_its_place(agent_client, desk):
    first = agent_client.get("/recipients?status=not_opened&sort=-updated").text
    assert "Ada Lovelace" in first
    after = f"{datetime.now(timezone.utc).isoformat()}~{2**31 - 1}"
    with captured_statements() as seen:
        html = agent_client.get("/recipients", query_string={
            "status": "not_opened", "after": after}).text
    assert "Ada Lovelace" in html  # everyone changed before now
    pages = [(s, p) for s, p in seen if "FROM recipient" in s and "LIMIT" in s]
    assert len(pages) == 1 and scans(pages) == []
    # The place itself is in the index's condition: the rows before it are never read.
    plan = plans(pages)[0]
    if db.engine.dialect.name == "postgresql":
        assert re.search(r"Index Cond: \(.*status.*ROW\(updated_at, id\) <", plan), plan
    else:
        assert "USING INDEX ix_recipient_status_updated (status=? AND updated_at<?)" in plan, plan


def test_looking_up_an_address_seeks_even_with_its_old_addresses(agent_client, desk):
    # The OR with "an address it was sent to before" (a subquery on delivery) must not turn
    # the whole search into a filter over every recipient.
    with captured_statements() as seen:
        html = agent_client.get("/lookup?q=ada@example.com").text
    assert "Ada Lovelace" in html
    searches = [(s, p) for s, p in seen if "FROM recipient" in s and "delivery" in s]
    assert len(searches) == 1 and scans(searches) == []

def _due_a_nudge(size: int, domain: str) -> list[int]:
    """A published credential of ``size`` recipients whose emails were delivered, unopened,
    ten days ago."""
    credential = create_credential(f"{size} people", [
        {"name": f"P{i}", "email": f"p{i}@{domain}"} for i in range(size)], state="published")
    deliveries = [d for r in credential.recipients for d in r.deliveries]
    record_events([ProviderEvent(
        provider=d.provider, type="delivered", event_id=f"{d.correlation_id}:delivered",
        occurred_at=utcnow(), correlation_id=d.correlation_id, recipient=d.email)
        for d in deliveries])
    db.session.execute(update(Delivery).where(Delivery.id.in_([d.id for d in deliveries]))
                       .values(created_at=utcnow() - timedelta(days=10)))
    db.session.commit()
    return [r.id for r in credential.recipients]


def test_nudging_costs_the_same_statements_for_ten_times_more_recipients(app_factory, tmp_path):
    app = app_factory(QUEUE_URL=str(tmp_path / "queue.db"), NUDGE_AFTER_DAYS=7, NUDGE_MAX=2)
    counts = {}
    with app.app_context():
        for size in (4, 40):
            ids = _due_a_nudge(size, f"size{size}.example")
            assert {r.cause for r in db.session.scalars(
                select(Recipient).where(Recipient.id.in_(ids)))} == {DELIVERED_NOT_OPENED}
            db.session.expunge_all()
            with captured_statements() as seen:
                assert publishing.nudge_due() == size
            counts[size] = len(seen)
            # Choosing who is due and claiming them seeks (what follows is a resend's
            # statements, checked above on a history).
            assert scans([(s, p) for s, p in seen if "nudges" in s]) == []
    assert counts[40] == counts[4], counts


def test_nudging_goes_in_chunks_each_recipient_once(app_factory, tmp_path, monkeypatch):
    # Chunks of 4 over 10 due: a partial last chunk; the first nudges leave before the last.
    monkeypatch.setattr(publishing, "CHUNK_SIZE", 4)
    app = app_factory(QUEUE_URL=str(tmp_path / "queue.db"), NUDGE_AFTER_DAYS=7, NUDGE_MAX=2)
    with app.app_context():
        ids = _due_a_nudge(10, "chunks.example")
        submitted = []
        monkeypatch.setattr(publishing.queue, "submit_send",
                            lambda delivery_ids, delay=None: submitted.append(delivery_ids))
        with captured_statements() as seen:
            assert publishing.nudge_due() == 10
        assert [len(batch) for batch in submitted] == [4, 4, 2]
        nudges = db.session.scalars(select(Delivery).where(Delivery.kind == "nudge")
                                    .order_by(Delivery.id)).all()
        assert sorted(d.recipient_id for d in nudges) == ids
        assert all(d.status == "sending" and [e.type for e in d.events] == ["queued"]
                   for d in nudges)
        assert {r.nudges for r in db.session.scalars(
            select(Recipient).where(Recipient.id.in_(ids)))} == {1}
        # Just nudged: the last send is now, nobody is due again.
        assert publishing.nudge_due() == 0
        # Each chunk is the same handful of statements (the last finds nobody).
        writes = [s for s, _ in seen
                  if s.lstrip().upper().startswith("UPDATE RECIPIENT SET NUDGES")]
        assert len(writes) == 3


def test_new_correlation_ids_begin_with_the_time_they_were_made(app_factory, tmp_path):
    # So that the unique index on them grows at its right edge, whichever side made them.
    app = app_factory(QUEUE_URL=str(tmp_path / "queue.db"))
    with app.app_context():
        before = int(utcnow().timestamp() * 1000)
        credential = create_credential("Ordered", [{"name": "A", "email": "a@example.com"}])
        publishing.publish(db.session.get(Credential, credential.id))  # the database's
        [first] = db.session.scalars(select(Delivery.correlation_id)).all()
        [resent] = publishing.queue_deliveries(credential.recipients, kind="resend")  # Python's
        second = db.session.get(Delivery, resent).correlation_id
        after = int(utcnow().timestamp() * 1000)
    for made in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        assert before - 1 <= int(made[:12], 16) <= after + 1
    assert first[12:] != second[12:]
