"""Hostile input, each case with the answer it must get: the corpus in tests/data/hostile/
(webhook bodies and signatures, CSV files) and addresses, names and share links made to hurt.
Never a 500, never a partial write."""
from __future__ import annotations

import io
import json
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer
from html import unescape as html_unescape

from markupsafe import escape
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter

from stored import stored_events
from helpdesk.auth import create_token, hash_token
from helpdesk.credentials import create_credential
from helpdesk.models import ApiToken, DeliveryEvent, Recipient, WebhookNonce, db
from helpdesk.sharing import create_link

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from common import SendgridSigner, mailgun_body  # noqa: E402
from conftest import sign_in  # noqa: E402


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
    before = stored_events()
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
        assert stored_events() == before + 1  # the first one only
    else:
        assert stored_events() == before + len(expected)
        assert {k: stored[k] for k in expected} == expected


def test_a_body_over_the_limit_is_413_and_stores_nothing(hostile_app):
    body = json.dumps([{"event": "open", "timestamp": 1700000000, "sg_event_id": f"big-{i}",
                        "pad": "x" * 200} for i in range(400)]).encode()
    assert len(body) > hostile_app.config["WEBHOOK_MAX_BYTES"]
    response = hostile_app.test_client().post("/webhooks/sendgrid", data=body,
                                              headers=SIGNER.headers(body))
    assert response.status_code == 413
    assert response.get_json()["error"]
    assert stored_events() == 0


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
    assert stored_events() == 1


# --- CSV files --------------------------------------------------------------------------------

def review_answer(page: str) -> MultiDict:
    """The fields an import's review page sends back, as a browser would (checked boxes only)."""
    fields = [(name, html_unescape(value)) for name, value in re.findall(
        r'<input type="hidden" name="(credential|title|rows)" value="([^"]*)">', page)]
    fields += [("use_suggestion", line) for line in re.findall(
        r'name="use_suggestion" value="(\d+)" checked', page)]
    return MultiDict(fields)


def test_a_stray_quote_is_named_and_nothing_is_imported_before_the_review(agent_client):
    credential = create_credential("Import", [], state="draft")
    response = agent_client.post(f"/credentials/{credential.id}/import", data={
        "file": (io.BytesIO((CORPUS / "unclosed_quote.csv").read_bytes()), "unclosed_quote.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200
    assert "never closes" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0


@pytest.mark.parametrize("name, message", [
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
    if 'id="import-review"' in html:  # the rows with questions are reviewed first
        html = agent_client.post("/import/confirm", data=review_answer(html),
                                 follow_redirects=True).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
    db.session.expire_all()
    imported = {r.email: r for r in db.session.scalars(
        select(Recipient).where(Recipient.credential_id == credential.id))}
    assert "ann@valley.example" in imported
    assert imported["script@valley.example"].name == "<script>alert(1)</script>"
    too_long = "x" * 300 + "@valley.example"
    # longer than an address can be: kept as the file has it, flagged, never emailed
    assert imported[too_long].email_error
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
    token = create_link("valley.example", 14, None)[1]
    assert client.get(f"/share/{token}").status_code == 200
    tampered = [token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="other").dumps(
                    {"domain": "valley.example"}),
                "not-a-token", "x" * 5000]
    for bad in tampered:
        response = client.get(f"/share/{bad}")
        assert response.status_code == 403, bad
        assert "ann@valley.example" not in response.get_data(as_text=True)
    expired = create_link("valley.example", 14, None,
                          now=datetime.now(timezone.utc) - timedelta(days=400))[1]
    response = client.get(f"/share/{expired}")
    assert response.status_code == 410
    assert "ann@valley.example" not in response.get_data(as_text=True)


# --- every route × every parameter ------------------------------------------------------------
# The routes come from the app's URL map, so a new route is walked without being listed here.

HOSTILE_VALUES = [
    "²",  # '²'.isdigit() is true, int('²') raises
    "٣",  # an Arabic-Indic digit: int() reads it, a URL must not
    "99999999999999999999",  # past any database integer
    "99999999999",  # past PostgreSQL's integer
    "0", "-1", "1.5", "",
    "a\x00b",
    "x" * 5000,
    "\u202egnp.exe\u202c",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "/\r\n/x", "/\t/evil.example/", "//evil.example",
]
QUERY_PARAMETERS = ("page", "per_page", "q", "status", "sort", "credential_id", "domain", "next",
                    "kind")
FORM_FIELDS = ("email", "password", "role", "status", "kind", "suggestion", "refused",
               "credential", "title", "state", "scheduled_at", "timezone", "recipients",
               "send_email", "action", "flagged", "use_suggestion", "acknowledged_invalid")
DEEP = "[" * 20_000 + "]" * 20_000  # far past the interpreter's recursion limit
HOSTILE_BODIES = [
    DEEP, '{"a":' * 10_000 + "1" + "}" * 10_000, '{"status": []}', '{"status": {"a": 1}}',
    '{"email": []}', '{"emails": [[[]]]}', '{"title": {"$ne": 1}}', '{"recipients": [[]]}',
    '{"signature": ' + DEEP + "}",
]


@pytest.fixture
def hostile_world(hostile_app, admin):
    create_credential("Hostile", [{"name": "Ann", "email": "ann@valley.example"},
                                  {"name": "Bob", "email": "bob@gmial.com"}], state="published")
    return {"int": "1", "domain": "valley.example", "slug": "statuses", "name": "mailgun",
            "filename": "style.css",
            "token": create_link("valley.example", 14, None)[1]}


def _path(rule, samples: dict, hostile: tuple[str, str] | None = None) -> str:
    """The rule's URL with sample arguments, or with one argument replaced by a hostile value
    (percent-encoded as a browser would send it)."""
    from urllib.parse import quote

    url = rule.rule
    for name, converter in rule._converters.items():
        kind = "int" if isinstance(converter, IntegerConverter) else name
        value = hostile[1] if hostile and hostile[0] == name else samples.get(kind, "x.example")
        url = re.sub(rf"<[^>]*:?{name}>", quote(value, safe=""), url)
    return url


class Caller:
    """A browser signed in as an admin, and an admin's API token, both renewed before each
    request: the walk itself signs out, revokes tokens and deactivates users."""

    def __init__(self, app, admin):
        self.browser, self.admin = app.test_client(), admin
        self.token = create_token(admin)

    def answer(self, method: str, url: str, **kwargs) -> str | None:
        """None when the answer is fine, else what went wrong (the app raises in testing)."""
        db.session.rollback()
        sign_in(self.browser, self.admin)
        if db.session.scalar(select(ApiToken).where(
                ApiToken.token_hash == hash_token(self.token))) is None:
            self.token = create_token(self.admin)
        headers = {"Authorization": f"Bearer {self.token}"} if url.startswith("/api/") else {}
        asked = f"{method} {url[:80]!r} {kwargs.get('query_string') or ''!r:.60}"
        try:
            response = self.browser.open(url, method=method, headers=headers, **kwargs)
        except Exception as error:
            return f"{asked} raised {type(error).__name__}: {str(error)[:120]}"
        failed = response.status_code >= 500
        if 400 <= response.status_code < 500 and response.is_json:
            failed = not response.get_json().get("error")
        return f"{asked} -> {response.status_code}" if failed else None


def test_every_route_and_parameter_answers_hostile_values_without_a_500(
        hostile_app, hostile_world, admin):
    caller = Caller(hostile_app, admin)
    failures, walked = [], 0
    for rule in hostile_app.url_map.iter_rules():
        json_route = rule.rule.startswith(("/api/", "/webhooks/"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            urls = [_path(rule, hostile_world)] + [
                _path(rule, hostile_world, (name, value))
                for name in rule.arguments for value in HOSTILE_VALUES]
            failures += [caller.answer(method, url) for url in urls]
            url = urls[0]
            for value in HOSTILE_VALUES:
                if method == "GET":
                    failures += [caller.answer(method, url, query_string={name: value})
                                 for name in QUERY_PARAMETERS]
                elif json_route:
                    failures.append(caller.answer(method, url, json={
                        field: value for field in ("email", "status", "title", "emails")}))
                else:
                    failures.append(caller.answer(method, url, data={
                        field: value for field in FORM_FIELDS}))
                walked += 1
            if method == "POST" and json_route:
                failures += [caller.answer(method, url, data=body,
                                           content_type="application/json")
                             for body in HOSTILE_BODIES]
    failures = [f for f in failures if f]
    assert walked > 500
    assert not failures, f"{len(failures)} answers were 5xx or JSON errors without a message:\n" \
        + "\n".join(failures[:40])


def test_a_deeply_nested_body_is_refused_before_any_signature_is_trusted(hostile_app):
    client = hostile_app.test_client()
    for body in (DEEP, '{"signature": ' + DEEP + "}"):
        response = client.post("/webhooks/mailgun", data=body,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert "nests deeper than" in response.get_json()["error"]
    assert stored_events() == 0


def test_the_api_refuses_a_deeply_nested_body_with_a_clear_message(api):
    response = api.post("/api/v1/credentials", data=DEEP, content_type="application/json")
    assert response.status_code == 400
    assert "nests deeper than 32 levels" in response.get_json()["error"]


@pytest.mark.parametrize("path", ["/lookup", "/credentials", "/domains", "/typos"])
@pytest.mark.parametrize("query, message", [
    ({"page": "²"}, "page must be a whole number from 1, not '²'"),
    ({"page": "9" * 20}, "page must be at most 10000000"),
    ({"q": "x" * 321}, "q must be at most 320 characters"),
    ({"q": "a\x00b"}, "The address holds a NUL character"),
])
def test_every_list_reads_its_page_and_search_alike(agent_client, path, query, message):
    if path == "/lookup" and "page" in query:
        return  # the lookup shows one short list, it has no pages
    response = agent_client.get(path, query_string=query)
    assert response.status_code == 400
    assert str(escape(message)) in response.get_data(as_text=True)


@pytest.mark.parametrize("q", ["²", "99999999999", "1" * 40])
def test_a_search_that_looks_like_a_number_but_is_not_an_id_finds_nothing_by_id(
        agent_client, api, q):
    create_credential("Numbers", [{"name": "Ann", "email": "ann@valley.example"}], state="draft")
    assert agent_client.get("/lookup", query_string={"q": q}).status_code == 200
    response = api.get("/api/v1/recipients", query_string={"q": q})
    assert response.status_code == 200 and response.get_json()["total"] == 0


def test_resending_with_a_status_that_is_not_text_is_400(api):
    credential = create_credential("Resend", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="draft")
    response = api.post(f"/api/v1/credentials/{credential.id}/resend", json={"status": []})
    assert response.status_code == 400
    assert "status must be one of" in response.get_json()["error"]
