"""Sending through a real queue: the SQLite file queue (the default) and Redis, consumed by a
Huey consumer as `helpdesk worker` runs it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, db
from helpdesk.queue import huey_of
from helpdesk.status import BOUNCED, NOT_OPENED, SENDING

from conftest import PG_URL, REDIS_URL

queues = ["sqlite"] + (["redis"] if REDIS_URL else [])


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def statuses(credential_id):
    db.session.rollback()  # see what the worker committed
    return {r.email: r.status for r in db.session.scalars(
        select(Recipient).where(Recipient.credential_id == credential_id))}


@pytest.fixture(params=queues)
def queue_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "queue.db")
    return REDIS_URL


def test_published_emails_wait_in_the_queue_until_a_worker_sends_them(app_factory, sink,
                                                                      queue_url):
    app = app_factory(sink, QUEUE_URL=queue_url)
    huey = huey_of(app)
    huey.flush()
    with app.app_context():
        credential = create_credential("Queued", [
            {"name": "Ann", "email": "ann@valley.example"},
            {"name": "Bob", "email": "bob@gmial.com"}], state="published")
        assert set(statuses(credential.id).values()) == {SENDING}
        assert sink.messages == []
        consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
        consumer.start()
        try:
            expected = {"ann@valley.example": NOT_OPENED, "bob@gmial.com": BOUNCED}
            assert wait_for(lambda: statuses(credential.id) == expected), \
                statuses(credential.id)
        finally:
            consumer.stop(graceful=True)
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]


def test_the_worker_command_consumes_the_queue(app_factory, sink, tmp_path):
    queue_file = tmp_path / "worker-queue.db"
    database = PG_URL or f"sqlite:///{tmp_path / 'helpdesk.db'}"
    app = app_factory(sink, QUEUE_URL=str(queue_file))
    with app.app_context():
        credential_id = create_credential(
            "Worker", [{"name": "Ann", "email": "ann@valley.example"}], state="published").id
    env = {**os.environ, "HELPDESK_DATABASE_URL": database, "HELPDESK_QUEUE_URL": str(queue_file),
           "HELPDESK_SMTP_HOST": sink.host, "HELPDESK_SMTP_PORT": str(sink.port),
           "HELPDESK_SECRET_KEY": "test-secret"}
    worker = subprocess.Popen([str(Path(sys.executable).parent / "helpdesk"), "worker"],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        with app.app_context():
            assert wait_for(lambda: statuses(credential_id) == {"ann@valley.example": NOT_OPENED})
    finally:
        worker.send_signal(signal.SIGINT)
        output = worker.communicate(timeout=20)[0]
    assert len(sink.messages) == 1, output
