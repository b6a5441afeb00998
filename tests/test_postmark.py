"""The Postmark provider: its sender against a local fake of the email API, its webhook parser on
the sample records of Postmark's webhook documentation (kept in ``tests/data/postmark``), the
basic auth that stands in for a signature, and the whole path through the app: publish → the
queue sends through the fake → Postmark's webhooks → statuses."""
from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fake_api import provider_fixture
from fake_postmark import HANG, FakePostmark
from stored import delivery_of, status_of, stored_events
from helpdesk import plugins
from helpdesk.contract import (CORRELATION_HEADER, REASON_CODES, Message, NotConfigured,
                               ServiceError, SignatureError, WebhookError, capabilities)
from helpdesk.credentials import create_credential
from helpdesk.models import DeliveryEvent, Recipient, db
from helpdesk.publishing import unsuppress_and_resend
from helpdesk.sink import free_port
from helpdesk.status import EVENT_TYPES as NORMALIZED_TYPES
from helpdesk_postmark import PostmarkProvider, email_body
from helpdesk_postmark.webhook import BOUNCE_TYPES, parse_events, to_event, verify_basic_auth

DATA = Path(__file__).parent / "data" / "postmark"
TOKEN = "b5a1d2c3-server-token-do-not-log"
SECRET = "webhook-secret-for-tests"
WEBHOOK = "/webhooks/postmark"


def sample(name: str, correlation_id: str | None = None, **fields) -> dict:
    """A record exactly as Postmark's documentation shows it, with our delivery's metadata
    added the way Postmark echoes a send's ``Metadata``."""
    record = json.loads((DATA / f"{name}.json").read_text())
    if correlation_id:
        record["Metadata"]["helpdesk_delivery"] = correlation_id
    record.update(fields)
    return record


def addressed_to(recipient) -> dict:
    """The record's address fields naming this recipient (an event naming another address
    applies to no delivery)."""
    return {"Recipient": recipient.email, "Email": recipient.email}


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def message(to="ann@valley.example", correlation_id="c0ffee" * 5 + "00") -> Message:
    return Message(correlation_id=correlation_id, sender="credentials@issuer.example", to=to,
                   to_name="Ann Example", subject="Your credential: Rust 101",
                   text="Your credential is ready.", html="<p>Your credential is ready.</p>",
                   headers={CORRELATION_HEADER: correlation_id})


# --- the parser, on the documented records ---------------------------------------------------

@pytest.mark.parametrize("name, type_, severity, reason_code, recipient", [
    ("delivery", "delivered", None, None, "john@example.com"),
    ("bounce", "bounced", "permanent", "user_unknown", "john@example.com"),
    ("spam_complaint", "complained", None, None, "john@example.com"),
    ("open", "opened", None, None, "john@example.com"),
    ("click", "clicked", None, None, "john@example.com"),
    ("subscription_change", "bounced", "permanent", "suppressed",
     "bounced-address@wildbit.com"),
])
def test_each_documented_record_has_its_normalized_event(name, type_, severity, reason_code,
                                                         recipient):
    record = sample(name, "c0ffee")
    [event] = parse_events(json.dumps(record).encode())
    assert (event.type, event.severity, event.reason_code) == (type_, severity, reason_code)
    assert event.provider == "postmark"
    assert event.correlation_id == "c0ffee"
    assert event.message_id == record["MessageID"]
    assert event.recipient == recipient
    assert event.occurred_at.tzinfo == timezone.utc
    assert event.raw == record


def test_a_hard_bounce_keeps_postmarks_words_and_the_servers_reply():
    event = to_event(sample("bounce", Details="smtp;550 5.1.1 The email account that you "
                                               "tried to reach does not exist."))
    assert event.reason == ("Hard bounce: The server was unable to deliver your message (ex: "
                            "unknown user, mailbox not found).")
    assert event.mta_response == ("smtp;550 5.1.1 The email account that you tried to reach "
                                  "does not exist.")
    assert event.event_id == "bounce:4323372036854775807"
    assert event.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=timezone.utc)


def test_an_offset_time_is_kept_as_the_same_instant_in_utc():
    event = to_event(sample("delivery", DeliveredAt="2016-12-01T15:41:45-05:00"))
    assert event.occurred_at == datetime(2016, 12, 1, 20, 41, 45, tzinfo=timezone.utc)


@pytest.mark.parametrize("bounce_type", ["SoftBounce", "Transient", "DnsError",
                                         "ChallengeVerification"])
def test_soft_bounces_and_delays_are_deferrals_never_bounces(bounce_type):
    event = to_event(sample("bounce", Type=bounce_type))
    assert (event.type, event.severity) == ("deferred", "temporary")


@pytest.mark.parametrize("bounce_type, type_, reason_code", [
    ("SpamNotification", "bounced", "spam"),
    ("ManuallyDeactivated", "rejected", "suppressed"),
    ("Blocked", "bounced", "policy"),
    ("BadEmailAddress", "bounced", "user_unknown"),
    ("DMARCPolicy", "bounced", "policy"),
    ("Unsubscribe", "unsubscribed", None),
    ("AutoResponder", "delivered", None),
    ("SomethingNew", "unknown", None),
])
def test_other_bounce_types(bounce_type, type_, reason_code):
    event = to_event(sample("bounce", Type=bounce_type))
    assert (event.type, event.reason_code) == (type_, reason_code)


def test_every_bounce_type_maps_into_the_closed_vocabularies():
    for outcome in BOUNCE_TYPES.values():
        assert outcome.type in NORMALIZED_TYPES
        assert outcome.reason_code is None or outcome.reason_code in REASON_CODES
        assert outcome.severity in (None, "permanent", "temporary")
        # a bounce for good always says so; a deferral never claims to be one
        assert (outcome.severity == "permanent") == (outcome.type in ("bounced", "rejected"))


@pytest.mark.parametrize("fields, type_, reason", [
    ({"SuppressSending": True, "SuppressionReason": "ManualSuppression"}, "unsubscribed",
     "sending suppressed (ManualSuppression), by Recipient"),
    ({"SuppressSending": True, "SuppressionReason": "SpamComplaint"}, "complained",
     "sending suppressed (SpamComplaint), by Recipient"),
    ({"SuppressSending": False, "SuppressionReason": None, "Origin": "Customer"},
     "resubscribed", "sending reactivated, by Customer"),
])
def test_subscription_changes(fields, type_, reason):
    event = to_event(sample("subscription_change", **fields))
    assert (event.type, event.reason) == (type_, reason)


def test_records_without_an_id_get_a_stable_dedupe_key():
    first, again = to_event(sample("delivery")), to_event(sample("delivery"))
    assert first.event_id == again.event_id
    assert first.event_id != to_event(sample("delivery", Recipient="x@example.com")).event_id


def test_a_record_type_postmark_adds_later_is_unknown():
    event = to_event({"RecordType": "Teleport", "ChangedAt": "2019-11-05T16:33:54Z",
                      "MessageID": "m-1"})
    assert (event.type, event.reason) == ("unknown",
                                          "Postmark record 'Teleport', not one helpdesk knows")


def test_a_click_keeps_its_link():
    assert to_event(sample("click")).reason == "https://example.com"


@pytest.mark.parametrize("raw, words", [
    (b"not json", "not JSON"),
    (b"[]", "must be a JSON object"),
    (json.dumps({"RecordType": "Teleport"}).encode(), "ReceivedAt is missing"),
    (json.dumps({"MessageID": "x"}).encode(), "no RecordType"),
    (json.dumps({"FromFull": {"Email": "a@example.com"}}).encode(), "inbound-message webhook"),
    (json.dumps({"RecordType": "Delivery", "MessageID": "x"}).encode(), "DeliveredAt is missing"),
    (json.dumps({"RecordType": "Open", "ReceivedAt": "yesterday"}).encode(),
     "not an ISO 8601 time"),
    (json.dumps({"RecordType": "Open", "ReceivedAt": "2019-11-05T16:33:54"}).encode(),
     "no UTC offset"),
])
def test_unusable_bodies_are_refused_with_a_reason(raw, words):
    with pytest.raises(WebhookError) as error:
        parse_events(raw)
    assert error.value.status == 400
    assert words in str(error.value)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["RecordType", "Type", "ID", "MessageID", "Metadata",
                                        "DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt",
                                        "SuppressSending", "SuppressionReason", "Recipient"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                                 st.sampled_from(["Delivery", "Bounce", "Open", "Click",
                                                  "SubscriptionChange", "HardBounce",
                                                  "2019-11-05T16:33:54Z"]),
                                 st.dictionaries(st.text(max_size=5), st.text(max_size=5)))))
def test_any_record_is_an_event_or_a_refusal_never_a_crash(record):
    try:
        event = to_event(record)
    except WebhookError:
        return
    assert event.type in NORMALIZED_TYPES


# --- basic auth, since Postmark signs nothing ------------------------------------------------

def test_the_right_credentials_pass():
    verify_basic_auth(SECRET, basic("postmark", SECRET))
    verify_basic_auth(SECRET, basic("hooks", SECRET), user="hooks")


@pytest.mark.parametrize("authorization", [
    None, "", basic("postmark", "wrong"), basic("someone", SECRET), "Bearer " + SECRET,
    "Basic not-base64!", "Basic " + base64.b64encode(SECRET.encode()).decode()])
def test_anything_else_is_refused(authorization):
    with pytest.raises(SignatureError) as error:
        verify_basic_auth(SECRET, authorization)
    assert error.value.status == 401
    assert SECRET not in str(error.value)


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_without_a_secret_every_webhook_is_refused(secret):
    with pytest.raises(NotConfigured) as error:
        verify_basic_auth(secret, basic("postmark", ""))
    assert error.value.status == 403
    assert "HELPDESK_POSTMARK_WEBHOOK_SECRET" in str(error.value)


# --- the sender against the fake email API ---------------------------------------------------

@pytest.fixture
def fake():
    with FakePostmark(token=TOKEN) as api:
        yield api


provider_for = provider_fixture(lambda api, **config: PostmarkProvider({
    "POSTMARK_API_URL": api.url, "POSTMARK_SERVER_TOKEN": TOKEN, "SEND_TIMEOUT": 2,
    "SENDER_NAME": "Credentials", **config}))


def test_a_sent_message_is_accepted_with_its_message_id_and_a_well_formed_request(
        fake, provider_for):
    result = provider_for(fake).send(message())
    assert result.outcome == "accepted"
    assert result.message_id == fake.sent[message().correlation_id]
    request = fake.requests[-1]
    assert request["headers"]["X-Postmark-Server-Token"] == TOKEN
    assert request["headers"]["Accept"] == "application/json"
    assert request["body"] == {
        "From": "Credentials <credentials@issuer.example>",
        "To": "Ann Example <ann@valley.example>", "Subject": "Your credential: Rust 101",
        "TextBody": "Your credential is ready.", "HtmlBody": "<p>Your credential is ready.</p>",
        "Headers": [{"Name": CORRELATION_HEADER, "Value": message().correlation_id}],
        "Metadata": {"helpdesk_delivery": message().correlation_id},
        "TrackOpens": True, "MessageStream": "outbound"}


def test_one_connection_carries_a_threads_sends(fake, provider_for):
    provider = provider_for(fake)
    for i in range(4):
        assert provider.send(message(to=f"r{i}@valley.example")).outcome == "accepted"
    assert len(fake.accepted) == 4 and fake.connections == 1


def test_an_inactive_recipient_is_refused_with_postmarks_words(fake, provider_for):
    fake.inactive.add("ann@valley.example")
    result = provider_for(fake).send(message())
    assert result.outcome == "refused"
    assert result.reason.startswith("Postmark refused the message (HTTP 422): You tried to send "
                                    "to recipient(s) that have been marked as inactive.")
    assert result.reason.endswith("(ErrorCode 406)")


def test_an_unknown_message_stream_is_refused(fake, provider_for):
    result = provider_for(fake, POSTMARK_MESSAGE_STREAM="broadcasts").send(message())
    assert result.outcome == "refused"
    assert "'MessageStream' provided does not exist" in result.reason


@pytest.mark.parametrize("answer, outcome, words", [
    (422, "refused", "Postmark refused the message (HTTP 422): Invalid email request "
                     "(ErrorCode 300)"),
    (429, "deferred", "Postmark rate limit (HTTP 429): Rate limit exceeded. (ErrorCode 429)"),
    (500, "deferred", "Postmark is unavailable (HTTP 500): Internal server error."),
])
def test_postmark_answers_become_outcomes(fake, provider_for, answer, outcome, words):
    fake.answer = answer
    result = provider_for(fake).send(message())
    assert (result.outcome, result.reason) == (outcome, words)


def test_a_wrong_token_is_refused_and_no_token_ever_shows(fake, provider_for, caplog):
    caplog.set_level(logging.DEBUG)
    provider = provider_for(fake, POSTMARK_SERVER_TOKEN="wrong-token-secret")
    result = provider.send(message())
    assert result.outcome == "refused"
    assert "(HTTP 401): The Server Token you provided" in result.reason
    for text in (result.reason, caplog.text, repr(provider)):
        assert "wrong-token-secret" not in text and TOKEN not in text


def test_a_missing_token_is_refused_without_a_request(fake, provider_for):
    result = provider_for(fake, POSTMARK_SERVER_TOKEN=None).send(message())
    assert result.outcome == "refused" and "HELPDESK_POSTMARK_SERVER_TOKEN" in result.reason
    assert fake.requests == []


def test_a_hanging_api_defers_after_the_timeout(provider_for):
    with FakePostmark(token=TOKEN, hang_seconds=5) as api:
        api.answer = HANG
        result = provider_for(api, SEND_TIMEOUT=0.5).send(message())
    assert result.outcome == "deferred" and "did not answer within 0.5 s" in result.reason


def test_an_unreachable_api_defers():
    provider = PostmarkProvider({"POSTMARK_API_URL": f"http://127.0.0.1:{free_port()}",
                                 "POSTMARK_SERVER_TOKEN": TOKEN, "SEND_TIMEOUT": 2})
    result = provider.send(message())
    provider.close()
    assert result.outcome == "deferred" and result.reason.startswith("cannot reach Postmark")


def test_the_body_without_names_or_headers_still_passes_postmarks_checks(fake, provider_for):
    plain = Message(correlation_id="abc", sender="credentials@issuer.example",
                    to="ann@valley.example", to_name="", subject="Hello", text="Hello",
                    html="<p>Hello</p>")
    assert email_body(plain)["To"] == "ann@valley.example"
    assert provider_for(fake).send(plain).outcome == "accepted"


# --- the suppression list: Postmark's inactive addresses, through the bounce API --------------

def test_postmark_declares_what_it_can_do():
    declared = capabilities(PostmarkProvider({}))
    assert (declared.webhooks, declared.reports_deliveries, declared.suppression_list,
            declared.signs_one_time_tokens) == (True, True, True, False)


def test_an_active_address_is_on_no_list(fake, provider_for):
    fake.add_bounce("joann@valley.example")  # emailFilter matches it too: only exact counts
    assert provider_for(fake).suppression_lookup("ann@valley.example") is None


def test_a_hard_bounced_address_is_found_with_its_reason(fake, provider_for):
    fake.add_bounce("ann@valley.example")
    found = provider_for(fake).suppression_lookup("Ann@valley.example")
    assert (found.list, found.since) == (
        "bounces", datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=timezone.utc))
    assert found.reason == ("Hard bounce: smtp;550 5.1.1 The email account that you tried to "
                            "reach does not exist.")
    query = fake.requests[-1]["path"]
    assert "inactive=true" in query and "emailFilter=Ann%40valley.example" in query


def test_removing_reactivates_the_address_so_a_resend_goes_out(fake, provider_for):
    fake.add_bounce("ann@valley.example")
    provider = provider_for(fake)
    assert provider.send(message()).outcome == "refused"
    assert provider.suppression_remove("ann@valley.example") is True
    assert [r["path"] for r in fake.requests if r.get("method") == "PUT"] == [
        f"/bounces/{fake.bounces[0]['ID']}/activate"]
    assert provider.send(message()).outcome == "accepted"
    assert provider.suppression_remove("ann@valley.example") is False


def test_a_spam_complaint_cannot_be_removed(fake, provider_for):
    fake.add_bounce("ann@valley.example", type="SpamComplaint", can_activate=False)
    with pytest.raises(ServiceError, match="will not reactivate ann@valley.example"):
        provider_for(fake).suppression_remove("ann@valley.example")
    assert "ann@valley.example" in fake.inactive


def test_an_unreachable_or_refusing_bounce_api_is_a_service_error(fake, provider_for):
    with pytest.raises(ServiceError, match="HTTP 401"):
        provider_for(fake, POSTMARK_SERVER_TOKEN="wrong").suppression_lookup("a@example.com")
    provider = PostmarkProvider({"POSTMARK_API_URL": f"http://127.0.0.1:{free_port()}",
                                 "POSTMARK_SERVER_TOKEN": TOKEN, "SEND_TIMEOUT": 2})
    with pytest.raises(ServiceError, match="cannot reach Postmark"):
        provider.suppression_remove("a@example.com")
    provider.close()


# --- through the app: publish, send through the fake, post the webhooks ---------------------

def postmark_app(app_factory, api: FakePostmark, **overrides):
    settings = dict(PROVIDER="postmark", POSTMARK_API_URL=api.url, POSTMARK_SERVER_TOKEN=TOKEN,
                    POSTMARK_WEBHOOK_SECRET=SECRET, SEND_TIMEOUT=5,
                    SEND_RETRY_DELAY=3600)  # a deferral waits: still "sending"
    settings.update(overrides)
    return app_factory(**settings)


def post(client, record, authorization: str | None = basic("postmark", SECRET)):
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(WEBHOOK, data=raw, content_type="application/json", headers=headers)
    return response.status_code, response.get_json()


@pytest.fixture
def sent(app_factory, fake):
    """An app on Postmark with three recipients whose emails the fake accepted."""
    app = postmark_app(app_factory, fake)
    with app.app_context():
        credential = create_credential("Course", [
            {"name": n, "email": f"{n}@example.com"} for n in ("ada", "bob", "cy")],
            state="published")
        yield app.test_client(), {r.name: r for r in credential.recipients}


def test_the_postmark_plugin_is_found_through_its_entry_point(app_factory, fake):
    with postmark_app(app_factory, fake).app_context():
        provider = plugins.provider()
    assert isinstance(provider, PostmarkProvider)
    assert plugins.distribution_of(provider).startswith("helpdesk ")


def test_authenticated_records_raise_statuses(sent):
    client, people = sent
    ada, bob = (delivery_of(people[n]).correlation_id for n in ("ada", "bob"))
    to_ada, to_bob = addressed_to(people["ada"]), addressed_to(people["bob"])
    assert post(client, sample("delivery", ada, **to_ada))[0] == 200
    assert post(client, sample("open", ada, **to_ada))[0] == 200
    code, result = post(client, sample("bounce", bob, **to_bob))
    assert code == 200 and result["stored"] == 1 and result["unmatched"] == 0
    assert [status_of(people[n]) for n in ("ada", "bob")] == ["opened", "bounced"]
    bounce = db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.type == "bounced")).one()
    assert (bounce.severity, bounce.reason_code) == ("permanent", "user_unknown")


def test_a_soft_bounce_never_bounces(sent):
    client, people = sent
    ada, to_ada = delivery_of(people["ada"]).correlation_id, addressed_to(people["ada"])
    assert post(client, sample("delivery", ada, **to_ada))[0] == 200
    assert post(client, sample("bounce", ada, Type="SoftBounce", ID=7, **to_ada))[0] == 200
    assert status_of(people["ada"]) == "not_opened"


def test_records_match_by_message_id_without_metadata(sent):
    client, people = sent
    cy = delivery_of(people["cy"])
    assert post(client, sample("click", MessageID=cy.provider_message_id,
                               **addressed_to(people["cy"])))[0] == 200
    assert status_of(people["cy"]) == "opened"


@pytest.mark.parametrize("authorization", [None, basic("postmark", "guess")])
def test_requests_without_the_credentials_store_nothing(sent, authorization):
    client, people = sent
    before = stored_events()
    code, body = post(client, sample("bounce", delivery_of(people["ada"]).correlation_id),
                      authorization)
    assert code == 401 and "basic" in body["error"]
    assert stored_events() == before


def test_without_a_secret_webhooks_are_refused(app_factory, fake):
    app = postmark_app(app_factory, fake, POSTMARK_WEBHOOK_SECRET=None)
    with app.app_context():
        code, body = post(app.test_client(), sample("delivery"))
    assert code == 403 and "HELPDESK_POSTMARK_WEBHOOK_SECRET" in body["error"]


def test_a_malformed_body_is_400_and_stores_nothing(sent):
    client, _ = sent
    before = stored_events()
    assert post(client, b'{"RecordType": "Delivery"')[0] == 400
    assert post(client, {"RecordType": "Bounce", "ID": 1})[0] == 400
    assert stored_events() == before


def test_a_replayed_record_is_stored_once(sent):
    client, people = sent
    record = sample("bounce", delivery_of(people["ada"]).correlation_id)
    assert post(client, record)[1]["stored"] == 1
    after_first = stored_events()
    again = post(client, record)[1]
    assert (again["stored"], again["duplicates"], again["status_changes"]) == (0, 1, 0)
    assert stored_events() == after_first


def test_every_status_through_postmarks_real_protocol(app_factory, fake):
    fake.inactive.add("suppressed@example.com")
    fake.answer_for.update({"down@example.com": 500, "busy@example.com": 429})
    app = postmark_app(app_factory, fake)
    with app.app_context():
        credential = create_credential("Course", [
            {"name": n, "email": f"{n}@example.com" if n != "no address" else None}
            for n in ("delivered", "suppressed", "bounced", "opened", "no address", "down",
                      "busy")], state="published")
        people = {r.name: r for r in credential.recipients}
        client = app.test_client()
        delivered, bounced, opened = (delivery_of(people[n])
                                      for n in ("delivered", "bounced", "opened"))
        assert post(client, sample("delivery", delivered.correlation_id,
                                   Recipient="delivered@example.com",
                                   MessageID=delivered.provider_message_id))[0] == 200
        assert post(client, sample("bounce", bounced.correlation_id,
                                   Email="bounced@example.com",
                                   MessageID=bounced.provider_message_id))[0] == 200
        assert post(client, sample("open", opened.correlation_id,
                                   MessageID=opened.provider_message_id,
                                   **addressed_to(people["opened"])))[0] == 200
        assert {name: status_of(r) for name, r in people.items()} == {
            "delivered": "not_opened", "suppressed": "not_sent", "bounced": "bounced",
            "opened": "opened", "no address": "not_provided", "down": "sending",
            "busy": "sending"}
        refusal = db.session.scalars(select(DeliveryEvent.reason).where(
            DeliveryEvent.type == "refused")).one()
        assert "marked as inactive" in refusal and "ErrorCode 406" in refusal


def test_unsuppress_and_resend_reactivates_then_sends_again(sent, fake):
    client, people = sent
    ada = people["ada"]
    bounce = fake.add_bounce(ada.email)
    assert post(client, sample("bounce", delivery_of(ada).correlation_id, ID=bounce["ID"],
                               **addressed_to(ada)))[0] == 200
    assert status_of(ada) == "bounced"
    again = unsuppress_and_resend(db.session.get(Recipient, ada.id))
    assert ada.email not in fake.inactive and bounce["Inactive"] is False
    assert fake.requests[-1]["body"]["To"].endswith(f"<{ada.email}>")
    assert again.email == ada.email and status_of(ada) == "sending"
