"""The send path on its own: one bad message stays with its delivery, international addresses go
out as the server can take them, a worker's lease keeps its sends from being taken while it
lives and hands them over once it is gone, and a queue that is down fails no publish."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from helpdesk import sending
from helpdesk.auth import create_token, create_user
from helpdesk.credentials import create_credential
from helpdesk.maintenance import requeue_stalled
from helpdesk.models import Delivery, DeliveryEvent, Recipient, db, utcnow
from helpdesk.queue import huey_of
from helpdesk.tasks import stall_check_seconds
from helpdesk.sink import SmtpSink, free_port
from helpdesk.status import NOT_OPENED, NOT_SENT, SENDING
from helpdesk_smtp import SmtpProvider

from conftest import PASSWORD, make_app

STALL = 30


def people(*addresses: str) -> list[dict]:
    return [{"name": f"Person {i}", "email": a} for i, a in enumerate(addresses)]


def statuses() -> dict[str, str]:
    db.session.rollback()
    return dict(db.session.execute(select(Recipient.email, Recipient.status)).all())


def reason_of(address: str) -> str:
    return db.session.scalar(select(DeliveryEvent.reason).join(Delivery).where(
        Delivery.email == address, DeliveryEvent.type == "refused"))


def test_a_message_that_cannot_be_built_or_sent_ends_alone_the_batch_goes_on(app, sink,
                                                                           monkeypatch):
    build, send = sending.build_message, SmtpProvider.send

    def build_or_fail(delivery):
        if delivery.email == "template@valley.example":
            raise RuntimeError("the template broke")
        return build(delivery)

    def send_or_fail(self, message):
        if message.to == "plugin@valley.example":
            raise KeyError("a plugin bug")
        return send(self, message)

    monkeypatch.setattr(sending, "build_message", build_or_fail)
    monkeypatch.setattr(SmtpProvider, "send", send_or_fail)
    create_credential("Poison", people("a@valley.example", "template@valley.example",
                                       "plugin@valley.example", "b@valley.example"),
                      state="published")
    assert statuses() == {"a@valley.example": NOT_OPENED, "template@valley.example": NOT_SENT,
                          "plugin@valley.example": NOT_SENT, "b@valley.example": NOT_OPENED}
    assert sorted(m.recipients[0] for m in sink.messages) == ["a@valley.example",
                                                              "b@valley.example"]
    assert "the template broke" in reason_of("template@valley.example")
    assert "KeyError" in reason_of("plugin@valley.example")


def test_an_international_address_goes_out_with_smtputf8_when_the_server_offers_it(app, sink):
    create_credential("Unicode", people("jürgen@bücher.example", "ann@valley.example"),
                      state="published")
    assert set(statuses().values()) == {NOT_OPENED}
    caught = {m.recipients[0]: m for m in sink.messages}
    assert set(caught) == {"jürgen@bücher.example", "ann@valley.example"}
    assert "To: Person 0 <jürgen@bücher.example>".encode() in caught["jürgen@bücher.example"].data


def test_without_smtputf8_the_domain_goes_as_idna_and_a_unicode_mailbox_is_refused_clearly(
        app_factory):
    with SmtpSink(smtputf8=False) as plain:
        app = app_factory(plain)
        with app.app_context():
            create_credential("Plain", people("j@bücher.example", "jürgen@valley.example",
                                              "ann@valley.example"), state="published")
            assert statuses() == {"j@bücher.example": NOT_OPENED,
                                  "jürgen@valley.example": NOT_SENT,
                                  "ann@valley.example": NOT_OPENED}
            assert "SMTPUTF8" in reason_of("jürgen@valley.example")
        assert sorted(m.recipients[0] for m in plain.messages) == [
            "ann@valley.example", "j@xn--bcher-kva.example"]


@pytest.fixture
def queued(app_factory, sink, tmp_path):
    """Three deliveries queued where no worker reads them (the SQLite queue file)."""
    app = app_factory(sink, QUEUE_URL=str(tmp_path / "queue.db"), SEND_STALL_SECONDS=STALL)
    with app.app_context():
        create_credential("Leased", people("a@valley.example", "b@valley.example",
                                           "c@valley.example"), state="published")
        yield app, sorted(db.session.scalars(select(Delivery.id)))


def test_a_live_worker_keeps_its_sends_a_dead_one_loses_them_after_the_stall(queued, sink):
    app, ids = queued
    claimed_at = utcnow()
    assert sending._claim(ids, STALL, claimed_at) == ids
    assert sending._claim(ids, STALL, claimed_at) == []  # held: a second task takes none
    # Renewed while its worker lives: not taken at the first lease's end.
    assert sending._renew(ids, claimed_at + timedelta(seconds=STALL),
                          claimed_at + timedelta(seconds=STALL * 2)) == set(ids)
    assert requeue_stalled(now=claimed_at + timedelta(seconds=STALL + 1)) == 0
    # No renewal after that: its worker died. Taken over (queued again: run here), sent once.
    assert requeue_stalled(now=claimed_at + timedelta(seconds=STALL * 2 + 1)) == 3
    assert sending.send_batch(ids) == {"accepted": 3}
    assert sorted(m.recipients[0] for m in sink.messages) == ["a@valley.example",
                                                              "b@valley.example",
                                                              "c@valley.example"]
    assert requeue_stalled(now=claimed_at + timedelta(seconds=STALL * 10)) == 0


def test_a_slow_worker_whose_lease_was_taken_over_sends_none_of_the_rest(queued, sink,
                                                                         monkeypatch):
    """Its lease ran out before it renewed it (one send took longer than the stall) and
    another worker took its sends over: its renewal finds them gone and it sends no more of
    them; the taker does."""
    app, ids = queued
    monkeypatch.setattr(sending._Lease, "due", lambda self: True)  # renew before each send
    send = SmtpProvider.send

    def slow_send(self, message):
        if not sink.messages:  # meanwhile, the lease ran out and the watcher took it over
            assert requeue_stalled(now=utcnow() + timedelta(seconds=STALL * 3)) == 3
        return send(self, message)

    monkeypatch.setattr(SmtpProvider, "send", slow_send)
    assert sending.send_batch(ids) == {"accepted": 1, "skipped": 2}
    assert [m.recipients[0] for m in sink.messages] == ["a@valley.example"]
    monkeypatch.setattr(SmtpProvider, "send", send)
    # The taker's task sends the other two, once.
    assert sending.send_batch(ids) == {"skipped": 1, "accepted": 2}
    assert sorted(m.recipients[0] for m in sink.messages) == ["a@valley.example",
                                                              "b@valley.example",
                                                              "c@valley.example"]


def test_answers_a_dead_worker_recorded_are_settled_not_sent_again(queued, sink):
    app, ids = queued
    claimed_at = utcnow()
    sending._claim(ids, STALL, claimed_at)
    first = db.session.get(Delivery, ids[0])
    item = sending._prepare(first)
    # The worker sent one message and recorded its answer, then died before settling it.
    with db.engine.connect() as answers:
        answer = sending._record_answer(answers, item, sending._send(item), utcnow())
    assert answer.outcome == "accepted" and len(sink.messages) == 1
    assert statuses()["a@valley.example"] == SENDING
    assert requeue_stalled(now=claimed_at + timedelta(seconds=STALL + 1)) == 3
    assert statuses()["a@valley.example"] == NOT_OPENED
    assert sending.send_batch(ids) == {"skipped": 1, "accepted": 2}
    assert sorted(m.recipients[0] for m in sink.messages) == ["a@valley.example",
                                                              "b@valley.example",
                                                              "c@valley.example"]


def send_tasks_waiting(app) -> list[list[int]]:
    """The delivery ids of each send task waiting in the queue, due or scheduled."""
    huey = huey_of(app)
    return sorted(sorted(task.args[0]) for task in huey.pending() + huey.scheduled())


def test_a_slow_queue_is_not_given_the_same_sends_again(queued):
    """A backlog older than the stall waits in the queue: every check finds its task there
    and queues nothing more, however long the queue takes."""
    app, ids = queued
    queued_at = db.session.scalar(select(Delivery.send_due_at).where(Delivery.id == ids[0]))
    assert send_tasks_waiting(app) == [ids]
    for stalls in (1.1, 2.1, 10):
        assert requeue_stalled(now=queued_at + timedelta(seconds=STALL * stalls)) == 0
    assert send_tasks_waiting(app) == [ids]
    # One of them in a retry scheduled for later (the consumer keeps it in the schedule):
    # still not queued again.
    huey = huey_of(app)
    huey.flush()
    app.extensions["helpdesk_tasks"].send.schedule((ids[:1],), delay=3600)
    huey.add_schedule(huey.dequeue())
    app.extensions["helpdesk_tasks"].send(ids[1:])
    assert [t.args[0] for t in huey.scheduled()] == [ids[:1]]
    assert requeue_stalled(now=queued_at + timedelta(seconds=STALL * 3)) == 0
    assert send_tasks_waiting(app) == [ids[:1], ids[1:]]


def test_a_send_no_worker_took_is_taken_over_after_the_stall_not_before(queued):
    app, ids = queued
    queued_at = db.session.scalar(select(Delivery.send_due_at).where(Delivery.id == ids[0]))
    huey_of(app).flush()  # its task was lost
    assert requeue_stalled(now=queued_at + timedelta(seconds=STALL - 1)) == 0
    assert send_tasks_waiting(app) == []
    assert requeue_stalled(now=queued_at + timedelta(seconds=STALL + 1)) == 3
    assert send_tasks_waiting(app) == [ids]
    # Taken once: a second worker looking at the same moment finds nothing, nor does a later
    # check while the new task waits.
    assert requeue_stalled(now=queued_at + timedelta(seconds=STALL + 1)) == 0
    assert requeue_stalled(now=queued_at + timedelta(seconds=STALL * 5)) == 0
    assert send_tasks_waiting(app) == [ids]


def test_a_dead_workers_sends_are_queued_again_once(queued):
    app, ids = queued
    huey_of(app).flush()  # the worker took the task from the queue, then died
    claimed_at = utcnow()
    assert sending._claim(ids, STALL, claimed_at) == ids
    assert requeue_stalled(now=claimed_at + timedelta(seconds=STALL + 1)) == 3
    assert requeue_stalled(now=claimed_at + timedelta(seconds=STALL * 5)) == 0
    assert send_tasks_waiting(app) == [ids]


def test_while_the_queue_is_down_the_check_takes_nothing_and_says_why(queued, monkeypatch,
                                                                      caplog):
    app, ids = queued
    queued_at = db.session.scalar(select(Delivery.send_due_at).where(Delivery.id == ids[0]))

    def down(*args, **kwargs):
        raise ConnectionRefusedError("the queue is down")

    monkeypatch.setattr(huey_of(app), "pending", down)
    assert requeue_stalled(now=queued_at + timedelta(seconds=STALL + 1)) == 0
    assert "not answering" in caplog.text
    assert db.session.scalars(select(Delivery.send_due_at)).all() == [queued_at] * 3


def test_a_publish_while_the_queue_is_down_is_accepted_and_sent_once_it_is_back(
        app_factory, sink, tmp_path):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = app_factory(sink, QUEUE_URL=down, SEND_STALL_SECONDS=STALL)
    with app.app_context():
        token = create_token(create_user("agent@issuer.example", PASSWORD, "agent"))
        answer = app.test_client().post(
            "/api/v1/credentials", headers={"Authorization": f"Bearer {token}"},
            json={"title": "Queue down", "state": "published",
                  "recipients": people("a@valley.example", "b@valley.example")})
        assert answer.status_code == 201, answer.get_data(as_text=True)
        assert set(statuses().values()) == {SENDING}
        # The queue stays down longer than the stall.
        db.session.execute(update(Delivery).values(
            send_due_at=utcnow() - timedelta(seconds=STALL + 1)))
        db.session.commit()
    back = make_app(tmp_path, sink, SEND_STALL_SECONDS=STALL)  # the same database, a queue
    try:
        with back.app_context():
            assert requeue_stalled() == 2
            assert set(statuses().values()) == {NOT_OPENED}
    finally:
        with back.app_context():
            db.engine.dispose()
    assert len(sink.messages) == 2


def test_lost_sends_are_looked_for_often_enough_to_be_taken_over_on_time():
    assert stall_check_seconds(600) == 60
    assert stall_check_seconds(4) == 2
    assert stall_check_seconds(0.1) == 0.5
