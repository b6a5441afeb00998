"""The status tallies (``helpdesk.tallies``): whatever happens to recipients (added, published,
bounced and opened, an address moved to another domain, deleted one by one or with their
credential), each count read from the tallies is what counting the recipients gives, before
and after folding; two writers and a fold at once on PostgreSQL neither deadlock nor miscount;
and the pages that show counts read no recipient table to get them."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from helpdesk import queries, tallies
from helpdesk.addresses import set_email
from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential, delete_credential, delete_recipients
from helpdesk.ingest import record_events
from helpdesk.models import (Credential, CredentialTally, Delivery, DomainTally, Recipient,
                             db, utcnow)
from helpdesk.status import BOUNCED, OPENED

from conftest import PG_URL
from test_costs import captured_statements, scans
from test_transactions import in_threads


def counted(**where) -> dict[str, int]:
    """Recipients per status, counted the slow way."""
    conditions = [getattr(Recipient, k) == v for k, v in where.items()]
    return queries.status_counts(db.session, *conditions)


def assert_tallies_true() -> None:
    assert queries.tallied_counts(db.session) == counted()
    credentials = db.session.scalars(select(Credential.id)).all()
    for credential_id in credentials:
        assert queries.tallied_counts(db.session, credential_id) == counted(
            credential_id=credential_id)
    assert queries.credential_counts(db.session, credentials) == {
        c: counted(credential_id=c) for c in credentials}
    domains = db.session.scalars(select(Recipient.email_domain).distinct()
                                 .where(Recipient.email_domain.is_not(None))).all()
    for stats in queries.domain_stats(db.session, domains + ["gone.example"]):
        assert stats.counts == counted(email_domain=stats.domain), stats.domain
    page, total = queries.domain_page(db.session, 1, 100)
    assert total == len(domains)
    assert {s.domain for s in page} == set(domains)


def event(delivery: Delivery, kind: str, n: int = 0) -> ProviderEvent:
    return ProviderEvent(provider=delivery.provider, type=kind,
                         event_id=f"{delivery.correlation_id}:{kind}:{n}",
                         occurred_at=utcnow() + timedelta(seconds=1 + n),
                         correlation_id=delivery.correlation_id, recipient=delivery.email)


def test_the_tallies_count_what_the_recipients_are_through_every_change(app):
    draft = create_credential("Draft", [{"name": "D1", "email": "d1@north.example"},
                                        {"name": "D2"}])
    sent = create_credential("Sent", [
        {"name": f"P{i}", "email": f"p{i}@{'north' if i % 2 else 'south'}.example"}
        for i in range(8)] + [{"name": "Nobody"}], state="published")
    draft_id, sent_id = draft.id, sent.id
    assert_tallies_true()
    deliveries = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    record_events([event(deliveries[0], "bounced"), event(deliveries[1], "opened"),
                   event(deliveries[2], "bounced")])
    assert_tallies_true()
    assert queries.tallied_counts(db.session, domain="south.example")[BOUNCED] == 2
    assert tallies.fold() > 0
    folded = db.session.scalar(select(func.count()).select_from(DomainTally))
    assert folded == db.session.scalar(select(func.count()).select_from(
        select(Recipient.email_domain, Recipient.status).distinct()
        .where(Recipient.email_domain.is_not(None)).subquery()))
    assert_tallies_true()

    ids = [d.recipient_id for d in deliveries]
    moved = db.session.get(Recipient, ids[0])
    set_email(moved, "p0@west.example")  # another domain, its status as it was
    db.session.commit()
    assert_tallies_true()
    record_events([event(deliveries[1], "opened", 1)])  # a replay changes no status
    delete_recipients([db.session.get(Recipient, ids[3])])
    assert_tallies_true()
    delete_credential(db.session.get(Credential, sent_id))  # the database cascades
    assert_tallies_true()
    assert queries.tallied_counts(db.session, sent_id) == dict.fromkeys(counted(), 0)
    tallies.fold()
    assert db.session.scalar(select(func.count()).where(
        CredentialTally.credential_id == sent_id)) == 0  # what sums to nought is gone
    assert queries.tallied_counts(db.session, draft_id) == counted(credential_id=draft_id)
    assert_tallies_true()


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (SQLite has one writer at a time)")
def test_two_writers_and_a_fold_at_once_neither_deadlock_nor_miscount(app):
    create_credential("Race", [{"name": f"P{i}", "email": f"p{i}@valley.example"}
                               for i in range(120)], state="published")
    deliveries = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    db.session.expunge_all()
    db.session.commit()

    def writer(order, kind):
        def write():
            for start in range(0, len(order), 10):
                record_events([event(d, kind) for d in order[start:start + 10]])
        return write

    def folder():
        for _ in range(15):
            tallies.fold()

    errors = in_threads(app, writer(deliveries, "bounced"), writer(deliveries[::-1], "opened"),
                        folder)
    assert errors == []
    assert set(db.session.scalars(select(Recipient.status))) == {OPENED}
    assert queries.tallied_counts(db.session, domain="valley.example")[OPENED] == 120
    assert_tallies_true()


@pytest.mark.parametrize("path", ["/", "/domains", "/api/v1/recipients",
                                  "/api/v1/recipients?domain=north.example"])
def test_the_pages_counts_read_no_recipient_table(app, agent_client, api, path):
    create_credential("Many", [{"name": f"P{i}", "email": f"p{i}@north.example"}
                               for i in range(30)], state="published")
    with captured_statements() as seen:
        client = api if path.startswith("/api") else agent_client
        assert client.get(path).status_code == 200
    counting = [(s, p) for s, p in seen if "count(" in s.lower() or "sum(" in s.lower()]
    assert counting
    assert not [s for s, _ in counting if "FROM recipient" in s]
    # The page itself walks an index as far as its LIMIT; its counts read the tallies only.
    assert not [line for line in scans(counting) if "recipient " in line.split("<-")[0]]
