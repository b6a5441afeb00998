"""The Mailgun provider: its sender against a local fake of the messages API, its webhook parser
on payloads shaped as Mailgun's documentation shows them, and the whole path through the app:
publish → the queue sends through the fake → Mailgun's signed webhooks → statuses."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import secrets
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fake_mailgun import HANG, FakeMailgun
from stored import status_of
from helpdesk import plugins
from helpdesk.credentials import create_credential
from helpdesk.contract import (CORRELATION_HEADER, Message, NotConfigured, ServiceError,
                               SignatureError, WebhookError, capabilities)
from helpdesk.models import Delivery, DeliveryEvent, Recipient, db
from helpdesk.status import EVENT_TYPES as NORMALIZED_TYPES
from helpdesk_mailgun import EU_API_URL, US_API_URL, MailgunProvider, messages_url
from helpdesk_mailgun.webhook import EVENT_TYPES, parse_events, to_event, verify_signature

API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
DOMAIN = "mg.issuer.example"
SIGNING_KEY = "whsec-mailgun-signing-key-for-tests"
WEBHOOK = "/webhooks/mailgun"


# --- payloads shaped as Mailgun's webhook documentation shows them ----------------------------

def event_data(event: str, *, correlation_id: str | None = "c0ffee", recipient: str =
               "alice@example.com", message_id: str = "20240503140912.1.6BA35A4D8B8F2D4E@"
               + DOMAIN, event_id: str | None = None, timestamp: float = 1714745352.428391,
               **extra) -> dict:
    """One ``event-data`` object with the fields every documented event carries."""
    data = {
        "id": event_id or secrets.token_urlsafe(16),
        "timestamp": timestamp,
        "log-level": "info",
        "event": event,
        "envelope": {"sender": f"credentials@{DOMAIN}", "transport": "smtp",
                     "targets": recipient, "sending-ip": "209.61.151.1"},
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False,
                  "is-test-mode": False},
        "message": {"headers": {"to": f"Alice <{recipient}>", "message-id": message_id,
                                "from": f"Credentials <credentials@{DOMAIN}>",
                                "subject": "Your credential: Course"},
                    "attachments": [], "size": 4315},
        "recipient": recipient,
        "recipient-domain": recipient.rpartition("@")[2],
        "storage": {"url": f"https://storage.api.mailgun.net/v3/domains/{DOMAIN}/messages/AgE",
                    "key": "AgEFAbcdEfgh"},
        "campaigns": [],
        "tags": [],
        "user-variables": ({"helpdesk_delivery": correlation_id} if correlation_id else {}),
    }
    data.update(extra)
    return data


def delivered(**kw) -> dict:
    return event_data("delivered", **{"delivery-status": {
        "tls": True, "mx-host": "mx.example.com", "code": 250, "description": "",
        "session-seconds": 1.92, "utf8": True, "attempt-no": 1, "message": "OK",
        "certificate-verified": True}}, **kw)


def failed_permanent(**kw) -> dict:
    return event_data("failed", severity="permanent", reason="bounce", **{
        "log-level": "error",
        "delivery-status": {
            "tls": True, "mx-host": "smtp-in.example.com", "code": 550, "description": "",
            "session-seconds": 0.43, "utf8": True, "attempt-no": 1,
            "message": "5.1.1 The email account that you tried to reach does not exist. "
                       "Please try 5.1.1 double-checking the recipient's email address",
            "certificate-verified": True}}, **kw)


def failed_temporary(**kw) -> dict:
    return event_data("failed", severity="temporary", reason="generic", **{
        "log-level": "warn",
        "delivery-status": {
            "attempt-no": 2, "description": "No MX for example.com", "session-seconds": 0.0,
            "retry-seconds": 600, "code": 498, "message": "No MX for example.com"}}, **kw)


def opened(**kw) -> dict:
    return event_data("opened", ip="50.56.129.169", geolocation={
        "country": "US", "region": "CA", "city": "San Francisco"}, **{"client-info": {
            "client-type": "browser", "client-os": "Linux", "device-type": "desktop",
            "client-name": "Firefox", "user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}}, **kw)


def clicked(**kw) -> dict:
    return event_data("clicked", url="https://issuer.example/credentials/1", **kw)


def rejected(**kw) -> dict:
    return event_data("rejected", reject={
        "reason": "Sandbox subdomains are for test purposes only.", "description": ""},
        **{"log-level": "warn"}, **kw)


def signed(data: dict, *, key: str = SIGNING_KEY, timestamp: str | None = None,
           token: str | None = None) -> dict:
    """A webhook body signed as Mailgun signs it: hex HMAC-SHA256 of timestamp + token."""
    timestamp = timestamp or str(int(time.time()))
    token = token or secrets.token_hex(25)  # Mailgun's tokens are 50 characters
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(),
                         hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": data}


def body_of(payload: dict) -> bytes:
    return json.dumps(payload).encode()


# --- webhook parsing: pure functions ---------------------------------------------------------

def test_every_mailgun_event_maps_into_the_closed_vocabulary():
    assert set(EVENT_TYPES.values()) <= set(NORMALIZED_TYPES)


def test_a_permanent_failure_is_a_bounce_with_the_servers_reply():
    data = failed_permanent(correlation_id="d-1", event_id="Ase3f8dQQlaz",
                            timestamp=1714745352.428391)
    [event] = parse_events(body_of(signed(data)))
    assert event.provider == "mailgun"
    assert event.type == "bounced"
    assert event.severity == "permanent"
    assert event.event_id == "Ase3f8dQQlaz"
    assert event.occurred_at == datetime(2024, 5, 3, 14, 9, 12, 428391, tzinfo=timezone.utc)
    assert event.correlation_id == "d-1"
    assert event.message_id == f"20240503140912.1.6BA35A4D8B8F2D4E@{DOMAIN}"
    assert event.recipient == "alice@example.com"
    assert event.reason.startswith("5.1.1 The email account that you tried to reach")
    assert event.mta_response.startswith("550 5.1.1 The email account")
    assert event.raw == data


def test_a_temporary_failure_is_a_deferral_never_a_bounce():
    event = to_event(failed_temporary())
    assert (event.type, event.severity) == ("deferred", "temporary")
    assert event.reason == "No MX for example.com"
    assert event.mta_response == "498 No MX for example.com"
    # A failure that does not say it is permanent is not taken for a bounce either.
    without_severity = failed_temporary()
    del without_severity["severity"]
    assert to_event(without_severity).type == "deferred"


@pytest.mark.parametrize("payload, expected", [
    (lambda: event_data("accepted"), "accepted"),
    (delivered, "delivered"),
    (rejected, "rejected"),
    (opened, "opened"),
    (clicked, "clicked"),
    (lambda: event_data("complained", **{"log-level": "warn"}), "complained"),
    (lambda: event_data("unsubscribed"), "unsubscribed"),
    (lambda: event_data("list_member_uploaded"), "unknown"),
])
def test_each_documented_event_has_its_normalized_type(payload, expected):
    event = to_event(payload())
    assert event.type == expected
    assert event.correlation_id == "c0ffee"


def test_details_kept_for_rejections_clicks_and_unknown_events():
    assert to_event(rejected()).reason == "Sandbox subdomains are for test purposes only."
    assert to_event(rejected()).severity == "permanent"
    assert to_event(clicked()).reason == "https://issuer.example/credentials/1"
    assert "'stored'" in to_event(event_data("stored")).reason


def test_a_rejection_without_recipient_names_the_to_address():
    data = rejected(recipient="bob@example.com")
    del data["recipient"]
    assert to_event(data).recipient == "bob@example.com"


def test_an_event_without_id_gets_a_stable_dedupe_key():
    data = opened()
    del data["id"]
    assert to_event(data).event_id == to_event(json.loads(json.dumps(data))).event_id
    assert to_event(data).event_id != to_event(opened()).event_id


def test_an_event_without_correlation_keeps_its_message_id_for_matching():
    event = to_event(opened(correlation_id=None, message_id="<abc@mg.issuer.example>"))
    assert event.correlation_id is None
    assert event.message_id == "abc@mg.issuer.example"


@pytest.mark.parametrize("raw, status", [
    (b"{not json", 400),
    (b"\xff\xfe", 400),
    (b"[]", 400),
    (body_of({"signature": {}}), 406),
    (body_of({"signature": {}, "event-data": []}), 406),
    (body_of({"signature": {}, "event-data": {"timestamp": 1714745352.4}}), 406),
    (body_of({"signature": {}, "event-data": {"event": "delivered"}}), 406),
    (body_of({"signature": {}, "event-data": {"event": "delivered", "timestamp": "soon"}}), 406),
    (body_of({"signature": {}, "event-data": {"event": "delivered", "timestamp": 1e300}}), 406),
])
def test_unusable_bodies_are_refused_with_a_reason(raw, status):
    with pytest.raises(WebhookError) as refused:
        parse_events(raw)
    assert refused.value.status == status
    assert str(refused.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=12)
event_fields = st.fixed_dictionaries({}, optional={
    "event": st.sampled_from([*EVENT_TYPES, "stored", ""]) | json_values,
    "timestamp": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | json_values,
    "id": json_values, "severity": st.sampled_from(["permanent", "temporary"]) | json_values,
    "recipient": json_values, "user-variables": json_values, "message": json_values,
    "delivery-status": json_values, "reject": json_values, "url": json_values,
})


@settings(max_examples=300, deadline=None)
@given(event_fields)
def test_any_event_data_is_an_event_or_a_refusal_never_a_crash(data):
    """Whatever Mailgun (or anyone) puts in a signed body, the answer is an event or a 4xx."""
    try:
        [event] = parse_events(body_of({"signature": {}, "event-data": data}))
    except WebhookError as refused:
        assert refused.status == 406
    else:
        assert event.type in NORMALIZED_TYPES
        assert event.occurred_at.tzinfo is not None
        if data.get("event") == "failed" and data.get("severity") != "permanent":
            assert event.type == "deferred"


def sign_fields(timestamp="1714745352", token="t" * 50, key=SIGNING_KEY):
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return timestamp, token, signature.hexdigest()


def test_a_genuine_fresh_signature_returns_its_token_as_the_nonce():
    timestamp, token, signature = sign_fields()
    assert verify_signature(SIGNING_KEY, timestamp, token, signature, tolerance=600,
                            now=1714745352 + 599) == token


@pytest.mark.parametrize("change", ["key", "timestamp", "token", "signature", "not hex"])
def test_a_forged_signature_is_refused(change):
    timestamp, token, signature = sign_fields(key="another key" if change == "key"
                                              else SIGNING_KEY)
    if change == "timestamp":
        timestamp = "1714745353"
    elif change == "token":
        token = "u" + token[1:]
    elif change == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    elif change == "not hex":
        signature = "é" * 64
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SIGNING_KEY, timestamp, token, signature, tolerance=600,
                         now=1714745352)


@pytest.mark.parametrize("offset", [-601, 601, 10**9])
def test_a_stale_or_future_signature_is_refused(offset):
    timestamp, token, signature = sign_fields()
    with pytest.raises(SignatureError, match="stale"):
        verify_signature(SIGNING_KEY, timestamp, token, signature, tolerance=600,
                         now=1714745352 + offset)


@pytest.mark.parametrize("key", [None, "", "   "])
def test_without_a_signing_key_every_webhook_is_refused(key):
    with pytest.raises(NotConfigured, match="HELPDESK_MAILGUN_WEBHOOK_SIGNING_KEY"):
        verify_signature(key, *sign_fields(), tolerance=600, now=1714745352)


# --- the sender against the local fake of the messages API ----------------------------------

@pytest.fixture
def fake():
    with FakeMailgun(api_key=API_KEY, domain=DOMAIN) as api:
        yield api


def provider_for(api: FakeMailgun, **overrides) -> MailgunProvider:
    config = {"MAILGUN_API_KEY": api.api_key, "MAILGUN_DOMAIN": api.domain,
              "MAILGUN_API_URL": api.url, "SEND_TIMEOUT": 5, "SENDER_NAME": "Credentials"}
    config.update(overrides)
    return MailgunProvider(config)


def message(to: str = "alice@example.com", correlation_id: str = "corr-1") -> Message:
    return Message(correlation_id=correlation_id, sender="credentials@issuer.example", to=to,
                   to_name="Alice Liddell", subject="Your credential: Course",
                   text="Your credential is ready.", html="<p>Your credential is ready.</p>",
                   headers={CORRELATION_HEADER: correlation_id})


def test_the_region_decides_the_endpoint():
    assert MailgunProvider({}).api_url == US_API_URL == "https://api.mailgun.net/v3"
    assert EU_API_URL == "https://api.eu.mailgun.net/v3"
    assert messages_url(EU_API_URL + "/", "mg.issuer.example") == \
        "https://api.eu.mailgun.net/v3/mg.issuer.example/messages"


def test_a_queued_message_is_accepted_with_its_message_id(fake):
    provider = provider_for(fake)
    result = provider.send(message())
    provider.close()
    assert result.outcome == "accepted"
    assert result.message_id and "<" not in result.message_id
    assert result.message_id.endswith(f"@{DOMAIN}")
    [form] = fake.accepted
    assert form["from"] == ["Credentials <credentials@issuer.example>"]
    assert form["to"] == ["Alice Liddell <alice@example.com>"]
    assert form["subject"] == ["Your credential: Course"]
    assert form["text"] == ["Your credential is ready."]
    assert form["html"] == ["<p>Your credential is ready.</p>"]
    assert form["v:helpdesk_delivery"] == ["corr-1"]
    assert form["h:X-Helpdesk-Delivery"] == ["corr-1"]
    assert fake.requests[0]["path"] == f"/v3/{DOMAIN}/messages"


def test_one_connection_carries_a_threads_sends(fake):
    provider = provider_for(fake)
    for n in range(3):
        assert provider.send(message(correlation_id=f"c{n}")).outcome == "accepted"
    provider.close()
    assert len(fake.accepted) == 3
    assert fake.connections == 1


@pytest.mark.parametrize("answer, outcome, words", [
    (400, "refused", "'to' parameter is not a valid address"),
    (401, "refused", "HTTP 401): Forbidden"),
    (429, "deferred", "rate limit"),
    (500, "deferred", "unavailable (HTTP 500)"),
    (503, "deferred", "unavailable (HTTP 503)"),
])
def test_mailgun_answers_become_outcomes(fake, answer, outcome, words):
    fake.answer = answer
    result = provider_for(fake).send(message())
    assert result.outcome == outcome
    assert words in result.reason
    assert not fake.accepted


def test_a_wrong_key_or_domain_is_refused_and_the_key_never_shows(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_key = "key-wrong-0123456789"
    bad_key = provider_for(fake, MAILGUN_API_KEY=wrong_key).send(message())
    unknown_domain = provider_for(fake, MAILGUN_DOMAIN="mg.other.example").send(message())
    assert (bad_key.outcome, bad_key.reason) == (
        "refused", "Mailgun refused the message (HTTP 401): Forbidden")
    assert unknown_domain.outcome == "refused"
    assert "Domain not found: mg.other.example" in unknown_domain.reason
    shown = caplog.text + repr(provider_for(fake)) + bad_key.reason + unknown_domain.reason
    assert wrong_key not in shown and API_KEY not in shown


def test_a_hanging_api_defers_after_the_timeout(fake):
    fake.answer = HANG
    started = time.monotonic()
    result = provider_for(fake, SEND_TIMEOUT=0.5).send(message())
    assert result.outcome == "deferred"
    assert "did not answer within 0.5 s" in result.reason
    assert time.monotonic() - started < 5


def test_an_unreachable_api_defers():
    with FakeMailgun() as api:
        url = api.url  # a port that is closed once the fake stops
    result = MailgunProvider({"MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": DOMAIN,
                              "MAILGUN_API_URL": url, "SEND_TIMEOUT": 2}).send(message())
    assert result.outcome == "deferred"
    assert "cannot reach Mailgun" in result.reason


@pytest.mark.parametrize("missing", ["MAILGUN_API_KEY", "MAILGUN_DOMAIN"])
def test_without_key_or_domain_nothing_is_sent(fake, missing):
    result = provider_for(fake, **{missing: None}).send(message())
    assert result.outcome == "refused"
    assert f"HELPDESK_{missing} is not set" == result.reason
    assert not fake.requests


# --- through the app: publish, send through the fake, post the webhooks ---------------------

def mailgun_app(app_factory, api: FakeMailgun, **overrides):
    settings = dict(PROVIDER="mailgun", MAILGUN_API_KEY=api.api_key, MAILGUN_DOMAIN=api.domain,
                    MAILGUN_API_URL=api.url, MAILGUN_WEBHOOK_SIGNING_KEY=SIGNING_KEY,
                    SEND_TIMEOUT=5, SEND_RETRY_DELAY=3600)  # a deferral waits: still "sending"
    settings.update(overrides)
    return app_factory(**settings)


def publish(recipients: list[dict]) -> dict[str, Recipient]:
    credential = create_credential("Course", recipients, state="published")
    return {r.name: r for r in credential.recipients}


def correlation_of(recipient: Recipient) -> str:
    return db.session.scalars(select(Delivery.correlation_id)
                              .where(Delivery.recipient_id == recipient.id)).one()


def about(recipient: Recipient) -> dict:
    """What an event names of its delivery: the correlation id and the address."""
    return {"correlation_id": correlation_of(recipient), "recipient": recipient.email}


def post(client, payload) -> tuple[int, dict]:
    raw = payload if isinstance(payload, bytes) else body_of(payload)
    response = client.post(WEBHOOK, data=raw, content_type="application/json")
    return response.status_code, response.get_json()


@pytest.fixture
def sent(app_factory, fake):
    """An app on Mailgun with three recipients whose emails the fake accepted."""
    app = mailgun_app(app_factory, fake)
    with app.app_context():
        people = publish([{"name": n, "email": f"{n}@example.com"} for n in ("ada", "bob", "cy")])
        # Mailgun queued them; "Sending" until it reports "delivered"
        assert {status_of(r) for r in people.values()} == {"sending"}
        yield app.test_client(), people


def test_the_mailgun_plugin_is_found_through_its_entry_point(app_factory, fake):
    app = mailgun_app(app_factory, fake)
    with app.app_context():
        provider = plugins.provider()
    assert isinstance(provider, MailgunProvider)
    assert plugins.distribution_of(provider).startswith("helpdesk ")


def test_signed_events_raise_statuses(sent):
    client, people = sent
    ada, bob = about(people["ada"]), about(people["bob"])
    assert post(client, signed(delivered(**ada)))[0] == 200
    assert post(client, signed(opened(**ada)))[0] == 200
    code, result = post(client, signed(failed_permanent(**bob)))
    assert code == 200
    assert result == {"received": 1, "stored": 1, "duplicates": 0, "unmatched": 0,
                      "status_changes": 1}
    assert status_of(people["ada"]) == "opened"
    assert status_of(people["bob"]) == "bounced"
    assert status_of(people["cy"]) == "sending"
    bounce = db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.correlation_id == bob["correlation_id"],
        DeliveryEvent.type == "bounced")).one()
    assert bounce.severity == "permanent"
    assert bounce.mta_response.startswith("550 5.1.1")
    assert bounce.raw["delivery-status"]["code"] == 550


def test_a_rejection_bounces_and_a_temporary_failure_never_does(sent):
    client, people = sent
    ada, bob = about(people["ada"]), about(people["bob"])
    for _ in range(3):
        assert post(client, signed(failed_temporary(**ada)))[0] == 200
    assert post(client, signed(rejected(**bob)))[0] == 200
    assert status_of(people["ada"]) == "sending"
    assert status_of(people["bob"]) == "bounced"
    deferrals = db.session.scalars(select(DeliveryEvent.severity).where(
        DeliveryEvent.correlation_id == ada["correlation_id"],
        DeliveryEvent.type == "deferred")).all()
    assert deferrals == ["temporary"] * 3


def test_the_same_event_with_a_fresh_token_is_stored_once(sent):
    client, people = sent
    data = opened(**about(people["ada"]))
    first, second = post(client, signed(data)), post(client, signed(data))
    assert first == (200, {"received": 1, "stored": 1, "duplicates": 0, "unmatched": 0,
                           "status_changes": 1})
    assert second == (200, {"received": 1, "stored": 0, "duplicates": 1, "unmatched": 0,
                            "status_changes": 0})
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.type == "opened")) == 1


def test_events_in_any_order_give_the_same_statuses(app_factory, fake):
    bounce_set = (delivered, failed_temporary, failed_permanent)
    open_set = (delivered, failed_permanent, opened, clicked)
    orders = [("bounced", order) for order in itertools.permutations(bounce_set)] + \
             [("opened", order) for order in itertools.permutations(open_set)]
    app = mailgun_app(app_factory, fake)
    with app.app_context():
        people = publish([{"name": f"p{i}", "email": f"p{i}@example.com"}
                          for i in range(len(orders))])
        client = app.test_client()
        for i, (_, order) in enumerate(orders):
            named = about(people[f"p{i}"])
            for make in order:
                assert post(client, signed(make(**named)))[0] == 200
        assert [status_of(people[f"p{i}"]) for i in range(len(orders))] == \
            [expected for expected, _ in orders]


def test_a_send_that_stays_unavailable_past_the_retries_ends_not_sent(app_factory, fake):
    fake.answer = 503
    app = mailgun_app(app_factory, fake, SEND_RETRY_WINDOW_HOURS=0)
    with app.app_context():
        person = publish([{"name": "ada", "email": "ada@example.com"}])["ada"]
        assert status_of(person) == "not_sent"
        reason = db.session.scalars(select(DeliveryEvent.mta_response).where(
            DeliveryEvent.correlation_id == correlation_of(person),
            DeliveryEvent.type == "expired")).one()
        assert reason == "Mailgun is unavailable (HTTP 503): Service Unavailable"


def test_every_status_through_mailguns_real_protocol(app_factory, fake):
    fake.answer_for.update({"refused@example.com": 400, "down@example.com": 500,
                            "busy@example.com": 429})
    app = mailgun_app(app_factory, fake)
    with app.app_context():
        people = publish([
            {"name": "accepted", "email": "accepted@example.com"},
            {"name": "refused", "email": "refused@example.com"},
            {"name": "bounced", "email": "bounced@example.com"},
            {"name": "opened", "email": "opened@example.com"},
            {"name": "no address", "email": None},
            {"name": "down", "email": "down@example.com"},
            {"name": "busy", "email": "busy@example.com"},
        ])
        client = app.test_client()
        bounced, opener = (db.session.scalars(select(Delivery).where(
            Delivery.recipient_id == people[name].id)).one() for name in ("bounced", "opened"))
        # Mailgun's events name the message as the API answered it, without the <>.
        assert f"<{bounced.provider_message_id}>" == fake.queued[bounced.correlation_id]
        assert post(client, signed(failed_permanent(
            correlation_id=bounced.correlation_id, recipient="bounced@example.com",
            message_id=bounced.provider_message_id)))[0] == 200
        # Without the user variable, the message id still finds the delivery.
        assert post(client, signed(opened(
            correlation_id=None, recipient="opened@example.com",
            message_id=opener.provider_message_id)))[0] == 200

        assert {name: status_of(r) for name, r in people.items()} == {
            "accepted": "sending", "refused": "not_sent", "bounced": "bounced",
            "opened": "opened", "no address": "not_provided", "down": "sending",
            "busy": "sending"}
        refusal = db.session.scalars(select(DeliveryEvent.reason).where(
            DeliveryEvent.correlation_id == correlation_of(people["refused"]),
            DeliveryEvent.type == "refused")).one()
        assert "'to' parameter is not a valid address" in refusal
        assert sorted(f["to"][0] for f in fake.accepted) == [
            "accepted <accepted@example.com>", "bounced <bounced@example.com>",
            "opened <opened@example.com>"]


# --- the suppression list -----------------------------------------------------------------------

def test_a_suppressed_address_is_found_and_removed_from_every_list_it_is_on(fake):
    provider = provider_for(fake)
    assert capabilities(provider).suppression_list
    fake.suppressions["bounces"]["alice@example.com"] = {
        "address": "alice@example.com", "code": "550", "error": "No such mailbox",
        "created_at": "Fri, 21 Oct 2011 11:02:55 UTC"}
    fake.suppressions["complaints"]["alice@example.com"] = {
        "address": "alice@example.com", "created_at": "Tue, 15 Nov 2016 08:25:11 GMT"}
    try:
        found = provider.suppression_lookup("alice@example.com")
        assert (found.list, found.reason) == ("bounces", "550 No such mailbox")
        assert found.since == datetime(2011, 10, 21, 11, 2, 55, tzinfo=timezone.utc)
        assert provider.suppression_lookup("bob@example.com") is None
        assert provider.suppression_remove("alice@example.com") is True
        assert fake.suppressions == {"bounces": {}, "complaints": {}, "unsubscribes": {}}
        deletes = [r["path"] for r in fake.requests if r.get("method") == "DELETE"]
        assert deletes == [f"/v3/{DOMAIN}/bounces/alice@example.com",
                           f"/v3/{DOMAIN}/complaints/alice@example.com"]
        assert provider.suppression_remove("alice@example.com") is False
    finally:
        provider.close()
    wrong = provider_for(fake, MAILGUN_API_KEY="key-wrong")
    with pytest.raises(ServiceError, match="HTTP 401") as error:
        wrong.suppression_lookup("alice@example.com")
    assert "key-wrong" not in str(error.value)
    wrong.close()


@pytest.mark.parametrize("code, reason_code", [(605, "suppressed"), (606, "suppressed"),
                                               (607, "suppressed"), (550, None)])
def test_a_drop_by_mailguns_own_lists_says_suppressed(code, reason_code):
    event = to_event({"event": "failed", "severity": "permanent", "id": f"drop-{code}",
                      "timestamp": 1764547200.5, "recipient": "ann@valley.example",
                      "delivery-status": {"code": code, "message": "Not delivering to "
                                          "previously bounced address"}})
    assert (event.type, event.reason_code) == ("bounced", reason_code)
