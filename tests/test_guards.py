"""Guards for the sender's reputation, following each recipient's cause: no automatic nudge to
someone who complained, unsubscribed or is suppressed; a resend that would repeat a failure asks
first and says why; bulk resends skip the hopeless and say so; a nudge cooldown."""
from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk import publishing
from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.models import utcnow

from desk_data import page
from test_lifecycle import age_deliveries
from test_smtp import fresh


def report(recipient, event_type: str, reason: str) -> None:
    """A provider's later report about the recipient's delivered email."""
    delivery = fresh(recipient).deliveries[-1]
    record_events([ProviderEvent(
        provider="smtp", type=event_type, event_id=f"{event_type}-{delivery.id}",
        correlation_id=delivery.correlation_id, occurred_at=utcnow(), reason=reason)])


@pytest.fixture
def people(app, sink):
    credential = create_credential("Badge", [
        {"name": "Quiet", "email": "quiet@valley.example"},
        {"name": "Angry", "email": "angry@valley.example"},
        {"name": "Gone", "email": "gone@valley.example"},
        {"name": "Typo", "email": "typo@gmial.com"}], state="published")
    quiet, angry, gone, typo = credential.recipients
    report(angry, "complained", "the recipient marked the email as spam")
    report(gone, "unsubscribed", None)
    for r in credential.recipients:
        age_deliveries(r, 8)
    return quiet, angry, gone, typo


def test_no_automatic_nudge_to_someone_who_complained_or_unsubscribed(people, sink):
    quiet, angry, gone, _ = people
    assert (fresh(angry).status, fresh(angry).cause) == ("not_opened", "complained")
    before = len(sink.messages)
    assert publishing.nudge_due() == 1
    assert [m.recipients for m in sink.messages[before:]] == [["quiet@valley.example"]]
    assert fresh(angry).nudges == fresh(gone).nudges == 0


def test_an_open_by_a_privacy_proxy_is_nudged_an_open_by_a_person_is_not(app, sink):
    credential = create_credential("Badge", [{"name": "Mia", "email": "mia@valley.example"},
                                             {"name": "Pat", "email": "pat@valley.example"}],
                                   state="published")
    mia, pat = credential.recipients
    for recipient, code in ((mia, "machine_open"), (pat, None)):
        delivery = fresh(recipient).deliveries[-1]
        record_events([ProviderEvent(
            provider="smtp", type="opened", event_id=f"open-{delivery.id}", reason_code=code,
            correlation_id=delivery.correlation_id, occurred_at=utcnow())])
        age_deliveries(recipient, 8)
    assert [(fresh(r).status, fresh(r).cause) for r in (mia, pat)] == [
        ("opened", "machine_opened"), ("opened", "opened")]
    before = len(sink.messages)
    assert publishing.nudge_due() == 1
    assert [m.recipients for m in sink.messages[before:]] == [["mia@valley.example"]]


@pytest.mark.parametrize("name, why", [("Angry", "Marked as spam by the recipient"),
                                       ("Gone", "Unsubscribed"),
                                       ("Typo", "Likely typo in the domain")])
def test_a_resend_that_would_repeat_a_failure_asks_first_and_says_why(people, name, why):
    recipient = next(r for r in people if r.name == name)
    with pytest.raises(publishing.NeedsConfirmation, match=why):
        publishing.resend(recipient)
    assert len(fresh(recipient).deliveries) == 1  # nothing was sent
    publishing.resend(recipient, confirmed=True)
    assert len(fresh(recipient).deliveries) == 2


def test_a_corrected_address_needs_no_confirmation(people):
    typo = people[3]
    publishing.resend(typo, email="typo@gmail.com")
    assert fresh(typo).deliveries[-1].email == "typo@gmail.com"


def test_the_desk_asks_before_sending_to_someone_who_complained(agent_client, people, sink):
    angry = people[1]
    before = len(sink.messages)
    html = page(agent_client.post(f"/recipients/{angry.id}/resend", data={"kind": "nudge"}))
    assert 'id="confirm-form"' in html and "Send anyway" in html
    assert "Marked as spam by the recipient" in html
    assert 'name="confirm" value="yes"' in html and 'name="kind" value="nudge"' in html
    assert len(sink.messages) == before
    agent_client.post(f"/recipients/{angry.id}/resend", data={"kind": "nudge", "confirm": "yes"})
    assert len(sink.messages) == before + 1


def test_the_api_answers_409_with_the_cause_until_confirmed(api, people, sink):
    angry = people[1]
    response = api.post(f"/api/v1/recipients/{angry.id}/resend", json={})
    assert response.status_code == 409
    assert response.get_json()["cause"] == "complained"
    assert "confirm" in response.get_json()["error"]
    response = api.post(f"/api/v1/recipients/{angry.id}/resend", json={"confirm": True})
    assert response.status_code == 202


def test_a_nudge_cannot_be_pressed_again_within_the_cooldown(agent_client, people, sink):
    quiet = people[0]
    publishing.resend(quiet, kind="nudge")
    with pytest.raises(publishing.TooSoon, match="NUDGE_COOLDOWN_HOURS"):
        publishing.resend(quiet, kind="nudge")
    response = agent_client.post(f"/recipients/{quiet.id}/resend", data={"kind": "nudge"})
    assert response.status_code == 400 and "the next nudge can go from" in response.text
    later = utcnow() + timedelta(hours=25)
    publishing.resend(quiet, kind="nudge", now=later)
    assert [d.kind for d in fresh(quiet).deliveries] == ["send", "nudge", "nudge"]


def test_a_bulk_resend_skips_the_hopeless_and_says_how_many_and_why(agent_client, desk, sink):
    before = len(sink.messages)
    html = page(agent_client.post(f"/credentials/{desk.course.id}/resend",
                                  data={"status": "bounced"}, follow_redirects=True))
    assert "Skipped 4 recipients whom resending unchanged cannot help (4 likely typo in the " \
           "domain)" in html
    assert len(sink.messages) == before
    agent_client.post(f"/credentials/{desk.course.id}/resend",
                      data={"status": "bounced", "include_all": "on"})
    assert len(sink.messages) == before  # still refused, but tried: four more deliveries
    assert len(desk.recipient("Bob Typo").deliveries) == 2
