"""The SendGrid provider through SendGrid's real protocols: the mail-send API (a local fake that
checks every request as the real one does) and the signed Event Webhook (payloads shaped like
SendGrid's Event Webhook reference, signed with a fresh P-256 key, posted to the app's view)."""
from __future__ import annotations

import base64
import json
import random
import socket
import time
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from helpdesk import plugins
from helpdesk.auth import create_token, create_user
from helpdesk.credentials import create_credential
from helpdesk.contract import (Message, NotConfigured, ServiceError, SignatureError, WebhookError,
                               capabilities)
from helpdesk.models import Delivery, DeliveryEvent, Recipient, db
from helpdesk.queue import huey_of
from helpdesk.status import (BOUNCED, EVENT_TYPES, NOT_OPENED, NOT_PROVIDED, NOT_SENT, OPENED,
                             SENDING)
from helpdesk_sendgrid import SendgridProvider, mail_send_body
from helpdesk_sendgrid.webhook import (EVENT_TYPES as SENDGRID_EVENT_TYPES, MACHINE_OPEN,
                                       SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events,
                                       to_event, verify_signature)

from fake_api import provider_fixture
from fake_sendgrid import HANG, FakeSendgrid

API_KEY = "SG.test-key.do-not-log-me"


# --- helpers --------------------------------------------------------------------------------

@pytest.fixture
def fake_api():
    with FakeSendgrid(api_key=API_KEY) as api:
        yield api


@pytest.fixture(scope="module")
def private_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(private_key) -> str:
    """The key as SendGrid's settings page shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(private_key, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    signature = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: timestamp,
            "Content-Type": "application/json"}


def message(to="ann@valley.example", correlation_id="c0ffee" * 5 + "00") -> Message:
    return Message(correlation_id=correlation_id, sender="credentials@issuer.example", to=to,
                   to_name="Ann Example", subject="Your credential: Rust 101",
                   text="Your credential is ready.", html="<p>Your credential is ready.</p>",
                   headers={"X-Helpdesk-Delivery": correlation_id})


provider_for = provider_fixture(lambda api, **config: SendgridProvider({
    "SENDGRID_API_URL": api.url, "SENDGRID_API_KEY": API_KEY, "SEND_TIMEOUT": 2,
    "SENDER_NAME": "Credentials", **config}))


_event_counter = iter(range(10**6))


def sendgrid_event(event: str, *, email="ann@valley.example", delivery: str | None = None,
                   message_id: str | None = "14c5d75ce93.dfd.64b469", timestamp=1513299569,
                   **fields) -> dict:
    """An event shaped like the examples of SendGrid's Event Webhook reference, with the
    delivery's custom arg flattened in as SendGrid does."""
    payload = {
        "email": email,
        "timestamp": timestamp,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": "cat facts",
        "sg_event_id": base64.b64encode(f"evt-{next(_event_counter)}".encode()).decode(),
    }
    if message_id:
        payload["sg_message_id"] = f"{message_id}.filter0001.16648.5515E0B88.0"
    if delivery:
        payload["helpdesk_delivery"] = delivery
    payload.update(fields)
    return payload


DOC_FIELDS = {
    "processed": {},
    "deferred": {"ip": "168.1.1.1", "response": "400 try again later", "attempt": "5"},
    "delivered": {"ip": "168.1.1.1", "response": "250 OK"},
    "bounce": {"ip": "168.1.1.1", "reason": "500 unknown recipient", "status": "5.0.0",
               "type": "bounce", "bounce_classification": "Invalid Address"},
    "blocked": {"ip": "168.1.1.1", "reason": "550 5.7.1 Service unavailable; client host "
                "blocked using Spamhaus", "status": "5.7.1", "type": "blocked",
                "bounce_classification": "Reputation"},
    "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
    "open": {"useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP)",
             "ip": "255.255.255.255", "sg_machine_open": False},
    "click": {"useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP)",
              "ip": "255.255.255.255", "url": "http://www.sendgrid.com/",
              "url_offset": {"index": 0, "type": "html"}},
    "spamreport": {},
    "unsubscribe": {},
    "group_unsubscribe": {"useragent": "Mozilla/4.0", "ip": "255.255.255.255",
                          "url": "http://www.sendgrid.com/", "asm_group_id": 10},
    "group_resubscribe": {"useragent": "Mozilla/4.0", "ip": "255.255.255.255",
                          "url": "http://www.sendgrid.com/", "asm_group_id": 10},
}


def doc_event(kind: str, **kwargs) -> dict:
    name = "bounce" if kind == "blocked" else kind
    return sendgrid_event(name, **{**DOC_FIELDS[kind], **kwargs})


# --- the sender against the fake mail-send API ----------------------------------------------

def test_a_202_is_accepted_with_the_message_id_and_a_well_formed_request(fake_api,
                                                                        provider_for):
    provider = provider_for(fake_api)
    result = provider.send(message())
    assert result.outcome == "accepted"
    assert result.message_id and len(result.message_id) == 22
    request = fake_api.requests[-1]
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["personalizations"] == [{
        "to": [{"email": "ann@valley.example", "name": "Ann Example"}],
        "custom_args": {"helpdesk_delivery": message().correlation_id}}]
    assert body["from"] == {"email": "credentials@issuer.example", "name": "Credentials"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"] == {"X-Helpdesk-Delivery": message().correlation_id}


def test_one_connection_carries_a_whole_batch(fake_api, provider_for):
    provider = provider_for(fake_api)
    for i in range(5):
        assert provider.send(message(to=f"r{i}@valley.example")).outcome == "accepted"
    assert len(fake_api.accepted) == 5
    assert fake_api.connections == 1


def test_a_400_is_refused_with_sendgrids_own_explanation(fake_api, provider_for):
    fake_api.answer = 400
    result = provider_for(fake_api).send(message())
    assert result.outcome == "refused"
    assert result.reason == ("SendGrid refused the message (HTTP 400): The to email does not "
                             "contain a valid address. (personalizations.0.to.0.email)")


def test_a_wrong_api_key_is_refused_and_the_key_never_shows(fake_api, provider_for, caplog):
    caplog.set_level("DEBUG")
    provider = provider_for(fake_api, SENDGRID_API_KEY="SG.wrong-secret")
    result = provider.send(message())
    assert result.outcome == "refused"
    assert result.reason.startswith("SendGrid refused the message (HTTP 401): The provided "
                                    "authorization grant is invalid")
    for text in (result.reason, caplog.text, repr(provider)):
        assert "SG.wrong-secret" not in text


def test_a_missing_api_key_is_refused_without_a_request(fake_api, provider_for):
    result = provider_for(fake_api, SENDGRID_API_KEY=None).send(message())
    assert result.outcome == "refused"
    assert "HELPDESK_SENDGRID_API_KEY" in result.reason
    assert fake_api.requests == []


@pytest.mark.parametrize("answer, expected", [
    (429, "SendGrid rate limit (HTTP 429): too many requests"),
    (500, "SendGrid is unavailable (HTTP 500): Internal server error"),
    (503, "SendGrid is unavailable (HTTP 503): Internal server error"),
])
def test_rate_limits_and_server_errors_are_deferred(fake_api, provider_for, answer, expected):
    fake_api.answer = answer
    result = provider_for(fake_api).send(message())
    assert (result.outcome, result.reason) == ("deferred", expected)


def test_a_hanging_api_is_deferred_after_the_timeout(fake_api, provider_for):
    fake_api.answer = HANG
    started = time.monotonic()
    result = provider_for(fake_api, SEND_TIMEOUT=0.5).send(message())
    elapsed = time.monotonic() - started
    assert result.outcome == "deferred"
    assert result.reason == "SendGrid did not answer within 0.5 s"
    assert 0.5 <= elapsed < 3


def test_an_unreachable_api_is_deferred():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = SendgridProvider({"SENDGRID_API_URL": f"http://127.0.0.1:{port}/v3/mail/send",
                                 "SENDGRID_API_KEY": API_KEY, "SEND_TIMEOUT": 2})
    result = provider.send(message())
    provider.close()
    assert result.outcome == "deferred"
    assert result.reason.startswith("cannot reach SendGrid: ConnectionError")
    assert API_KEY not in result.reason


def test_the_body_without_names_or_headers_still_passes_sendgrids_checks(fake_api,
                                                                         provider_for):
    bare = Message(correlation_id="abc", sender="c@issuer.example", to="bo@valley.example",
                   to_name="", subject="s", text="t", html="<p>h</p>")
    body = mail_send_body(bare)
    assert body["personalizations"][0]["to"] == [{"email": "bo@valley.example"}]
    assert body["from"] == {"email": "c@issuer.example"}
    assert "headers" not in body
    assert provider_for(fake_api).send(bare).outcome == "accepted"


# --- signature checks, pure ------------------------------------------------------------------

def test_a_genuine_fresh_signature_passes(private_key):
    body = json.dumps([doc_event("processed")]).encode()
    headers = signed(private_key, body)
    verify_signature(public_key_b64(private_key), headers[TIMESTAMP_HEADER],
                     headers[SIGNATURE_HEADER], body, tolerance=600)


def test_a_pem_copy_of_the_key_is_accepted_too(private_key):
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    body = b"[]"
    headers = signed(private_key, body)
    verify_signature(pem, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body,
                     tolerance=600)


@pytest.mark.parametrize("key, message_part", [
    (None, "is not set"),
    ("", "is not set"),
    ("not base64 at all!", "is not a base64 DER public key"),
    (base64.b64encode(b"garbage").decode(), "is not a base64 DER public key"),
])
def test_no_usable_key_fails_closed(private_key, key, message_part):
    body = b"[]"
    headers = signed(private_key, body)
    with pytest.raises(NotConfigured, match=message_part):
        verify_signature(key, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body,
                         tolerance=600)


def test_a_key_on_another_curve_fails_closed(private_key):
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(NotConfigured, match="not an ECDSA P-256 public key"):
        verify_signature(public_key_b64(other), "1", "AA==", b"[]", tolerance=600)


@pytest.mark.parametrize("skew, word", [(-601, "old"), (601, "in the future")])
def test_stale_timestamps_are_refused(private_key, skew, word):
    now = time.time()
    body = b"[]"
    headers = signed(private_key, body, timestamp=str(int(now + skew)))
    with pytest.raises(SignatureError, match=f"stale: 60[12] seconds .*{word}"):
        verify_signature(public_key_b64(private_key), headers[TIMESTAMP_HEADER],
                         headers[SIGNATURE_HEADER], body, tolerance=600, now=now)


# --- parsing, pure -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, normalized, severity", [
    ("processed", "accepted", None),
    ("deferred", "deferred", "temporary"),
    ("delivered", "delivered", None),
    ("bounce", "bounced", "permanent"),
    ("blocked", "deferred", "temporary"),
    ("dropped", "rejected", "permanent"),
    ("open", "opened", None),
    ("click", "clicked", None),
    ("spamreport", "complained", None),
    ("unsubscribe", "unsubscribed", None),
    ("group_unsubscribe", "unsubscribed", None),
    ("group_resubscribe", "resubscribed", None),
])
def test_every_documented_event_maps_onto_our_vocabulary(kind, normalized, severity):
    payload = doc_event(kind, delivery="d1")
    event = to_event(payload)
    assert (event.type, event.severity) == (normalized, severity)
    assert event.provider == "sendgrid"
    assert event.event_id == payload["sg_event_id"]
    assert event.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=timezone.utc)
    assert event.correlation_id == "d1"
    assert event.message_id == "14c5d75ce93.dfd.64b469"  # the mail-send X-Message-Id
    assert event.recipient == "ann@valley.example"
    assert event.raw == payload


def test_the_map_covers_only_our_closed_vocabulary():
    assert set(SENDGRID_EVENT_TYPES.values()) <= set(EVENT_TYPES)


def test_reasons_carry_what_an_agent_needs():
    assert to_event(doc_event("bounce")).reason == \
        "hard bounce: 5.0.0 500 unknown recipient (Invalid Address)"
    assert to_event(doc_event("bounce")).mta_response == "500 unknown recipient"
    assert to_event(doc_event("blocked")).reason.startswith("soft bounce (blocked): 5.7.1 550")
    assert to_event(doc_event("dropped")).reason == "Bounced Address"
    assert to_event(doc_event("dropped")).mta_response is None
    assert to_event(doc_event("deferred")).reason == "400 try again later"
    assert to_event(doc_event("delivered")).mta_response == "250 OK"
    assert to_event(doc_event("click")).reason == "http://www.sendgrid.com/"
    assert to_event(doc_event("open")).reason is None
    assert to_event(doc_event("group_unsubscribe")).reason == \
        "unsubscribed from unsubscribe group 10"
    assert to_event(doc_event("group_resubscribe")).reason == \
        "resubscribed to unsubscribe group 10"


def test_a_machine_open_is_kept_and_said():
    event = to_event(doc_event("open", sg_machine_open=True))
    assert event.type == "opened"
    assert event.reason == MACHINE_OPEN
    assert event.reason_code == "machine_open"  # the contract's flag, which the diagnosis reads
    assert event.raw["sg_machine_open"] is True
    assert to_event(doc_event("open", sg_machine_open=False)).reason_code is None


def test_a_bounce_without_a_type_is_a_hard_bounce():
    payload = doc_event("bounce")
    del payload["type"]
    assert to_event(payload).type == "bounced"


def test_an_unknown_event_is_kept_as_unknown():
    event = to_event(sendgrid_event("account_status_change", type="compliance_suspend"))
    assert event.type == "unknown"
    assert "account_status_change" in event.reason


def test_an_event_without_sg_event_id_gets_a_stable_id():
    payload = doc_event("delivered")
    del payload["sg_event_id"]
    reordered = dict(reversed(list(payload.items())))
    assert to_event(payload).event_id == to_event(reordered).event_id
    assert to_event(payload).event_id.startswith("sha256:")
    assert to_event(payload).event_id != to_event({**payload, "timestamp": 1}).event_id


@pytest.mark.parametrize("body, error", [
    (b"{not json", "the body is not JSON"),
    (b"\xff\xfe", "the body is not UTF-8"),
    (b'{"event": "open"}', "must be a JSON array of events, not a dict"),
    (b'[{"event": "open", "timestamp": 1}, "open"]', "event 1: an event must be a JSON object"),
    (b'[{"timestamp": 1513299569}]', 'event 0: the event has no "event" name'),
    (b'[{"event": "open"}]', 'event 0: the event has no unix "timestamp"'),
    (b'[{"event": "open", "timestamp": "yesterday"}]', 'no unix "timestamp"'),
    (b'[{"event": "open", "timestamp": 1e300}]', "out of range"),
])
def test_malformed_bodies_are_refused_whole(body, error):
    with pytest.raises(WebhookError, match=error) as raised:
        parse_events(body)
    assert raised.value.status == 400


def test_an_empty_batch_is_no_events():
    assert parse_events(b"[]") == []


# --- the webhook view ----------------------------------------------------------------------

@pytest.fixture
def sendgrid_app(app_factory, fake_api, private_key):
    app = app_factory(PROVIDER="sendgrid", SENDGRID_API_URL=fake_api.url,
                      SENDGRID_API_KEY=API_KEY, SENDGRID_WEBHOOK_PUBLIC_KEY=public_key_b64(
                          private_key), SEND_TIMEOUT=2)
    with app.app_context():
        yield app


@pytest.fixture
def client(sendgrid_app):
    return sendgrid_app.test_client()


def post(client, private_key, body: bytes | list, headers=None, timestamp=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/webhooks/sendgrid", data=raw,
                       headers=headers if headers is not None else signed(private_key, raw,
                                                                          timestamp))


def publish(*emails) -> dict[str | None, Delivery]:
    """Publish a credential to these addresses through SendGrid; its deliveries by address."""
    credential = create_credential("Rust 101", [{"name": f"R{i}", "email": e}
                                                for i, e in enumerate(emails)],
                                   state="published")
    return {r.email: r.latest_delivery for r in credential.recipients}


def statuses() -> dict[str | None, str]:
    db.session.expire_all()
    return {r.email: r.status for r in db.session.scalars(select(Recipient))}


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(DeliveryEvent))


def test_signed_events_raise_statuses(client, private_key):
    sent = publish("ann@valley.example", "bob@valley.example", "cat@valley.example")
    assert set(statuses().values()) == {SENDING}  # SendGrid took them; no "delivered" yet
    ann, bob, cat = (sent[f"{n}@valley.example"].correlation_id for n in ("ann", "bob", "cat"))
    batch = [doc_event("processed", delivery=ann, email="ann@valley.example"),
             doc_event("delivered", delivery=ann, email="ann@valley.example"),
             doc_event("open", delivery=ann, email="ann@valley.example"),
             doc_event("bounce", delivery=bob, email="bob@valley.example"),
             doc_event("blocked", delivery=cat, email="cat@valley.example")]
    response = post(client, private_key, batch)
    assert response.status_code == 200, response.json
    assert response.json["stored"] == 5
    assert statuses() == {"ann@valley.example": OPENED, "bob@valley.example": BOUNCED,
                          "cat@valley.example": SENDING}
    blocked = db.session.scalar(select(DeliveryEvent).where(
        DeliveryEvent.provider_event_id == batch[-1]["sg_event_id"]))
    assert (blocked.type, blocked.severity) == ("deferred", "temporary")
    assert blocked.raw == batch[-1]


def test_events_matched_by_message_id_when_the_custom_arg_is_missing(client, private_key):
    sent = publish("ann@valley.example")
    message_id = sent["ann@valley.example"].provider_message_id
    response = post(client, private_key, [doc_event("open", message_id=message_id)])
    assert response.status_code == 200
    assert statuses() == {"ann@valley.example": OPENED}


def test_a_duplicate_inside_one_batch_is_stored_once(client, private_key):
    sent = publish("ann@valley.example")
    event = doc_event("open", delivery=sent["ann@valley.example"].correlation_id)
    response = post(client, private_key, [event, event])
    assert response.status_code == 200
    assert response.json["stored"] == 1
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.provider_event_id == event["sg_event_id"])) == 1


def test_order_does_not_matter(client, private_key):
    """The same events in order, in one batch, for one credential; shuffled, one request each,
    for another: every recipient ends with the same status."""
    stories = {
        "opened": ["processed", "delivered", "open", "click"],
        "bounced": ["processed", "deferred", "bounce"],
        "dropped": ["processed", "dropped"],
        "blocked": ["processed", "blocked", "deferred"],
        "delivered": ["processed", "delivered", "unsubscribe"],
    }
    in_order = publish(*(f"{s}@in-order.example" for s in stories))
    shuffled = publish(*(f"{s}@shuffled.example" for s in stories))
    batch, singles = [], []
    for story, kinds in stories.items():
        for kind in kinds:
            for target, deliveries in ((batch, in_order), (singles, shuffled)):
                address = f"{story}@{'in-order' if target is batch else 'shuffled'}.example"
                target.append(doc_event(kind, email=address,
                                        delivery=deliveries[address].correlation_id))
    assert post(client, private_key, batch).status_code == 200
    random.Random(7).shuffle(singles)
    for event in singles:
        assert post(client, private_key, [event]).status_code == 200
    result = statuses()
    for story in stories:
        assert result[f"{story}@in-order.example"] == result[f"{story}@shuffled.example"]
    assert result["opened@in-order.example"] == OPENED
    assert result["bounced@in-order.example"] == BOUNCED
    assert result["dropped@in-order.example"] == BOUNCED
    assert result["blocked@in-order.example"] == SENDING
    assert result["delivered@in-order.example"] == NOT_OPENED


# --- end to end: every status through SendGrid's protocol ------------------------------------

def test_every_status_through_sendgrid(client, private_key, fake_api, sendgrid_app):
    fake_api.answer_for.update({"bob@valley.example": 400, "fay@valley.example": 429,
                                "gus@valley.example": 500})
    sent = publish("ann@valley.example", "bob@valley.example", "cat@valley.example",
                   "dan@valley.example", None, "fay@valley.example", "gus@valley.example")
    correlation = {email: d.correlation_id for email, d in sent.items() if d}
    # The queue ran in-line: each message was handed to the fake API once.
    asked = [r["body"]["personalizations"][0] for r in fake_api.requests]
    assert sorted(p["to"][0]["email"] for p in asked) == sorted(correlation)
    assert all(p["custom_args"]["helpdesk_delivery"] == correlation[p["to"][0]["email"]]
               for p in asked)
    assert statuses() == {
        "ann@valley.example": SENDING, "bob@valley.example": NOT_SENT,
        "cat@valley.example": SENDING, "dan@valley.example": SENDING,
        None: NOT_PROVIDED, "fay@valley.example": SENDING, "gus@valley.example": SENDING}
    refusal = db.session.scalar(select(DeliveryEvent).where(
        DeliveryEvent.correlation_id == correlation["bob@valley.example"],
        DeliveryEvent.type == "refused"))
    assert "The to email does not contain a valid address." in refusal.reason
    deferral = db.session.scalar(select(DeliveryEvent).where(
        DeliveryEvent.correlation_id == correlation["fay@valley.example"],
        DeliveryEvent.type == "deferred"))
    assert "HTTP 429" in deferral.reason

    response = post(client, private_key, [
        doc_event("delivered", email="ann@valley.example",
                  delivery=correlation["ann@valley.example"]),
        doc_event("delivered", email="cat@valley.example",
                  delivery=correlation["cat@valley.example"]),
        doc_event("bounce", email="cat@valley.example",
                  delivery=correlation["cat@valley.example"]),
        doc_event("open", email="dan@valley.example", sg_machine_open=True,
                  delivery=correlation["dan@valley.example"])])
    assert response.status_code == 200
    assert statuses() == {
        "ann@valley.example": NOT_OPENED, "bob@valley.example": NOT_SENT,
        "cat@valley.example": BOUNCED, "dan@valley.example": OPENED,
        None: NOT_PROVIDED, "fay@valley.example": SENDING, "gus@valley.example": SENDING}

    # The rate limit lifts: the retry the queue scheduled goes through.
    fake_api.answer_for.clear()
    huey = huey_of(sendgrid_app)
    time.sleep(0.05)  # past SEND_RETRY_DELAY
    due = huey.read_schedule()
    # Retries due at the same time travel together, in one task.
    assert sorted(i for task in due for i in task.args[0]) == sorted(
        db.session.scalars(select(Delivery.id).where(Delivery.email.in_(
            ["fay@valley.example", "gus@valley.example"]))))
    for task in due:
        huey.execute(task)
    result = statuses()
    assert (result["fay@valley.example"], result["gus@valley.example"]) == (SENDING,
                                                                              SENDING)

    # What the JSON API shows agrees, reasons included.
    token = create_token(create_user("agent@issuer.example", "correct horse battery"))
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/recipients", headers=auth).json
    assert {item["email"]: item["status"] for item in listed["items"]} == result
    assert listed["counts"] == {NOT_SENT: 1, NOT_PROVIDED: 1, SENDING: 2, NOT_OPENED: 1,
                                BOUNCED: 1, OPENED: 1}
    ids = {item["email"]: item["id"] for item in listed["items"]}
    dan = client.get(f"/api/v1/recipients/{ids['dan@valley.example']}", headers=auth).json
    assert {"type": "opened", "reason": MACHINE_OPEN} in [
        {"type": e["type"], "reason": e["reason"]} for e in dan["deliveries"][0]["events"]]
    bob = client.get(f"/api/v1/recipients/{ids['bob@valley.example']}", headers=auth).json
    assert bob["deliveries"][0]["events"][-1]["reason"].startswith(
        "SendGrid refused the message (HTTP 400): The to email does not contain")


def test_the_sendgrid_provider_is_found_through_its_entry_point(sendgrid_app):
    provider = plugins.provider("sendgrid")
    assert isinstance(provider, SendgridProvider)
    assert plugins.distribution_of(provider).startswith("helpdesk ")


def test_a_send_that_keeps_failing_ends_not_sent_with_the_reason(client, fake_api,
                                                                 sendgrid_app):
    fake_api.answer = 500
    sendgrid_app.config["SEND_RETRY_WINDOW_HOURS"] = 0.1 / 3600  # a tenth of a second
    publish("gus@valley.example")
    huey = huey_of(sendgrid_app)
    for _ in range(10):  # each retry is scheduled with a doubling delay (0.01 s, 0.02 s, ...)
        time.sleep(0.05)
        due = huey.read_schedule()
        if not due and huey.scheduled_count() == 0:
            break
        for task in due:
            huey.execute(task)
    retries = len(fake_api.requests) - 1
    assert retries >= 1
    assert statuses() == {"gus@valley.example": NOT_SENT}
    types = [e.type for e in db.session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id))]
    assert types == ["queued"] + ["deferred"] * retries + ["expired"]
    final = db.session.scalar(select(DeliveryEvent).where(DeliveryEvent.type == "expired"))
    assert final.mta_response == "SendGrid is unavailable (HTTP 500): Internal server error"


# --- the suppression list -----------------------------------------------------------------------

def test_a_suppressed_address_is_found_on_its_list_and_removed_from_every_one(fake_api,
                                                                              provider_for):
    provider = provider_for(fake_api)
    assert capabilities(provider).suppression_list
    fake_api.suppressions["bounces"]["ann@valley.example"] = {
        "created": 1443651125, "email": "ann@valley.example", "reason": "550 5.1.1 unknown",
        "status": "5.1.1"}
    fake_api.suppressions["unsubscribes"]["ann@valley.example"] = {
        "recipient_email": "ann@valley.example"}
    found = provider.suppression_lookup("ann@valley.example")
    assert (found.list, found.reason) == ("bounces", "5.1.1 550 5.1.1 unknown")
    assert found.since == datetime(2015, 9, 30, 22, 12, 5, tzinfo=timezone.utc)
    assert provider.suppression_lookup("bob@valley.example") is None
    assert provider.suppression_remove("ann@valley.example") is True
    assert fake_api.suppressions == {"bounces": {}, "spam reports": {}, "unsubscribes": {}}
    deletes = [r["path"] for r in fake_api.requests if r.get("method") == "DELETE"]
    assert deletes == ["/v3/suppression/bounces/ann@valley.example",
                       "/v3/asm/suppressions/global/ann@valley.example"]
    assert all(r["headers"]["Authorization"] == f"Bearer {API_KEY}" for r in fake_api.requests)
    assert provider.suppression_remove("ann@valley.example") is False


def test_a_refused_key_is_a_service_error_without_the_key(fake_api, provider_for):
    provider = provider_for(fake_api, SENDGRID_API_KEY="SG.wrong")
    with pytest.raises(ServiceError, match="HTTP 401") as error:
        provider.suppression_lookup("ann@valley.example")
    assert "SG.wrong" not in str(error.value)


def test_a_dropped_address_is_suppressed_and_the_desk_clears_it_and_resends(
        sendgrid_app, client, fake_api, private_key):
    ann = publish("ann@valley.example")["ann@valley.example"]
    fake_api.suppressions["bounces"]["ann@valley.example"] = {
        "created": 1443651125, "email": "ann@valley.example", "reason": "550 unknown",
        "status": "5.1.1"}
    post(client, private_key, [doc_event("dropped", email="ann@valley.example",
                                         delivery=ann.correlation_id)])
    recipient = db.session.get(Recipient, ann.recipient_id)
    db.session.refresh(recipient)
    assert (recipient.status, recipient.cause, recipient.evidence) == (
        BOUNCED, "suppressed", "Bounced Address")
    user = create_user("agent@issuer.example", "correct horse battery")
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"] = user.get_id(), True
    html = client.get(f"/recipients/{recipient.id}").get_data(as_text=True)
    assert 'id="unsuppress-form"' in html
    sent_before = len(fake_api.accepted)
    response = client.post(f"/recipients/{recipient.id}/unsuppress")
    assert response.status_code == 303
    assert fake_api.suppressions["bounces"] == {}
    assert len(fake_api.accepted) == sent_before + 1  # the resend went to SendGrid
    db.session.refresh(recipient)
    assert [d.kind for d in recipient.deliveries] == ["send", "resend"]
