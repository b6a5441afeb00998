"""The one path every event takes: stored once, statuses raised in bulk, and text from outside
made storable on every database."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from helpdesk import ingest
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.contract import ProviderEvent
from helpdesk.models import DeliveryEvent, Recipient, db
from helpdesk.status import BOUNCED, OPENED

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def event(event_id, type_, correlation_id, **extra):
    return ProviderEvent(provider="smtp", type=type_, event_id=event_id, occurred_at=WHEN,
                         correlation_id=correlation_id, **extra)


def test_nul_characters_and_oversized_ids_are_stored_not_refused(app):
    credential = create_credential("NUL", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    correlation = credential.recipients[0].deliveries[0].correlation_id
    result = record_events([
        event("bounce\x00one", "bounced", correlation, reason="550\x00 no such user",
              mta_response="5.1.1\x00", severity="permanent"),
        event("stranger", "opened", "x" * 500, reason="for nobody we know")])
    assert (result.stored, result.unmatched) == (2, 1)
    stored = db.session.scalar(select(DeliveryEvent).where(DeliveryEvent.type == "bounced"))
    assert "\x00" not in stored.provider_event_id + stored.reason + stored.mta_response
    assert stored.reason == "550\ufffd no such user"
    assert db.session.scalar(select(Recipient.status)) == BOUNCED


def test_a_batch_repeating_itself_and_a_replay_store_each_event_once(app):
    credential = create_credential("Once", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    correlation = credential.recipients[0].deliveries[0].correlation_id
    batch = [event("open-1", "opened", correlation), event("open-1", "opened", correlation),
             event("bounce-1", "bounced", correlation)]
    first = record_events(batch)
    again = record_events(list(reversed(batch)))
    assert (first.stored, first.duplicates) == (2, 1)
    assert (again.stored, again.duplicates, again.changed) == (0, 3, [])
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.provider_event_id.in_(["open-1", "bounce-1"]))) == 2
    assert db.session.scalar(select(Recipient.status)) == OPENED


def test_a_failure_inside_the_batch_is_raised_and_stores_nothing(app, sink, monkeypatch):
    credential = create_credential("Course", [{"name": "Ann", "email": "ann@example.com"}],
                                   state="published")
    correlation = credential.recipients[0].latest_delivery.correlation_id
    before = db.session.scalar(select(func.count()).select_from(DeliveryEvent))

    def broken(delivery_ids):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ingest, "refresh_statuses", broken)
    with pytest.raises(RuntimeError, match="went away"):
        record_events([event("boom-1", "opened", correlation)])
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent)) == before


def test_an_event_from_another_provider_is_stored_but_changes_no_status(app):
    credential = create_credential("Theirs", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    delivery = credential.recipients[0].deliveries[0]
    assert delivery.provider == "smtp"
    result = record_events([ProviderEvent(
        provider="mailgun", type="bounced", event_id="mg-1", occurred_at=WHEN,
        correlation_id=delivery.correlation_id, recipient="ann@valley.example")])
    assert (result.stored, result.unmatched, result.changed) == (1, 1, [])
    stored = db.session.scalar(select(DeliveryEvent).where(DeliveryEvent.provider_event_id ==
                                                           "mg-1"))
    assert stored.delivery_id is None and stored.correlation_id == delivery.correlation_id
    assert db.session.scalar(select(Recipient.status)) != BOUNCED


def test_an_event_naming_another_address_is_stored_but_changes_no_status(app):
    credential = create_credential("Other", [{"name": "Ann", "email": "ann@bücher.example"}],
                                   state="published")
    correlation = credential.recipients[0].deliveries[0].correlation_id
    result = record_events([
        event("wrong", "bounced", correlation, recipient="eve@valley.example"),
        # The same address, spelled as the provider may: other case, the domain in IDNA.
        event("right", "opened", correlation, recipient="ANN@xn--bcher-kva.example")])
    assert (result.stored, result.unmatched) == (2, 1)
    wrong = db.session.scalar(select(DeliveryEvent).where(DeliveryEvent.provider_event_id ==
                                                          "wrong"))
    assert wrong.delivery_id is None
    assert db.session.scalar(select(Recipient.status)) == OPENED
