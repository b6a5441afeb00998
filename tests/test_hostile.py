"""Hostile input, each case with the answer it must get: the corpus in tests/data/hostile/
(webhook bodies and signatures, CSV files) and addresses, names and share links made to hurt.
Never a 500, never a partial write."""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
import itsdangerous.timed
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from helpdesk.credentials import create_credential
from helpdesk.models import DeliveryEvent, Recipient, WebhookNonce, db
from helpdesk.sharing import make_share_token

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from common import SendgridSigner, mailgun_body  # noqa: E402
from conftest import sign_in  # noqa: E402

time_now = time.time

CORPUS = Path(__file__).parent / "data" / "hostile"
WEBHOOK_CASES = json.loads((CORPUS / "webhooks.json").read_text())
SIGNING_KEY = "mailgun-signing-key-for-tests"
SIGNER = SendgridSigner()


@pytest.fixture
def hostile_app(app_factory, sink):
    app = app_factory(sink, SENDGRID_WEBHOOK_PUBLIC_KEY=SIGNER.public_key,
                      MAILGUN_WEBHOOK_SIGNING_KEY=SIGNING_KEY, WEBHOOK_MAX_BYTES=64 * 1024)
    with app.app_context():
        yield app


def events_stored() -> int:
    return db.session.scalar(select(func.count()).select_from(DeliveryEvent))


def _request(case: dict) -> tuple[bytes, dict]:
    if case["provider"] == "mailgun" and "event" in case:
        stamp = int(time.time()) - (3600 if case["sign"] == "stale" else 0)
        body = mailgun_body(SIGNING_KEY if case["sign"] != "forged" else "not-the-key",
                            case["event"], "no-such-delivery", "ann@valley.example",
                            time.time(), event_id=case.get("event_id"), timestamp=stamp)
        return body, {"Content-Type": "application/json"}
    body = bytes.fromhex(case["body_hex"]) if "body_hex" in case else case["body"].encode()
    sign = case["sign"]
    if sign == "none":
        return body, {"Content-Type": "application/json"}
    headers = SIGNER.headers(b"[]" if sign == "other_body" else body,
                             timestamp=int(time.time()) - 3600 if sign == "stale" else None)
    if sign == "forged":
        headers = {**headers, **SendgridSigner().headers(body, int(
            headers["X-Twilio-Email-Event-Webhook-Timestamp"]))}
    if sign == "garbage":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "%%% not base64 %%%"
    return body, headers


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=[c["case"] for c in WEBHOOK_CASES])
def test_each_hostile_webhook_gets_its_answer_and_stores_nothing_wrong(hostile_app, case):
    client = hostile_app.test_client()
    body, headers = _request(case)
    before = events_stored()
    response = client.post(f"/webhooks/{case['provider']}", data=body, headers=headers)
    if case["sign"] == "replayed":
        assert response.status_code == 200, response.get_data(as_text=True)
        response = client.post(f"/webhooks/{case['provider']}", data=body, headers=headers)
    assert response.status_code == case["expect"], response.get_data(as_text=True)
    assert response.is_json and response.get_json()["error" if response.status_code >= 400
                                                    else "received"] is not None
    stored = dict(db.session.execute(
        select(DeliveryEvent.provider_event_id, DeliveryEvent.type)).all())
    expected = case.get("stored", {})
    if case["sign"] == "replayed":
        assert events_stored() == before + 1  # the first one only
    else:
        assert events_stored() == before + len(expected)
        assert {k: stored[k] for k in expected} == expected


def test_a_body_over_the_limit_is_413_and_stores_nothing(hostile_app):
    body = json.dumps([{"event": "open", "timestamp": 1700000000, "sg_event_id": f"big-{i}",
                        "pad": "x" * 200} for i in range(400)]).encode()
    assert len(body) > hostile_app.config["WEBHOOK_MAX_BYTES"]
    response = hostile_app.test_client().post("/webhooks/sendgrid", data=body,
                                              headers=SIGNER.headers(body))
    assert response.status_code == 413
    assert response.get_json()["error"]
    assert events_stored() == 0


def test_a_replayed_mailgun_token_is_remembered_once(hostile_app):
    body = mailgun_body(SIGNING_KEY, "opened", "c1", "ann@valley.example", time.time(),
                        token="t" * 50)
    client = hostile_app.test_client()
    assert client.post("/webhooks/mailgun", data=body,
                       headers={"Content-Type": "application/json"}).status_code == 200
    again = mailgun_body(SIGNING_KEY, "clicked", "c1", "ann@valley.example", time.time(),
                         token="t" * 50)  # a new event, the same signed token
    assert client.post("/webhooks/mailgun", data=again,
                       headers={"Content-Type": "application/json"}).status_code == 406
    assert db.session.scalar(select(func.count()).select_from(WebhookNonce)) == 1
    assert events_stored() == 1


# --- CSV files --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("unclosed_quote.csv", "never closed"),
    ("latin1.csv", "not UTF-8"),
    ("utf16.csv", "UTF-16"),
])
def test_a_csv_file_that_cannot_be_read_imports_nothing(agent_client, name, message):
    credential = create_credential("Import", [], state="draft")
    response = agent_client.post(f"/credentials/{credential.id}/import", data={
        "file": (io.BytesIO((CORPUS / name).read_bytes()), name)},
        content_type="multipart/form-data")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0


def test_broken_rows_are_refused_one_by_one_and_the_good_ones_imported(agent_client):
    credential = create_credential("Import", [], state="draft")
    response = agent_client.post(f"/credentials/{credential.id}/import", data={
        "file": (io.BytesIO((CORPUS / "broken_rows.csv").read_bytes()), "broken_rows.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html  # shown, escaped
    db.session.expire_all()
    imported = {r.email: r for r in db.session.scalars(
        select(Recipient).where(Recipient.credential_id == credential.id))}
    assert "ann@valley.example" in imported
    assert imported["script@valley.example"].name == "<script>alert(1)</script>"
    too_long = "x" * 300 + "@valley.example"
    assert too_long not in imported  # refused: longer than an address can be
    assert all(len(email or "") <= 320 for email in imported)
    page = agent_client.get(f"/credentials/{credential.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


# --- addresses and names ----------------------------------------------------------------------

HOSTILE_ADDRESSES = [
    "x" * 300 + "@valley.example",
    "ann@valley.example\r\nBcc: everyone@evil.example",
    "\"><img src=x onerror=alert(1)>@valley.example",
    "ann@valley.example\x00",
    "@valley.example",
    "ann@",
    "jörg@bücher.example",
    "用户@例子.广告",
    "a" * 65 + "@valley.example",
]


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_addresses_get_an_answer_never_a_500(api, address):
    check = api.post("/api/v1/email/check", json={"email": address})
    assert check.status_code in (200, 400), check.get_data(as_text=True)
    created = api.post("/api/v1/credentials", json={
        "title": "Hostile", "state": "published", "send_email": True,
        "recipients": [{"name": "Ann", "email": address}]})
    assert created.status_code in (201, 400), created.get_data(as_text=True)
    if created.status_code == 400:
        assert created.get_json()["error"]
        assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0


def test_an_address_with_a_header_in_it_never_reaches_a_mail_header(api, sink):
    api.post("/api/v1/credentials", json={
        "title": "Injection", "state": "published", "send_email": True,
        "recipients": [{"name": "Ann", "email": "ann@valley.example\r\nBcc: all@evil.example"}]})
    for message in sink.messages:
        assert "evil.example" not in " ".join(message.recipients)
        assert message.email["Bcc"] is None


def test_names_with_markup_or_line_breaks_are_escaped_and_flattened(app, api, agent, sink):
    name = "Eve <b>bold</b>\r\nBcc: all@evil.example\r\n\r\n<script>x()</script>"
    created = api.post("/api/v1/credentials", json={
        "title": "Title\r\nX-Injected: yes", "state": "published", "send_email": True,
        "recipients": [{"name": name, "email": "eve@valley.example"}]})
    assert created.status_code == 201, created.get_data(as_text=True)
    recipient_id = created.get_json()["recipients"][0]["id"]
    [message] = sink.messages
    assert message.recipients == ["eve@valley.example"]
    assert message.email["Bcc"] is None and message.email["X-Injected"] is None
    assert "\n" not in str(message.email["To"]) and "\n" not in message.subject
    browser = app.test_client()
    sign_in(browser, agent)
    page = browser.get(f"/recipients/{recipient_id}").get_data(as_text=True)
    assert "<script>x()</script>" not in page and "<b>bold</b>" not in page


# --- share links ------------------------------------------------------------------------------

def test_share_links_tampered_or_expired_are_refused(app, client, monkeypatch):
    create_credential("Share", [{"name": "Ann", "email": "ann@valley.example"}], state="draft")
    token = make_share_token(app.config["SECRET_KEY"], "valley.example")
    assert client.get(f"/share/{token}").status_code == 200
    tampered = [token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                make_share_token("another-secret", "valley.example"),
                URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="other").dumps(
                    {"domain": "valley.example"}),
                "not-a-token", "x" * 5000]
    for bad in tampered:
        response = client.get(f"/share/{bad}")
        assert response.status_code == 403, bad
        assert "ann@valley.example" not in response.get_data(as_text=True)
    with monkeypatch.context() as m:
        m.setattr(itsdangerous.timed.time, "time", lambda: time_now() - 400 * 86400)
        expired = make_share_token(app.config["SECRET_KEY"], "valley.example")
    response = client.get(f"/share/{expired}")
    assert response.status_code == 410
    assert "ann@valley.example" not in response.get_data(as_text=True)
