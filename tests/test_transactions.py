"""Conflicts between transactions: a real one (a PostgreSQL deadlock) is run again and succeeds;
the send path and webhook ingest, racing over the same recipients, never deadlock (one lock
order, ``helpdesk.ingest``)."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from helpdesk import sending
from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.models import Delivery, Recipient, db, utcnow
from helpdesk.status import OPENED
from helpdesk.transactions import retried

from conftest import PG_URL

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def in_threads(app, *targets) -> list[BaseException]:
    """Run each target in its own thread and app context (its own connection)."""
    errors: list[BaseException] = []

    def run(target):
        with app.app_context():
            try:
                target()
            except BaseException as error:  # reported to the test, which fails on it
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (SQLite has one writer at a time)")
def test_a_transaction_that_loses_a_real_deadlock_is_run_again(app):
    first, second = (r.id for r in create_credential("Conflict", [
        {"name": "A", "email": "a@valley.example"}, {"name": "B", "email": "b@valley.example"}]
    ).recipients)
    db.session.commit()
    barrier = threading.Barrier(2, timeout=20)
    attempts = {"ab": 0, "ba": 0}

    def writer(name: str, ids: tuple[int, int]):
        @retried
        def work():
            attempts[name] += 1
            # Each locks one row, then wants the other's.
            db.session.execute(update(Recipient).where(Recipient.id == ids[0]).values(name=name))
            if attempts[name] == 1:
                barrier.wait()
            db.session.execute(update(Recipient).where(Recipient.id == ids[1]).values(name=name))
            db.session.commit()
        return work

    errors = in_threads(app, writer("ab", (first, second)), writer("ba", (second, first)))
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # one lost, ran again, and went through


def test_sending_and_webhooks_on_the_same_recipients_never_deadlock(app_factory, tmp_path):
    app = app_factory(None, QUEUE_URL=str(tmp_path / "queue.db"))  # no worker: we send here
    with app.app_context():
        create_credential("Race", [{"name": f"P{i}", "email": f"p{i}@valley.example"}
                                   for i in range(40)], state="published")
        deliveries = db.session.execute(select(Delivery.id, Delivery.recipient_id,
                                               Delivery.correlation_id,
                                               Delivery.email).order_by(Delivery.id)).all()
        db.session.commit()

    def answers():  # the send path: each answer recorded on its delivery, then settled
        for start in range(0, len(deliveries), 10):
            chunk = deliveries[start:start + 10]
            recorded = []
            with db.engine.connect() as on:
                for d in chunk:
                    item = sending._Pending(d.id, d.recipient_id, "smtp", d.correlation_id,
                                            d.email, 0, None)
                    recorded.append(sending._record_answer(
                        on, item, sending.SendResult.accepted(message_id=f"<{d.id}@x>"),
                        utcnow()))
            sending._settle(recorded)

    def webhooks(order):  # opens arriving meanwhile, in batches touching many recipients
        def post():
            for start in range(0, len(deliveries), 8):
                record_events([ProviderEvent(
                    provider="smtp", type="opened", event_id=f"{d.correlation_id}:open",
                    occurred_at=WHEN, correlation_id=d.correlation_id, recipient=d.email)
                    for d in order[start:start + 8]])
        return post

    errors = in_threads(app, answers, webhooks(deliveries), webhooks(deliveries[::-1]))
    assert errors == []
    with app.app_context():
        assert set(db.session.scalars(select(Recipient.status))) == {OPENED}
