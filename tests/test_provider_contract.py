"""The provider contract suite: what every provider with webhooks keeps, run against each one in
the manner of django-anymail's ``webhook_cases.py``: SendGrid, Mailgun, Postmark and Amazon SES.

Each provider is one ``ProviderCase``: how to start its local fake API, the settings that point
the provider at it, and how to shape and sign its service's webhook requests. The tests below run
once per case: a send through the fake carries the correlation id, a delivered event makes the
recipient "not opened" and an open "opened", and a forged, unsigned, stale, replayed or
malformed request is refused without storing anything; an unknown event is stored as
``unknown``; without a key, webhooks fail closed.

To put a new provider through it, add one subclass of ``ProviderCase`` beside the others and list
it in ``CASES``: fill ``name``, ``capabilities``, ``fake()``, ``settings()``, ``request()`` (one signed request carrying one event of ours as the
service would post it), ``unsigned()`` (requests each lacking a part of the signature) and
``malformed()``. The provider-specific tests (every documented event's mapping, the service's
error answers) stay in the provider's own test module.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from helpdesk import plugins
from helpdesk.contract import capabilities
from helpdesk.credentials import create_credential
from helpdesk.models import DeliveryEvent, Recipient, db
from helpdesk.status import NOT_OPENED, OPENED, SENDING

from conftest import AWS_ACCESS_KEY, AWS_SECRET_KEY
from fake_mailgun import FakeMailgun
from fake_postmark import FakePostmark
from fake_sendgrid import FakeSendgrid
from fake_ses import FakeSes
from fake_sns import FakeSnsHost
from helpdesk_ses.demo import now_iso
from test_sendgrid import public_key_b64

Request = tuple[dict[str, str], bytes]  # headers, raw body


class ProviderCase(ABC):
    """What each provider's case supplies; the suite's tests are written once against it."""

    name: str
    capabilities: set[str]
    # The service signs a timestamp that can go stale (Postmark signs nothing: its basic auth
    # has no time in it, and ingest's dedupe makes its replays harmless).
    signs_a_time = True

    def attach(self, app, fake) -> None:
        """Adjust the built provider to reach the fake (SES: the local SNS host)."""

    @abstractmethod
    def fake(self) -> AbstractContextManager:
        """The local fake of the service's sending API."""

    @abstractmethod
    def settings(self, fake) -> dict[str, Any]:
        """App settings pointing the provider at ``fake``, with a webhook key."""

    @abstractmethod
    def without_key(self) -> dict[str, Any]:
        """The settings that leave the webhook key unset."""

    @abstractmethod
    def carried(self, fake) -> set[str]:
        """The correlation ids the fake was handed."""

    @abstractmethod
    def request(self, event: str, correlation_id: str, address: str, *,
                signed_at: float | None = None) -> Request:
        """A signed request with one event (``delivered``, ``opened`` or a name the service
        does not document) about a delivery, as the service posts it."""

    @abstractmethod
    def unsigned(self, request: Request) -> list[Request]:
        """``request`` with each part of its signature missing or altered in turn."""

    @abstractmethod
    def malformed(self) -> list[Request]:
        """Requests whose body cannot be read (signed where the signature is in the headers)."""


class SendgridCase(ProviderCase):
    name = "sendgrid"
    capabilities = {"webhooks", "reports_deliveries", "suppression_list"}
    key = ec.generate_private_key(ec.SECP256R1())

    def fake(self):
        return FakeSendgrid(api_key="SG.contract")

    def settings(self, fake):
        return {"SENDGRID_API_URL": fake.url, "SENDGRID_API_KEY": "SG.contract",
                "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_b64(self.key)}

    def without_key(self):
        return {"SENDGRID_WEBHOOK_PUBLIC_KEY": None}

    def carried(self, fake):
        return {r["body"]["personalizations"][0]["custom_args"]["helpdesk_delivery"]
                for r in fake.requests}

    def _signed(self, raw: bytes, signed_at: float | None = None) -> dict[str, str]:
        stamp = str(int(time.time() if signed_at is None else signed_at))
        signature = self.key.sign(stamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
        # The header names as SendGrid documents them, spelt here, not taken from the code.
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                "Content-Type": "application/json"}

    def request(self, event, correlation_id, address, *, signed_at=None):
        name = {"opened": "open"}.get(event, event)
        raw = json.dumps([{"email": address, "timestamp": int(time.time()), "event": name,
                           "sg_event_id": secrets.token_urlsafe(12),
                           "helpdesk_delivery": correlation_id}]).encode()
        return self._signed(raw, signed_at), raw

    def unsigned(self, request):
        headers, raw = request
        forged = []
        for name in ("X-Twilio-Email-Event-Webhook-Signature",
                     "X-Twilio-Email-Event-Webhook-Timestamp"):
            forged.append(({k: v for k, v in headers.items() if k != name}, raw))
        forged.append((headers, raw.replace(b"[{", b"[ {", 1)))  # the body changed
        return forged

    def malformed(self):
        return [(self._signed(raw), raw) for raw in
                (b"not json", b'{"event": "open"}', b'[{"event": "open"}]', b"[1]", b"\xff")]


class MailgunCase(ProviderCase):
    name = "mailgun"
    capabilities = {"webhooks", "reports_deliveries", "signs_one_time_tokens",
                    "suppression_list"}
    signing_key = "contract-signing-key"

    def fake(self):
        return FakeMailgun(api_key="key-contract", domain="mg.contract.example")

    def settings(self, fake):
        return {"MAILGUN_API_KEY": fake.api_key, "MAILGUN_DOMAIN": fake.domain,
                "MAILGUN_API_URL": fake.url, "MAILGUN_WEBHOOK_SIGNING_KEY": self.signing_key}

    def without_key(self):
        return {"MAILGUN_WEBHOOK_SIGNING_KEY": None}

    def carried(self, fake):
        return set(fake.queued)

    def _body(self, data: Any, signed_at: float | None = None) -> bytes:
        stamp = str(int(time.time() if signed_at is None else signed_at))
        token = secrets.token_hex(25)
        signature = hmac.new(self.signing_key.encode(), f"{stamp}{token}".encode(),
                             hashlib.sha256).hexdigest()
        return json.dumps({"signature": {"timestamp": stamp, "token": token,
                                         "signature": signature}, "event-data": data}).encode()

    def request(self, event, correlation_id, address, *, signed_at=None):
        data = {"id": secrets.token_urlsafe(12), "timestamp": time.time(), "event": event,
                "recipient": address, "user-variables": {"helpdesk_delivery": correlation_id}}
        return {"Content-Type": "application/json"}, self._body(data, signed_at)

    def unsigned(self, request):
        headers, raw = request
        body = json.loads(raw)
        forged = []
        for field in ("timestamp", "token", "signature"):
            changed = json.loads(raw)
            del changed["signature"][field]
            forged.append((headers, json.dumps(changed).encode()))
        changed = json.loads(raw)
        token = body["signature"]["token"]  # altered for certain: a hex token may begin with 0
        changed["signature"]["token"] = ("1" if token[0] == "0" else "0") + token[1:]
        forged.append((headers, json.dumps(changed).encode()))
        return forged

    def malformed(self):
        headers = {"Content-Type": "application/json"}
        return [(headers, b"not json"), (headers, b"[]"), (headers, b"\xff"),
                (headers, self._body("not an object")), (headers, self._body({"event": "opened"}))]


class PostmarkCase(ProviderCase):
    name = "postmark"
    capabilities = {"webhooks", "reports_deliveries", "suppression_list"}
    signs_a_time = False
    secret = "contract-webhook-secret"

    def fake(self):
        return FakePostmark(token="pm-contract")

    def settings(self, fake):
        return {"POSTMARK_API_URL": fake.url, "POSTMARK_SERVER_TOKEN": "pm-contract",
                "POSTMARK_WEBHOOK_SECRET": self.secret}

    def without_key(self):
        return {"POSTMARK_WEBHOOK_SECRET": None}

    def carried(self, fake):
        return set(fake.sent)

    def _headers(self, user="postmark", secret=None) -> dict[str, str]:
        credentials = base64.b64encode(f"{user}:{secret or self.secret}".encode()).decode()
        return {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}

    def request(self, event, correlation_id, address, *, signed_at=None):
        kind = {"delivered": "Delivery", "opened": "Open"}.get(event, event)
        field = "DeliveredAt" if kind == "Delivery" else "ReceivedAt"
        record = {"RecordType": kind, "MessageStream": "outbound", "Recipient": address,
                  "MessageID": secrets.token_hex(16), field: now_iso(),
                  "Metadata": {"helpdesk_delivery": correlation_id}}
        return self._headers(), json.dumps(record).encode()

    def unsigned(self, request):
        headers, raw = request
        return [({"Content-Type": "application/json"}, raw),
                (self._headers(secret="a guess"), raw), (self._headers(user="someone"), raw)]

    def malformed(self):
        return [(self._headers(), raw) for raw in
                (b"not json", b"[]", b"\xff", b'{"RecordType": "Open"}')]


class SesCase(ProviderCase):
    name = "ses"
    capabilities = {"webhooks", "reports_deliveries", "suppression_list"}
    topic = "arn:aws:sns:us-east-1:123456789012:contract"

    @contextmanager
    def fake(self):
        with FakeSes(AWS_ACCESS_KEY, AWS_SECRET_KEY) as ses, FakeSnsHost() as sns:
            ses.sns = sns
            yield ses

    def settings(self, fake):
        self.sns = fake.sns
        return {"SES_REGION": "us-east-1", "SES_ENDPOINT_URL": fake.url,
                "SES_CONFIGURATION_SET": "helpdesk", "SES_SNS_TOPIC_ARNS": [self.topic]}

    def attach(self, app, fake):
        with app.app_context():
            plugins.provider("ses").sns = fake.sns.fetcher()

    def without_key(self):
        return {"SES_SNS_TOPIC_ARNS": None}

    def carried(self, fake):
        return set(fake.sent)

    def request(self, event, correlation_id, address, *, signed_at=None):
        kind = {"delivered": "Delivery", "opened": "Open"}.get(event, event)
        detail = {"Delivery": ("delivery", {"recipients": [address],
                                            "smtpResponse": "250 2.6.0 Message received"}),
                  "Open": ("open", {"ipAddress": "192.0.2.1"})}.get(kind, ("other", {}))
        record = {"eventType": kind,
                  "mail": {"timestamp": now_iso(), "messageId": secrets.token_hex(16),
                           "destination": [address],
                           "tags": {"helpdesk_delivery": [correlation_id]}},
                  detail[0]: {"timestamp": now_iso(), **detail[1]}}
        fields = {} if signed_at is None else {"Timestamp": datetime.fromtimestamp(
            signed_at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        envelope = self.sns.notification(self.topic, record, **fields)
        return self._headers(), json.dumps(envelope).encode()

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": "Notification"}

    def unsigned(self, request):
        headers, raw = request
        envelope = json.loads(raw)
        forged = []
        for field in ("Signature", "SignatureVersion", "SigningCertURL"):
            forged.append((headers, json.dumps(
                {k: v for k, v in envelope.items() if k != field}).encode()))
        forged.append((headers, json.dumps(
            {**envelope, "Message": envelope["Message"].replace("Open", "Click")}).encode()))
        return forged

    def malformed(self):
        signed = self.sns.notification(self.topic, "not an SES record")
        return [(self._headers(), raw) for raw in
                (b"not json", b"[]", b"\xff", json.dumps(signed).encode())]


CASES = [SendgridCase(), MailgunCase(), PostmarkCase(), SesCase()]


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request) -> ProviderCase:
    return request.param


@pytest.fixture
def sent(case, app_factory):
    """An app on the case's provider and one recipient whose email the fake took."""
    with case.fake() as fake:
        app = app_factory(PROVIDER=case.name, SEND_TIMEOUT=5, **case.settings(fake))
        case.attach(app, fake)
        with app.app_context():
            credential = create_credential("Course", [{"name": "Ann",
                                                       "email": "ann@valley.example"}],
                                           state="published")
            recipient = credential.recipients[0]
            yield app.test_client(), recipient, fake


def status_of(recipient: Recipient) -> str:
    db.session.expire_all()
    return db.session.get(Recipient, recipient.id).status


def stored() -> int:
    return db.session.scalar(select(func.count()).select_from(DeliveryEvent))


def post(client, case: ProviderCase, request: Request):
    headers, raw = request
    return client.post(f"/webhooks/{case.name}", data=raw, headers=headers)


def about(case: ProviderCase, recipient: Recipient, event: str, **kw) -> Request:
    return case.request(event, recipient.latest_delivery.correlation_id, recipient.email, **kw)


def test_the_provider_declares_its_capabilities(case, app):
    assert set(capabilities(plugins.providers()[case.name]).names()) == case.capabilities


def test_a_send_carries_the_correlation_id_and_delivered_then_opened_follow(case, sent):
    client, recipient, fake = sent
    assert case.carried(fake) == {recipient.latest_delivery.correlation_id}
    # The service took it: "Sending" until it reports the delivery.
    assert status_of(recipient) == SENDING
    assert post(client, case, about(case, recipient, "delivered")).status_code == 200
    assert status_of(recipient) == NOT_OPENED
    assert post(client, case, about(case, recipient, "opened")).status_code == 200
    assert status_of(recipient) == OPENED


def test_an_unknown_event_is_stored_as_unknown(case, sent):
    client, recipient, _ = sent
    response = post(client, case, about(case, recipient, "weather_report"))
    assert response.status_code == 200, response.json
    kinds = db.session.scalars(select(DeliveryEvent.type).where(
        DeliveryEvent.correlation_id == recipient.latest_delivery.correlation_id)).all()
    assert "unknown" in kinds
    assert status_of(recipient) == SENDING


def test_an_unsigned_or_forged_request_is_401_and_stores_nothing(case, sent):
    client, recipient, _ = sent
    before = stored()
    for forged in case.unsigned(about(case, recipient, "opened")):
        response = post(client, case, forged)
        assert response.status_code == 401, (forged, response.json)
        assert response.json["error"]
    assert stored() == before
    assert status_of(recipient) == SENDING


@pytest.mark.parametrize("skew", [-1, 1], ids=["old", "future"])
def test_a_signature_outside_the_window_is_stale(case, sent, skew):
    if not case.signs_a_time:
        pytest.skip(f"{case.name} signs no time")
    client, recipient, _ = sent
    tolerance = client.application.config["WEBHOOK_TOLERANCE_SECONDS"]
    before = stored()
    response = post(client, case, about(case, recipient, "opened",
                                         signed_at=time.time() + skew * (tolerance + 60)))
    assert response.status_code == 401
    assert "stale" in response.json["error"]
    assert stored() == before


def test_a_replay_changes_nothing(case, sent):
    client, recipient, _ = sent
    request = about(case, recipient, "opened")
    assert post(client, case, request).status_code == 200
    before = stored()
    again = post(client, case, request)
    if "signs_one_time_tokens" in case.capabilities:
        assert again.status_code == 406  # the token was used before
    else:
        assert (again.status_code, again.json["stored"]) == (200, 0)
    assert stored() == before
    assert status_of(recipient) == OPENED


def test_a_malformed_body_is_refused_and_stores_nothing(case, sent):
    client, _, _ = sent
    before = stored()
    for request in case.malformed():
        response = post(client, case, request)
        assert 400 <= response.status_code < 500, (request, response.status_code)
        assert response.json["error"]
    assert stored() == before


def test_without_a_key_webhooks_fail_closed(case, app_factory):
    with case.fake() as fake:
        app = app_factory(PROVIDER=case.name, **{**case.settings(fake), **case.without_key()})
        case.attach(app, fake)
        with app.app_context():
            client = app.test_client()
            recipient_request = case.request("opened", "c0ffee", "ann@valley.example")
            assert post(client, case, recipient_request).status_code == 403
            assert stored() == 0
