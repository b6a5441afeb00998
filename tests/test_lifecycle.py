"""A credential's life: scheduled, published (with or without email), refused, resent, nudged;
and the status-changed hook, once per real change. Emails go through real SMTP into the sink."""
from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from helpdesk import hookimpl, pixel, plugins, publishing
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.contract import ProviderEvent, SendResult
from helpdesk.models import Credential, CredentialState, Delivery, Recipient, db, utcnow
from helpdesk.sink import SmtpSink
from helpdesk.causes import status_tips
from helpdesk.status import BOUNCED, NOT_OPENED, NOT_PROVIDED, NOT_SENT, OPENED, SENDING

from conftest import TYPO_DOMAINS


def fresh(recipient: Recipient) -> Recipient:
    db.session.expire_all()
    return db.session.get(Recipient, recipient.id)


def kinds(recipient: Recipient) -> list[tuple[str, str, str]]:
    return [(d.email, d.kind, d.status) for d in fresh(recipient).deliveries]


# --- publishing -------------------------------------------------------------------------------

def test_publish_due_publishes_scheduled_credentials_whose_time_has_come(app, sink):
    now = utcnow()
    due = create_credential("Due", [{"name": "Ann", "email": "ann@valley.example"}],
                            state="scheduled", scheduled_at=now - timedelta(minutes=1))
    later = create_credential("Later", [{"name": "Bob", "email": "bob@valley.example"}],
                              state="scheduled", scheduled_at=now + timedelta(hours=1))
    assert {r.status for c in (due, later) for r in c.recipients} == {NOT_SENT}

    assert publishing.publish_due() == 1

    db.session.expire_all()
    assert due.state == CredentialState.published and due.published_at is not None
    assert due.recipients[0].status == NOT_OPENED
    assert later.state == CredentialState.scheduled
    assert later.recipients[0].status == NOT_SENT
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    assert publishing.publish_due() == 0  # published once, never twice
    assert publishing.publish_due(now=now + timedelta(hours=2)) == 1
    assert fresh(later.recipients[0]).status == NOT_OPENED
    assert len(sink.messages) == 2


def test_the_queue_runs_publish_due_as_a_periodic_task(app, sink):
    tasks = app.extensions["helpdesk_tasks"]
    credential = create_credential("Due", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="scheduled", scheduled_at=utcnow() - timedelta(seconds=1))
    tasks.publish_due()  # the immediate queue runs it in-line
    assert fresh(credential.recipients[0]).status == NOT_OPENED


def test_dont_email_publishes_without_any_delivery(app, sink):
    credential = create_credential("Quiet", [{"name": "Ann", "email": "ann@valley.example"},
                                             {"name": "Bob"}],
                                   state="published", send_email=False)
    db.session.expire_all()
    assert credential.state == CredentialState.published
    assert [r.status for r in credential.recipients] == [NOT_SENT, NOT_PROVIDED]
    assert db.session.scalars(select(Delivery)).all() == []
    assert sink.messages == []


# --- a provider that refuses for good ---------------------------------------------------------

class RefusingProvider:
    """Refuses addresses on its suppression list, like an email service does."""

    name = "refusing"
    verify_webhook = None
    parse_webhook = None

    def __init__(self):
        self.suppressed = {"ann@valley.example"}
        self.sent = []

    def send(self, message):
        if message.to in self.suppressed:
            return SendResult.refused("the address is on the suppression list")
        self.sent.append(message.to)
        return SendResult.accepted(message_id=f"<{message.correlation_id}@refusing>")


class RefusingPlugin:
    def __init__(self):
        self.provider = RefusingProvider()

    @hookimpl
    def helpdesk_providers(self, config):
        return [self.provider]


def test_a_refused_send_shows_not_sent_with_the_reason_and_can_be_resent(app_factory, api):
    app = app_factory(PROVIDER="refusing")
    with app.app_context():
        plugin = RefusingPlugin()
        plugins.plugin_manager(app).register(plugin, name="refusing")
        plugins.reset_providers(app)
        credential = create_credential("Refused", [{"name": "Ann", "email": "ann@valley.example"}],
                                       state="published")
        ann = fresh(credential.recipients[0])
        assert ann.status == NOT_SENT
        (refused,) = ann.deliveries
        assert refused.status == NOT_SENT
        assert [(e.type, e.reason) for e in refused.events] == [
            ("queued", None), ("refused", "the address is on the suppression list")]
        assert "send_now" in [t.action for t in status_tips(NOT_SENT)]

        assert ann.cause == "suppressed"
        with pytest.raises(publishing.NeedsConfirmation, match="Suppressed by the email service"):
            publishing.resend(ann)  # it would be dropped again
        plugin.provider.suppressed.clear()  # the reason is fixed
        publishing.resend(ann, confirmed=True)
        assert kinds(ann) == [("ann@valley.example", "send", NOT_SENT),
                              ("ann@valley.example", "resend", NOT_OPENED)]
        assert fresh(ann).status == NOT_OPENED
        assert plugin.provider.sent == ["ann@valley.example"]


# --- resend -----------------------------------------------------------------------------------

def test_resend_to_a_corrected_address_keeps_the_old_delivery(app, sink):
    credential = create_credential("Typo", [{"name": "Bob", "email": "bob@gmial.com"}],
                                   state="published")
    bob = fresh(credential.recipients[0])
    assert bob.status == BOUNCED

    publishing.resend(bob, "bob@gmail.com")

    bob = fresh(bob)
    assert (bob.email, bob.email_domain, bob.status) == ("bob@gmail.com", "gmail.com", NOT_OPENED)
    assert kinds(bob) == [("bob@gmial.com", "send", BOUNCED),
                          ("bob@gmail.com", "resend", NOT_OPENED)]
    assert [m.recipients for m in sink.messages] == [["bob@gmail.com"]]


def test_resend_to_a_malformed_address_changes_nothing(app, sink):
    credential = create_credential("Typo", [{"name": "Bob", "email": "bob@gmial.com"}],
                                   state="published")
    bob = fresh(credential.recipients[0])
    with pytest.raises(ValueError):
        publishing.resend(bob, "bob@@gmail.com")
    db.session.rollback()
    bob = fresh(bob)
    assert (bob.email, bob.email_error, bob.status) == ("bob@gmial.com", None, BOUNCED)
    assert len(bob.deliveries) == 1


def test_resend_in_status_resends_only_that_status_of_that_credential(app, sink):
    credential = create_credential("Mixed", [
        {"name": "Ann", "email": "ann@valley.example"},
        {"name": "Bob", "email": "bob@gmial.com"},
        {"name": "Gus", "email": "gus@hotmial.com"},
        {"name": "Dee"}], state="published")
    other = create_credential("Other", [{"name": "Eve", "email": "eve@gmial.com"}],
                              state="published")
    sent_before = len(sink.messages)
    for domain in TYPO_DOMAINS:
        sink.refuse_domains.pop(domain)  # as if those servers now accepted our mail

    # Unchanged, the typos would only bounce again: skipped unless asked for.
    assert publishing.resend_in_status(credential.id, BOUNCED) == (0, {"typo": 2})
    assert publishing.resend_in_status(credential.id, BOUNCED, include_all=True) == (2, {})

    statuses = {r.name: r.status for r in fresh(credential.recipients[0]).credential.recipients}
    assert statuses == {"Ann": NOT_OPENED, "Bob": NOT_OPENED, "Gus": NOT_OPENED,
                        "Dee": NOT_PROVIDED}
    assert fresh(other.recipients[0]).status == BOUNCED
    assert sorted(m.recipients[0] for m in sink.messages[sent_before:]) == [
        "bob@gmial.com", "gus@hotmial.com"]
    assert publishing.resend_in_status(credential.id, NOT_PROVIDED).queued == 0
    with pytest.raises(ValueError, match="status must be one of"):
        publishing.resend_in_status(credential.id, "lost")


def test_resending_never_publishes_a_draft_behind_the_users_back(app, sink):
    credential = create_credential("Draft", [{"name": "Ann", "email": "ann@valley.example"}])
    assert publishing.resend_in_status(credential.id, NOT_SENT).queued == 0
    with pytest.raises(publishing.NotPublished, match="“Draft” is a draft: publish it"):
        publishing.resend(credential.recipients[0])
    db.session.expire_all()
    assert credential.state == CredentialState.draft and not sink.messages
    assert credential.recipients[0].status == NOT_SENT


def test_resend_bounced_at_domain_after_its_it_allowlists_the_sender(app_factory):
    policy = "550 5.7.1 Message rejected by sender policy"
    with SmtpSink(refuse_domains={"strict-corp.example": policy}) as corp_sink:
        app = app_factory(corp_sink)
        with app.app_context():
            credential = create_credential("Corp", [
                {"name": "Ann", "email": "ann@strict-corp.example"},
                {"name": "Bob", "email": "bob@Strict-Corp.example"},
                {"name": "Cy", "email": "cy@valley.example"}], state="published")
            other = create_credential("Corp 2", [
                {"name": "Dee", "email": "dee@strict-corp.example"}], state="published",
                send_email=False)
            ann = fresh(credential.recipients[0])
            assert ann.status == BOUNCED
            assert ann.deliveries[0].events[-1].reason == policy

            corp_sink.refuse_domains.clear()  # their IT allowlisted the sender
            # A refusal by policy is lifted by their IT: resending unchanged can help.
            assert publishing.resend_bounced_at_domain("STRICT-corp.example ") == (2, {})

            assert [r.status for r in fresh(ann).credential.recipients] == [NOT_OPENED] * 3
            assert fresh(other.recipients[0]).status == NOT_SENT  # not bounced: left alone
            assert sorted(m.recipients[0] for m in corp_sink.messages) == [
                "ann@strict-corp.example", "bob@strict-corp.example", "cy@valley.example"]
            assert publishing.resend_bounced_at_domain("strict-corp.example").queued == 0


# --- nudges -----------------------------------------------------------------------------------

def age_deliveries(recipient: Recipient, days: float) -> None:
    db.session.execute(update(Delivery).where(Delivery.recipient_id == recipient.id)
                       .values(created_at=utcnow() - timedelta(days=days)))
    db.session.commit()


def open_latest(client, recipient: Recipient) -> None:
    """Open the email as a mail app does: load its tracking pixel."""
    url = pixel.pixel_url(fresh(recipient).deliveries[-1])
    assert client.get(urlsplit(url).path).status_code == 200


@pytest.fixture
def nudge_app(app_factory, sink):
    app = app_factory(sink, NUDGE_AFTER_DAYS=7, NUDGE_MAX=2)
    with app.app_context():
        yield app


def test_nudge_after_the_configured_days_at_most_the_configured_times(nudge_app, sink):
    client = nudge_app.test_client()
    credential = create_credential("Nudges", [
        {"name": "Old", "email": "old@valley.example"},
        {"name": "Recent", "email": "recent@valley.example"},
        {"name": "Opener", "email": "opener@valley.example"},
        {"name": "Bounced", "email": "bounced@gmial.com"}], state="published")
    old, recent, opener, bounced = credential.recipients
    age_deliveries(old, 8)
    age_deliveries(recent, 3)
    age_deliveries(opener, 30)
    age_deliveries(bounced, 30)
    open_latest(client, opener)
    assert fresh(opener).status == OPENED
    sent_before = len(sink.messages)

    assert publishing.nudge_due() == 1

    assert [m.recipients for m in sink.messages[sent_before:]] == [["old@valley.example"]]
    assert [k for _, k, _ in kinds(old)] == ["send", "nudge"]
    assert fresh(old).nudges == 1 and fresh(old).status == NOT_OPENED
    assert publishing.nudge_due() == 0  # the nudge is the last send now: wait again

    later = utcnow() + timedelta(days=8)
    assert publishing.nudge_due(now=later) == 2  # old (second nudge) and recent (first)
    assert fresh(old).nudges == 2 and fresh(recent).nudges == 1
    assert publishing.nudge_due(now=later + timedelta(days=8)) == 1  # recent; old is at NUDGE_MAX
    assert publishing.nudge_due(now=later + timedelta(days=100)) == 0
    assert fresh(opener).nudges == 0 and len(fresh(opener).deliveries) == 1
    assert fresh(bounced).nudges == 0


def test_a_recipient_who_opens_an_earlier_email_is_not_nudged_again(nudge_app, sink):
    client = nudge_app.test_client()
    credential = create_credential("Nudged", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    ann = credential.recipients[0]
    age_deliveries(ann, 8)
    first = fresh(ann).deliveries[0]
    assert publishing.nudge_due() == 1
    # The first email is opened after the nudge went out: that still counts.
    assert client.get(urlsplit(pixel.pixel_url(first)).path).status_code == 200
    assert fresh(ann).status == OPENED
    assert publishing.nudge_due(now=utcnow() + timedelta(days=30)) == 0


def test_the_nudge_command(nudge_app, sink):
    credential = create_credential("CLI", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    age_deliveries(credential.recipients[0], 10)
    result = nudge_app.test_cli_runner().invoke(args=["nudge"])
    assert result.exit_code == 0, result.output
    assert "Nudged 1 recipients." in result.output
    assert fresh(credential.recipients[0]).nudges == 1
    assert nudge_app.test_cli_runner().invoke(args=["nudge"]).output.startswith("Nudged 0")


def test_the_queue_runs_nudges_as_a_periodic_task(nudge_app, sink):
    credential = create_credential("Task", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    age_deliveries(credential.recipients[0], 10)
    nudge_app.extensions["helpdesk_tasks"].nudge_due()  # the immediate queue runs it in-line
    assert fresh(credential.recipients[0]).nudges == 1
    assert [k for _, k, _ in kinds(credential.recipients[0])] == ["send", "nudge"]


# --- the status-changed hook ------------------------------------------------------------------

class StatusLog:
    def __init__(self):
        self.changes = []

    @hookimpl
    def helpdesk_status_changed(self, recipient, old, new):
        assert recipient.status == new  # already committed
        self.changes.append((recipient.name, old, new))


def test_status_changed_fires_once_per_real_change_and_never_for_a_replay(app, sink):
    log = StatusLog()
    plugins.plugin_manager(app).register(log, name="status-log")
    credential = create_credential("Hooked", [{"name": "Ann", "email": "ann@valley.example"},
                                              {"name": "Bob"}], state="published")
    # A chunk's changes are announced once it is committed, before its sends go to the queue.
    assert log.changes == [("Ann", NOT_SENT, SENDING), ("Bob", NOT_SENT, NOT_PROVIDED),
                           ("Ann", SENDING, NOT_OPENED)]
    log.changes.clear()

    sent = fresh(credential.recipients[0]).deliveries[0]
    opened = ProviderEvent(provider=sent.provider, type="opened", event_id="open-1",
                           occurred_at=utcnow(), correlation_id=sent.correlation_id)
    assert record_events([opened]).stored == 1
    assert log.changes == [("Ann", NOT_OPENED, OPENED)]
    replay = record_events([opened, opened])
    assert (replay.stored, replay.duplicates) == (0, 2)
    accepted_again = ProviderEvent(provider=sent.provider, type="delivered", event_id="dlv-1",
                                   occurred_at=utcnow(), correlation_id=sent.correlation_id)
    assert record_events([accepted_again]).stored == 1  # new, but lower than opened
    publishing.publish(db.session.get(Credential, credential.id))  # already published
    assert log.changes == [("Ann", NOT_OPENED, OPENED)]


# --- end to end -------------------------------------------------------------------------------

def test_a_credential_posted_to_the_api_is_sent_and_its_statuses_read_back(api, sink):
    response = api.post("/api/v1/credentials", json={
        "title": "Cloud Practitioner", "state": "published", "send_email": True,
        "allow_typos": True, "recipients": [
            {"name": "Ann", "email": "ann@valley.example"},
            {"name": "Bob", "email": "bob@gmial.com"},
            {"name": "Cy", "email": None},
            {"name": "Dee", "email": "dee at valley"}]})
    assert response.status_code == 201, response.get_json()
    credential_id = response.get_json()["id"]
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    caught = sink.messages[0]
    assert "Cloud Practitioner" in caught.subject
    assert "/t/" in caught.html  # the tracking pixel

    listing = api.get("/api/v1/recipients", query_string={"credential_id": credential_id})
    assert listing.status_code == 200
    body = listing.get_json()
    assert {r["name"]: r["status"] for r in body["items"]} == {
        "Ann": NOT_OPENED, "Bob": BOUNCED, "Cy": NOT_PROVIDED, "Dee": NOT_SENT}
    assert body["counts"] == {"not_sent": 1, "not_provided": 1, "sending": 0, "not_opened": 1,
                              "bounced": 1, "opened": 0}

    bob_id = next(r["id"] for r in body["items"] if r["name"] == "Bob")
    assert api.post(f"/api/v1/recipients/{bob_id}/resend",
                    json={"email": "bob@gmail.com"}).status_code == 202
    assert sink.messages[-1].recipients == ["bob@gmail.com"]
    assert api.get("/api/v1/recipients", query_string={
        "credential_id": credential_id, "status": BOUNCED}).get_json()["total"] == 0


# --- several workers --------------------------------------------------------------------------

def _run_together(app, task, workers=4):
    """Run a task in several threads at once, each in its own app context (its own session),
    as the periodic task runs in every worker."""
    barrier = threading.Barrier(workers)
    results, errors = [], []

    def run():
        with app.app_context():
            barrier.wait()
            try:
                results.append(task())
            except Exception as error:  # reported below with the others' results
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_workers_running_publish_due_together_send_each_email_once(nudge_app, sink):
    credential = create_credential("Race", [{"name": f"R{i}", "email": f"r{i}@valley.example"}
                                            for i in range(5)],
                                   state="scheduled", scheduled_at=utcnow() - timedelta(minutes=1))
    results = _run_together(nudge_app, publishing.publish_due)
    assert sorted(results) == [0, 0, 0, 1]
    db.session.expire_all()
    assert [len(r.deliveries) for r in credential.recipients] == [1] * 5
    assert len(sink.messages) == 5


def test_workers_running_nudge_due_together_nudge_each_recipient_once(nudge_app, sink):
    credential = create_credential("Race", [{"name": f"R{i}", "email": f"r{i}@valley.example"}
                                            for i in range(5)], state="published")
    for recipient in credential.recipients:
        age_deliveries(recipient, 10)
    results = _run_together(nudge_app, publishing.nudge_due)
    assert sum(results) == 5
    db.session.expire_all()
    assert [(r.nudges, len(r.deliveries)) for r in credential.recipients] == [(1, 2)] * 5
    assert len(sink.messages) == 10
