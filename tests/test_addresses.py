"""One "did you mean": every place that suggests a correction asks ``addresses.check_address``,
so a domain a plugin declares real is left alone everywhere, and a typo is corrected
everywhere."""
from __future__ import annotations

from datetime import datetime

import pytest
from flask import current_app

from helpdesk import hookimpl, plugins
from helpdesk.contract import ProviderEvent
from helpdesk.credentials import create_credential
from helpdesk.ingest import record_events
from helpdesk.maintenance import refresh_typos
from helpdesk.models import Recipient, db, utcnow
from helpdesk.queue import huey_of
from helpdesk.validation import check_email


class RegionalMail:
    @hookimpl
    def helpdesk_known_domains(self):
        return ["gmx.co"]


@pytest.fixture
def regional(app):
    plugins.plugin_manager().register(RegionalMail(), name="regional")
    app.extensions.pop("helpdesk_known_domains", None)


def bounce(correlation_id: str, reply: str = "550 5.1.2 no such domain") -> None:
    record_events([ProviderEvent(provider="smtp", type="bounced", event_id=f"{correlation_id}:b",
                                 occurred_at=utcnow(), correlation_id=correlation_id,
                                 severity="permanent", reason=reply)])


def places(api, agent_client, address: str) -> dict[str, bool]:
    """Whether each place offers gmx.com for ``address``."""
    credential = create_credential("Course", [{"name": "Ann", "email": address}],
                                   state="published")
    recipient = credential.recipients[0]
    bounce(recipient.latest_delivery.correlation_id)  # the recipient page offers a fix then
    # Accepted a moment before, gmx.co was read as a domain delivered to: read them again.
    current_app.extensions.pop("helpdesk_known_domains", None)
    checked = api.post("/api/v1/email/check", json={"email": address}).json
    created = api.post("/api/v1/credentials", json={
        "title": "Again", "state": "draft", "send_email": False,
        "recipients": [{"name": "Bo", "email": address}]})
    page = agent_client.get(f"/recipients/{recipient.id}").get_data(as_text=True)
    lookup = agent_client.get("/lookup", query_string={"q": address}).get_data(as_text=True)
    return {"email check": checked["suggestion"] == "ann@gmx.com",
            "create": created.status_code == 422 and "ann@gmx.com" in created.get_data(True),
            "recipient page": "Did you mean <strong>ann@gmx.com" in page,
            "lookup": "ann@gmx.com" in lookup}


def test_without_the_plugin_gmx_co_is_read_as_a_typo_everywhere(app, api, agent_client):
    assert check_email("ann@gmx.co").suggestion == "ann@gmx.com"
    assert places(api, agent_client, "ann@gmx.co") == dict.fromkeys(
        ("email check", "create", "recipient page", "lookup"), True)


def test_a_domain_a_plugin_declares_real_is_corrected_nowhere(app, regional, api, agent_client):
    assert places(api, agent_client, "ann@gmx.co") == dict.fromkeys(
        ("email check", "create", "recipient page", "lookup"), False)


# --- the installation's history as evidence -------------------------------------------------

def sent_to(*addresses: str) -> list[Recipient]:
    credential = create_credential("Course", [{"name": a, "email": a} for a in addresses],
                                   state="published")
    current_app.extensions.pop("helpdesk_known_domains", None)  # read the history again
    return credential.recipients


def diagnosed(recipient: Recipient) -> tuple[str, str | None]:
    db.session.expire_all()
    recipient = db.session.get(Recipient, recipient.id)
    return recipient.cause, recipient.typo_suggestion


def suggestion_for(api, address: str) -> str | None:
    current_app.extensions.pop("helpdesk_known_domains", None)
    return api.post("/api/v1/email/check", json={"email": address}).json["suggestion"]


def test_a_domain_that_bounced_as_host_unknown_is_corrected_there_and_for_the_next(app, api):
    assert suggestion_for(api, "bo@akol.com") is None  # akol.com might exist
    [ann] = sent_to("ann@akol.com")
    bounce(ann.latest_delivery.correlation_id, "550 5.1.2 <ann@akol.com>: Host unknown")
    assert diagnosed(ann) == ("typo", "ann@aol.com")
    assert suggestion_for(api, "bo@akol.com") == "bo@aol.com"  # typed next, at intake
    created = api.post("/api/v1/credentials", json={
        "title": "Again", "state": "draft", "send_email": False,
        "recipients": [{"name": "Bo", "email": "bo@akol.com"}]})
    assert created.status_code == 422 and created.json["typos"] == [
        {"index": 0, "email": "bo@akol.com", "suggestion": "bo@aol.com"}]


def test_a_missing_mailbox_is_no_evidence_of_a_typo(app, api):
    [ann] = sent_to("ann@akol.com")
    bounce(ann.latest_delivery.correlation_id, "550 5.1.1 <ann@akol.com>: User unknown")
    assert diagnosed(ann) == ("mailbox_unknown", None)
    assert suggestion_for(api, "bo@akol.com") is None


def test_a_delivery_at_the_domain_outweighs_a_host_unknown_bounce(app, api):
    ann, bo = sent_to("ann@akol.com", "bo@akol.com")  # both accepted: akol.com takes mail
    bounce(ann.latest_delivery.correlation_id, "550 5.1.2 Host unknown")
    assert diagnosed(ann) == ("domain_unknown", None)
    assert suggestion_for(api, "cy@akol.com") is None


# --- stored typo causes follow the history ----------------------------------------------------

def typo_list(agent_client) -> str:
    return agent_client.get("/typos").get_data(as_text=True)


def test_a_typo_stops_being_offered_once_a_plugin_declares_its_domain_real(app, agent_client):
    [ann] = sent_to("ann@gmx.co")
    bounce(ann.latest_delivery.correlation_id, "550 5.1.1 <ann@gmx.co>: User unknown")
    assert diagnosed(ann) == ("typo", "ann@gmx.com")
    assert refresh_typos() == 0  # nothing in the history contradicts it
    assert "ann@gmx.com" in typo_list(agent_client)

    plugins.plugin_manager().register(RegionalMail(), name="regional")
    assert refresh_typos() == 1
    assert diagnosed(ann) == ("mailbox_unknown", None)
    assert "ann@gmx.com" not in typo_list(agent_client)


def test_a_typo_stops_being_offered_once_its_domain_takes_mail(app, agent_client):
    [ann] = sent_to("ann@gmx.co")
    bounce(ann.latest_delivery.correlation_id, "550 5.1.1 <ann@gmx.co>: User unknown")
    assert refresh_typos() == 0 and diagnosed(ann) == ("typo", "ann@gmx.com")
    sent_to("bo@gmx.co")  # accepted: gmx.co is a domain that takes mail
    assert refresh_typos() == 1
    assert diagnosed(ann) == ("mailbox_unknown", None)
    assert "ann@gmx.com" not in typo_list(agent_client)


def test_a_host_unknown_bounce_makes_a_typo_of_an_earlier_bounce_at_that_domain(app, api):
    ann, bo = sent_to("ann@akol.com", "bo@akol.com")
    bounce(ann.latest_delivery.correlation_id, "550 5.0.0 <ann@akol.com>: delivery failed")
    assert refresh_typos() == 0 and diagnosed(ann) == ("bounced_other", None)
    bounce(bo.latest_delivery.correlation_id, "550 5.1.2 <bo@akol.com>: Host unknown")
    # Read a moment ago, the history still had Bo's acceptance: the next refresh corrects both.
    assert refresh_typos() == 2
    assert diagnosed(bo) == ("typo", "bo@aol.com")
    assert diagnosed(ann) == ("typo", "ann@aol.com")  # her bounce said less; the domain is gone
    assert refresh_typos() == 0


def test_the_worker_refreshes_typos_every_minute(app):
    for minute in (0, 1, 33):
        due = huey_of(app).read_periodic(datetime(2026, 1, 5, 9, minute))
        assert "refresh_typos" in {task.name for task in due}
