"""The Amazon SES provider: its sender, the AWS SDK pointed at a local fake of the SES v2 API that
checks every request's SigV4 signature and body; its parser on the event records of the SES
developer guide (kept in ``tests/data/ses``); the SNS signature check against a signing
certificate served over HTTPS by a local stand-in for the SNS host; and the whole path through
the app: publish → SES → signed SNS notifications → statuses."""
from __future__ import annotations

import base64
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import AWS_ACCESS_KEY, AWS_SECRET_KEY
from fake_api import provider_fixture
from fake_ses import HANG, FakeSes
from fake_sns import CERT_PATH, HOST, FakeSnsHost
from stored import delivery_of, status_of, stored_events
from helpdesk import plugins
from helpdesk.contract import (CORRELATION_HEADER, REASON_CODES, Message, NotConfigured,
                               ServiceError, SignatureError, WebhookError, capabilities)
from helpdesk.credentials import create_credential
from helpdesk.models import Delivery, DeliveryEvent, Recipient, db
from helpdesk.publishing import unsuppress_and_resend
from helpdesk.sink import free_port
from helpdesk.status import EVENT_TYPES as NORMALIZED_TYPES
from helpdesk_ses import SesProvider, send_email_request
from helpdesk_ses.certificates import SnsFetcher
from helpdesk_ses.webhook import (BOUNCE_SUBTYPES, EVENT_TYPES, allowed_topics, bounce_outcome,
                                  check_sns_url, check_timestamp, parse_notification,
                                  read_envelope, verify_signature)

DATA = Path(__file__).parent / "data" / "ses"
TOPIC = "arn:aws:sns:us-east-1:123456789012:helpdesk-ses-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:210987654321:someone-elses"
WEBHOOK = "/webhooks/ses"


def ses_record(name: str, correlation_id: str | None = "c0ffee", *,
               address: str = "recipient@example.com", message_id: str | None = None,
               **detail) -> dict:
    """An SES event record exactly as the SES developer guide shows it, about our message:
    its tags carry our delivery (as event publishing copies a send's tags), its recipient and
    message id are ours."""
    record = json.loads((DATA / f"{name}.json").read_text())
    mail = record["mail"]
    if correlation_id:
        mail["tags"]["helpdesk_delivery"] = [correlation_id]
    mail["destination"] = [address]
    if message_id:
        mail["messageId"] = message_id
    key = next(k for k in record if k not in ("eventType", "mail"))
    for listed in ("bouncedRecipients", "complainedRecipients", "delayedRecipients"):
        if listed in record[key]:
            record[key][listed][0]["emailAddress"] = address
    if "recipients" in record[key]:
        record[key]["recipients"] = [address]
    record[key].update(detail)
    return record


def envelope_of(record: dict, message_id="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324") -> dict:
    """The record inside an SNS Notification (unsigned: for the parser alone)."""
    envelope = json.loads((DATA / "sns_notification.json").read_text())
    envelope.update(Message=json.dumps(record), MessageId=message_id)
    return envelope


def message(to="ann@valley.example", correlation_id="c0ffee" * 5 + "00") -> Message:
    return Message(correlation_id=correlation_id, sender="credentials@issuer.example", to=to,
                   to_name="Ann Example", subject="Your credential: Rust 101",
                   text="Your credential is ready.", html="<p>Your credential is ready.</p>",
                   headers={CORRELATION_HEADER: correlation_id})


# --- the parser, on the documented records ---------------------------------------------------

@pytest.mark.parametrize("name, type_, severity, reason_code, occurred_at", [
    ("send", "accepted", None, None, "2016-10-14T05:02:16.645Z"),
    ("delivery", "delivered", None, None, "2016-10-19T23:21:04.133Z"),
    ("bounce", "bounced", "permanent", "other", "2017-08-05T00:41:02.669Z"),
    ("complaint", "complained", None, None, "2017-08-05T00:41:02.669Z"),
    ("reject", "rejected", "permanent", "spam", "2016-10-14T17:38:15.211Z"),
    ("delivery_delay", "deferred", "temporary", "temporary", "2020-06-16T00:25:40.095Z"),
    ("open", "opened", None, None, "2017-08-09T22:00:19.652Z"),
    ("click", "clicked", None, None, "2017-08-09T23:51:25.570Z"),
    ("rendering_failure", "refused", "permanent", "other", "2018-01-22T18:43:06.197Z"),
])
def test_each_documented_record_has_its_normalized_event(name, type_, severity, reason_code,
                                                         occurred_at):
    record = ses_record(name)
    [event] = parse_notification(envelope_of(record))
    assert (event.type, event.severity, event.reason_code) == (type_, severity, reason_code)
    assert event.provider == "ses"
    assert event.event_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"  # the SNS MessageId
    assert event.correlation_id == "c0ffee"
    assert event.message_id == "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    assert event.recipient == "recipient@example.com"
    assert event.occurred_at == datetime.fromisoformat(occurred_at)
    assert event.raw == record


def test_the_servers_words_are_kept():
    [bounce] = parse_notification(envelope_of(ses_record("bounce")))
    assert (bounce.reason, bounce.mta_response) == ("Permanent bounce (General)",
                                                    "smtp; 550 5.1.1 user unknown")
    [delivery] = parse_notification(envelope_of(ses_record("delivery")))
    assert delivery.mta_response == "250 2.6.0 Message received"
    [delay] = parse_notification(envelope_of(ses_record("delivery_delay")))
    assert delay.reason == ("delivery delayed (TransientCommunicationFailure); SES keeps trying "
                            "until 2020-06-16T00:25:40.914Z")
    assert delay.mta_response == "smtp; 421 4.4.1 Unable to connect to remote host"
    [click] = parse_notification(envelope_of(ses_record("click")))
    assert click.reason == ("http://docs.aws.amazon.com/ses/latest/DeveloperGuide/"
                            "send-email-smtp.html")
    [complaint] = parse_notification(envelope_of(ses_record("complaint")))
    assert complaint.reason == "the recipient marked the email as spam (abuse)"


@pytest.mark.parametrize("bounce_type, subtype, type_, severity, reason_code", [
    ("Permanent", "General", "bounced", "permanent", "other"),
    ("Permanent", "NoEmail", "bounced", "permanent", "user_unknown"),
    ("Permanent", "Suppressed", "bounced", "permanent", "suppressed"),
    ("Permanent", "OnAccountSuppressionList", "bounced", "permanent", "suppressed"),
    ("Transient", "General", "deferred", "temporary", "temporary"),
    ("Transient", "MailboxFull", "deferred", "temporary", "mailbox_full"),
    ("Transient", "MessageTooLarge", "deferred", "temporary", "too_large"),
    ("Transient", "ContentRejected", "deferred", "temporary", "spam"),
    ("Undetermined", "Undetermined", "bounced", None, "other"),
])
def test_bounce_types_and_subtypes(bounce_type, subtype, type_, severity, reason_code):
    [event] = parse_notification(envelope_of(ses_record(
        "bounce", bounceType=bounce_type, bounceSubType=subtype)))
    assert (event.type, event.severity, event.reason_code) == (type_, severity, reason_code)


def test_every_mapping_stays_in_the_closed_vocabularies():
    for outcome in EVENT_TYPES.values():
        assert outcome.type in NORMALIZED_TYPES
        assert outcome.reason_code is None or outcome.reason_code in REASON_CODES
    for code in BOUNCE_SUBTYPES.values():
        assert code in REASON_CODES
    for kind in ("Permanent", "Transient", "Undetermined", None):
        assert bounce_outcome(kind, "whatever").type in NORMALIZED_TYPES


def test_an_identitys_feedback_notification_without_tags_finds_our_header():
    record = ses_record("bounce", correlation_id=None)
    record["notificationType"] = record.pop("eventType")
    del record["mail"]["tags"]
    record["mail"]["headers"].append({"name": "X-Helpdesk-Delivery", "value": "beef"})
    [event] = parse_notification(envelope_of(record))
    assert (event.type, event.correlation_id) == ("bounced", "beef")


def test_one_record_about_several_recipients_is_one_event_each():
    record = ses_record("bounce")
    record["bounce"]["bouncedRecipients"].append({"emailAddress": "second@example.com"})
    events = parse_notification(envelope_of(record, message_id="m-1"))
    assert [(e.event_id, e.recipient) for e in events] == [
        ("m-1:0", "recipient@example.com"), ("m-1:1", "second@example.com")]


def test_an_unknown_event_type_is_kept_as_unknown():
    record = ses_record("send")
    record["eventType"] = "Teleport"
    [event] = parse_notification(envelope_of(record))
    assert event.type == "unknown" and "'Teleport'" in event.reason


@pytest.mark.parametrize("message_text, words", [
    ("not json", "not JSON"),
    ("[]", "not an SES event record"),
    ("{}", "no eventType"),
    (json.dumps({"eventType": "Send"}), "no \"mail\" object"),
    (json.dumps({"eventType": "Open", "mail": {}, "open": {"timestamp": "yesterday"}}),
     "not an ISO 8601 time"),
])
def test_unusable_records_are_refused_with_a_reason(message_text, words):
    envelope = envelope_of({})
    envelope["Message"] = message_text
    with pytest.raises(WebhookError) as error:
        parse_notification(envelope)
    assert error.value.status == 400 and words in str(error.value)


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({"eventType": st.sampled_from(list(EVENT_TYPES) + ["Other"])},
                             optional={
    "mail": st.dictionaries(st.sampled_from(["messageId", "destination", "tags", "timestamp",
                                             "headers"]),
                            st.one_of(st.none(), st.text(max_size=20), st.integers(),
                                      st.lists(st.text(max_size=10), max_size=2),
                                      st.just("2017-08-05T00:40:02.012Z"))),
    "bounce": st.dictionaries(st.sampled_from(["bounceType", "bounceSubType",
                                               "bouncedRecipients", "timestamp"]),
                              st.one_of(st.none(), st.text(max_size=20),
                                        st.lists(st.dictionaries(st.just("emailAddress"),
                                                                 st.text(max_size=10)))))}))
def test_any_record_is_events_or_a_refusal_never_a_crash(record):
    try:
        events = parse_notification(envelope_of(record))
    except WebhookError:
        return
    assert all(e.type in NORMALIZED_TYPES for e in events)


# --- the SNS message: its topic, its certificate's address, its signature --------------------

def test_without_allowed_topics_every_message_is_refused():
    with pytest.raises(NotConfigured) as error:
        read_envelope(b"{}", allowed_topics(None))
    assert error.value.status == 403 and "HELPDESK_SES_SNS_TOPIC_ARNS" in str(error.value)


def test_the_setting_takes_a_list_or_a_text():
    assert allowed_topics(f"{TOPIC}, {OTHER_TOPIC}") == {TOPIC, OTHER_TOPIC}
    assert allowed_topics([TOPIC]) == {TOPIC}


@pytest.mark.parametrize("change, status, words", [
    ({"TopicArn": OTHER_TOPIC}, 403, "is not one of HELPDESK_SES_SNS_TOPIC_ARNS"),
    ({"Type": "Telegram"}, 400, "not an SNS message Type"),
    ({"Signature": None}, 401, "is not signed: it has no Signature"),
    ({"Message": 42}, 400, "has no Message"),
])
def test_unacceptable_envelopes(change, status, words):
    envelope = {**json.loads((DATA / "sns_notification.json").read_text()), "TopicArn": TOPIC,
                **change}
    with pytest.raises(WebhookError) as error:
        read_envelope(json.dumps(envelope).encode(), {TOPIC})
    assert error.value.status == status and words in str(error.value)


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.eu-central-2.amazonaws.com/x.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
    "https://sns.us-gov-west-1.amazonaws.com:443/x.pem",
])
def test_certificates_come_from_amazon_sns_hosts(url):
    assert check_sns_url(url, "SigningCertURL") == url


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
    "https://user@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://sqs.us-east-1.amazonaws.com/x.pem",
    "https://sns.amazonaws.com/x.pem",
    "https://sns.us-east-1.evil-amazonaws.com/x.pem",
    None, 42, "",
])
def test_any_other_address_is_refused(url):
    with pytest.raises(SignatureError):
        check_sns_url(url, "SigningCertURL")


@pytest.fixture(scope="module")
def sns():
    with FakeSnsHost() as host:
        yield host


@pytest.mark.parametrize("version", ["1", "2"])
def test_both_signature_versions_verify(sns, version):
    envelope = sns.notification(TOPIC, ses_record("delivery"), version=version)
    verify_signature(envelope, sns.signing_key.public_key())


@pytest.mark.parametrize("tamper", [
    lambda e: e.update(Message=e["Message"].replace("recipient@", "attacker@")),
    lambda e: e.update(MessageId="another"),
    lambda e: e.update(Timestamp="2030-01-01T00:00:00.000Z"),
    lambda e: e.update(Subject="changed"),
    lambda e: e.update(SignatureVersion="2" if e["SignatureVersion"] == "1" else "1"),
    lambda e: e.update(Signature=base64.b64encode(b"x" * 256).decode()),
])
@pytest.mark.parametrize("version", ["1", "2"])
def test_a_changed_message_or_signature_is_refused(sns, version, tamper):
    envelope = sns.notification(TOPIC, ses_record("delivery"), version=version)
    tamper(envelope)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(envelope, sns.signing_key.public_key())


def test_another_key_or_an_unknown_version_is_refused(sns):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    envelope = sns.sign(sns.envelope("Notification", TOPIC, "{}"), key=stranger)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(envelope, sns.signing_key.public_key())
    with pytest.raises(SignatureError, match="unknown SNS SignatureVersion"):
        verify_signature({**envelope, "SignatureVersion": "3"}, sns.signing_key.public_key())
    with pytest.raises(SignatureError, match="not base64"):
        verify_signature({**envelope, "Signature": "!!"}, sns.signing_key.public_key())


@pytest.mark.parametrize("age, fresh", [(0, True), (590, True), (-590, True), (700, False),
                                        (-700, False)])
def test_an_old_or_future_message_is_stale(sns, age, fresh):
    envelope = sns.notification(TOPIC, ses_record("send"))
    signed = datetime.fromisoformat(envelope["Timestamp"]).timestamp()
    if fresh:
        check_timestamp(envelope, tolerance=600, now=signed + age)
    else:
        with pytest.raises(SignatureError, match="SNS Timestamp is stale"):
            check_timestamp(envelope, tolerance=600, now=signed + age)


def test_the_certificate_is_fetched_over_verified_https_once(sns):
    fetcher = sns.fetcher()
    before = sns.certificate_fetches
    url = f"https://{HOST}{CERT_PATH}"
    key = fetcher.signing_key(url)
    assert key.public_numbers() == sns.signing_key.public_key().public_numbers()
    assert fetcher.signing_key(url) is key
    assert (sns.certificate_fetches - before, fetcher.fetched) == (1, 1)


def test_a_server_that_is_not_the_sns_host_is_not_trusted(sns):
    # The fake's certificate names sns.us-east-1 only: dialled as another SNS region, or with
    # the system's trust store, TLS refuses it, and no key is taken.
    with pytest.raises(SignatureError, match="cannot fetch the SNS signing certificate"):
        sns.fetcher().signing_key(f"https://sns.eu-west-1.amazonaws.com{CERT_PATH}")
    untrusting = SnsFetcher(resolve=lambda host, port: ("127.0.0.1", sns.port), timeout=5)
    with pytest.raises(SignatureError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.signing_key(f"https://{HOST}{CERT_PATH}")


def test_a_certificate_url_off_sns_is_never_fetched(sns):
    before = sns.certificate_fetches
    with pytest.raises(SignatureError, match="not an https URL on an Amazon SNS host"):
        sns.fetcher().signing_key(f"https://127.0.0.1:{sns.port}{CERT_PATH}")
    assert sns.certificate_fetches == before


def test_production_dials_the_real_host_name():
    fetcher = SesProvider({}).sns
    assert fetcher._resolve("sns.us-east-1.amazonaws.com", 443) == (
        "sns.us-east-1.amazonaws.com", 443)


# --- the sender against the fake SES v2 API ---------------------------------------------------

@pytest.fixture
def fake():
    with FakeSes(AWS_ACCESS_KEY, AWS_SECRET_KEY) as api:
        yield api


provider_for = provider_fixture(lambda api, **config: SesProvider({
    "SES_REGION": "us-east-1", "SES_ENDPOINT_URL": api.url, "SES_CONFIGURATION_SET": "helpdesk",
    "SEND_TIMEOUT": 2, "SENDER_NAME": "Credentials", **config}))


def test_a_sent_message_is_accepted_with_its_message_id_and_a_well_formed_request(
        fake, provider_for):
    result = provider_for(fake).send(message())
    assert result.outcome == "accepted"
    assert result.message_id == fake.sent[message().correlation_id]
    request = fake.requests[-1]
    # The fake recomputed the SigV4 signature; here its shape, for the reader.
    assert request["headers"]["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/")
    assert "/us-east-1/ses/aws4_request, SignedHeaders=" in request["headers"]["Authorization"]
    assert request["body"] == {
        "FromEmailAddress": "Credentials <credentials@issuer.example>",
        "Destination": {"ToAddresses": ["Ann Example <ann@valley.example>"]},
        "Content": {"Simple": {
            "Subject": {"Data": "Your credential: Rust 101", "Charset": "UTF-8"},
            "Body": {"Text": {"Data": "Your credential is ready.", "Charset": "UTF-8"},
                     "Html": {"Data": "<p>Your credential is ready.</p>", "Charset": "UTF-8"}},
            "Headers": [{"Name": CORRELATION_HEADER, "Value": message().correlation_id}]}},
        "EmailTags": [{"Name": "helpdesk_delivery", "Value": message().correlation_id}],
        "ConfigurationSetName": "helpdesk"}


def test_one_connection_carries_a_batch(fake, provider_for):
    provider = provider_for(fake)
    for i in range(4):
        assert provider.send(message(to=f"r{i}@valley.example")).outcome == "accepted"
    assert len(fake.accepted) == 4 and fake.connections == 1


@pytest.mark.parametrize("config, words", [
    ({"SENDER_NAME": ""}, None),
    ({"SES_CONFIGURATION_SET": "missing"},
     "Amazon SES refused the message (NotFoundException): Configuration set <missing> does "
     "not exist."),
])
def test_the_configuration_set_must_exist(fake, provider_for, config, words):
    result = provider_for(fake, **config).send(message())
    assert (result.outcome, result.reason or None) == (
        ("accepted", None) if words is None else ("refused", words))


def test_an_unverified_sender_is_refused_with_ses_words(fake, provider_for):
    fake.identities = {"other.example"}
    result = provider_for(fake).send(message())
    assert result.outcome == "refused"
    assert result.reason.startswith("Amazon SES refused the message (MessageRejected): Email "
                                    "address is not verified.")


@pytest.mark.parametrize("answer, outcome, words", [
    (429, "deferred", "Amazon SES rate limit (TooManyRequestsException): Maximum sending rate "
                      "exceeded."),
    (500, "deferred", "Amazon SES is unavailable (HTTP 500, InternalFailure): The request "
                      "processing has failed because of an unknown error."),
    (503, "deferred", "Amazon SES is unavailable (HTTP 503, InternalFailure)"),
])
def test_ses_answers_become_outcomes(fake, provider_for, answer, outcome, words):
    fake.answer = answer
    result = provider_for(fake).send(message())
    assert result.outcome == outcome and result.reason.startswith(words)
    assert len(fake.requests) == 1  # the SDK does not retry: the queue does, with backoff


def test_a_wrong_secret_is_refused_and_no_secret_ever_shows(fake, provider_for, caplog,
                                                             monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    provider = provider_for(fake)
    result = provider.send(message())
    assert (result.outcome, result.reason) == (
        "refused", "Amazon SES refused the message (SignatureDoesNotMatch): The request "
                   "signature we calculated does not match the signature you provided.")
    for text in (result.reason, caplog.text, repr(provider)):
        assert "not-the-secret-0123456789" not in text and AWS_SECRET_KEY not in text


def test_without_credentials_or_region_nothing_is_sent(fake, provider_for, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = provider_for(fake).send(message())
    assert result.outcome == "refused" and "no AWS credentials" in result.reason
    result = provider_for(fake, SES_REGION=None, SES_ENDPOINT_URL=None).send(message())
    assert (result.outcome, result.reason) == (
        "refused", "no AWS region: set HELPDESK_SES_REGION or AWS_DEFAULT_REGION")
    assert fake.requests == []


def test_the_region_can_come_from_the_aws_chain(fake, provider_for, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert provider_for(fake, SES_REGION=None).send(message()).outcome == "accepted"


def test_a_hanging_api_defers_after_the_timeout(provider_for):
    with FakeSes(AWS_ACCESS_KEY, AWS_SECRET_KEY, hang_seconds=5) as api:
        api.answer = HANG
        started = time.monotonic()
        result = provider_for(api, SEND_TIMEOUT=0.5).send(message())
    assert (result.outcome, result.reason) == (
        "deferred", "Amazon SES did not answer within 0.5 s")
    assert time.monotonic() - started < 5


def test_an_unreachable_api_defers():
    provider = SesProvider({"SES_REGION": "us-east-1", "SEND_TIMEOUT": 2,
                            "SES_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    result = provider.send(message())
    provider.close()
    assert result.outcome == "deferred" and result.reason.startswith(
        "cannot reach Amazon SES: EndpointConnectionError")


def test_the_request_without_a_configuration_set_or_names():
    plain = Message(correlation_id="abc", sender="credentials@issuer.example",
                    to="ann@valley.example", to_name="", subject="Hello", text="Hello",
                    html="<p>Hello</p>")
    request = send_email_request(plain)
    assert "ConfigurationSetName" not in request
    assert request["Destination"] == {"ToAddresses": ["ann@valley.example"]}
    assert request["Content"]["Simple"]["Headers"] == []


# --- the account-level suppression list -------------------------------------------------------

def test_ses_declares_what_it_can_do():
    declared = capabilities(SesProvider({}))
    assert (declared.webhooks, declared.reports_deliveries, declared.suppression_list,
            declared.signs_one_time_tokens) == (True, True, True, False)


def test_looking_up_and_removing_a_suppressed_address(fake, provider_for):
    provider = provider_for(fake)
    assert provider.suppression_lookup("ann@valley.example") is None
    fake.suppress("ann@valley.example")
    found = provider.suppression_lookup("ann@valley.example")
    assert (found.list, found.reason, found.since) == (
        "account-level suppression list", "added after a bounce",
        datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    assert provider.suppression_remove("ann@valley.example") is True
    assert [r["address"] for r in fake.requests if r["method"] == "DELETE"] == [
        "ann@valley.example"]
    assert "ann@valley.example" not in fake.suppressed
    assert provider.suppression_remove("ann@valley.example") is False


def test_a_suppression_list_that_cannot_be_asked_is_a_service_error(fake, provider_for,
                                                                    monkeypatch):
    provider = SesProvider({"SES_REGION": "us-east-1", "SEND_TIMEOUT": 2,
                            "SES_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ServiceError, match="cannot ask Amazon SES about a@example.com"):
        provider.suppression_remove("a@example.com")
    provider.close()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(ServiceError, match=r"\(HTTP 403, SignatureDoesNotMatch\)"):
        provider_for(fake).suppression_lookup("a@example.com")


# --- through the app: publish, send through the fake, SNS posts the events --------------------

def ses_app(app_factory, api: FakeSes, sns: FakeSnsHost, **overrides):
    settings = dict(PROVIDER="ses", SES_REGION="us-east-1", SES_ENDPOINT_URL=api.url,
                    SES_CONFIGURATION_SET="helpdesk", SES_SNS_TOPIC_ARNS=[TOPIC],
                    SEND_TIMEOUT=5, SEND_RETRY_DELAY=3600)  # a deferral waits: still "sending"
    settings.update(overrides)
    app = app_factory(**settings)
    with app.app_context():
        plugins.provider("ses").sns = sns.fetcher()  # the local SNS host, in the test's trust
    return app


def post(client, envelope: dict | bytes):
    raw = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    headers = {} if isinstance(envelope, bytes) else {
        "x-amz-sns-message-type": envelope.get("Type", ""),
        "x-amz-sns-message-id": envelope.get("MessageId", ""),
        "x-amz-sns-topic-arn": envelope.get("TopicArn", "")}
    # SNS posts its JSON as text/plain
    response = client.post(WEBHOOK, data=raw, content_type="text/plain; charset=UTF-8",
                           headers=headers)
    return response.status_code, response.get_json()


def about(name: str, delivery: Delivery, **detail) -> dict:
    return ses_record(name, delivery.correlation_id, address=delivery.email,
                      message_id=delivery.provider_message_id, **detail)


@pytest.fixture
def sent(app_factory, fake, sns):
    """An app on SES with three recipients whose emails the fake accepted."""
    app = ses_app(app_factory, fake, sns)
    with app.app_context():
        credential = create_credential("Course", [
            {"name": n, "email": f"{n}@example.com"} for n in ("ada", "bob", "cy")],
            state="published")
        yield app.test_client(), {r.name: delivery_of(r) for r in credential.recipients}


def test_the_ses_plugin_is_found_through_its_entry_point(app_factory, fake, sns):
    with ses_app(app_factory, fake, sns).app_context():
        provider = plugins.provider()
    assert isinstance(provider, SesProvider)
    assert plugins.distribution_of(provider).startswith("helpdesk ")


def test_a_subscription_is_confirmed_for_an_allowed_topic(sent, sns):
    client, _ = sent
    confirmation = sns.confirmation(TOPIC)
    assert post(client, confirmation) == (200, {"received": 0, "stored": 0, "duplicates": 0,
                                                "unmatched": 0, "status_changes": 0})
    assert sns.confirmations[-1]["Token"] == confirmation["Token"]
    assert sns.confirmations[-1]["TopicArn"] == TOPIC


def test_a_subscription_to_another_topic_is_never_confirmed(sent, sns):
    client, _ = sent
    before = len(sns.confirmations)
    code, body = post(client, sns.confirmation(OTHER_TOPIC))
    assert code == 403 and "is not one of HELPDESK_SES_SNS_TOPIC_ARNS" in body["error"]
    assert len(sns.confirmations) == before


def test_a_confirmation_pointing_off_sns_is_refused(sent, sns):
    client, _ = sent
    confirmation = sns.confirmation(TOPIC, SubscribeURL="https://evil.example/?Action=x")
    code, body = post(client, confirmation)
    assert code == 401 and "SubscribeURL is not an https URL" in body["error"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notifications_raise_statuses(sent, sns, version):
    client, deliveries = sent
    ada, bob = deliveries["ada"], deliveries["bob"]
    for record in (about("delivery", ada), about("open", ada), about("delivery", bob),
                   about("bounce", bob)):
        code, result = post(client, sns.notification(TOPIC, record, version=version))
        assert code == 200 and result["stored"] == 1 and result["unmatched"] == 0
    assert [status_of(d.recipient) for d in (ada, bob, deliveries["cy"])] == [
        "opened", "bounced", "sending"]  # cy: accepted by SES, no Delivery event yet
    bounce = db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.type == "bounced")).one()
    assert (bounce.severity, bounce.reason_code, bounce.mta_response) == (
        "permanent", "other", "smtp; 550 5.1.1 user unknown")


def test_a_transient_bounce_or_a_delay_never_bounces(sent, sns):
    client, deliveries = sent
    ada = deliveries["ada"]
    for record in (about("delivery", ada), about("delivery_delay", ada),
                   about("bounce", ada, bounceType="Transient", bounceSubType="MailboxFull")):
        assert post(client, sns.notification(TOPIC, record))[0] == 200
    assert status_of(ada.recipient) == "not_opened"


def test_an_address_on_the_suppression_list_shows_as_suppressed(sent, sns):
    client, deliveries = sent
    record = about("bounce", deliveries["cy"], bounceSubType="OnAccountSuppressionList")
    assert post(client, sns.notification(TOPIC, record))[0] == 200
    event = db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.type == "bounced")).one()
    assert (event.reason_code, status_of(deliveries["cy"].recipient)) == ("suppressed",
                                                                         "bounced")


@pytest.mark.parametrize("forge", [
    lambda e: e.update(Message=e["Message"].replace("Delivery", "Open")),
    lambda e: e.update(SigningCertURL=f"https://127.0.0.1/{CERT_PATH}"),
    lambda e: e.update(Timestamp="2012-05-02T00:54:06.655Z"),
    lambda e: e.update(Signature="EXAMPLEw6JRN..."),
])
def test_a_forged_or_stale_notification_stores_nothing(sent, sns, forge):
    client, deliveries = sent
    envelope = sns.notification(TOPIC, about("delivery", deliveries["ada"]))
    forge(envelope)
    before = stored_events()
    code, body = post(client, envelope)
    assert code == 401, body
    assert stored_events() == before


def test_without_allowed_topics_webhooks_are_refused(app_factory, fake, sns):
    app = ses_app(app_factory, fake, sns, SES_SNS_TOPIC_ARNS=None)
    with app.app_context():
        code, body = post(app.test_client(), sns.notification(TOPIC, ses_record("send")))
    assert code == 403 and "HELPDESK_SES_SNS_TOPIC_ARNS" in body["error"]


def test_a_header_that_contradicts_the_body_is_refused(sent, sns):
    client, deliveries = sent
    envelope = sns.notification(TOPIC, about("delivery", deliveries["ada"]))
    response = client.post(WEBHOOK, data=json.dumps(envelope), content_type="text/plain",
                           headers={"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert response.status_code == 400


def test_a_retried_notification_is_stored_once(sent, sns):
    client, deliveries = sent
    envelope = sns.notification(TOPIC, about("bounce", deliveries["ada"]))
    assert post(client, envelope)[1]["stored"] == 1
    again = post(client, envelope)[1]
    assert (again["stored"], again["duplicates"]) == (0, 1)


def test_every_status_through_ses_and_sns(app_factory, fake, sns):
    fake.answer_for.update({"refused@example.com": 400, "down@example.com": 500,
                            "busy@example.com": 429})
    app = ses_app(app_factory, fake, sns)
    with app.app_context():
        credential = create_credential("Course", [
            {"name": n, "email": f"{n}@example.com" if n != "no address" else None}
            for n in ("delivered", "refused", "bounced", "opened", "no address", "down",
                      "busy")], state="published")
        people = {r.name: r for r in credential.recipients}
        client = app.test_client()
        assert post(client, sns.confirmation(TOPIC))[0] == 200
        for name, kinds in (("delivered", ["send", "delivery"]), ("bounced", ["send", "bounce"]),
                            ("opened", ["send", "delivery", "open", "click"])):
            delivery = delivery_of(people[name])
            for kind in kinds:
                assert post(client, sns.notification(TOPIC, about(kind, delivery)))[0] == 200
        assert {name: status_of(r) for name, r in people.items()} == {
            "delivered": "not_opened", "refused": "not_sent", "bounced": "bounced",
            "opened": "opened", "no address": "not_provided", "down": "sending",
            "busy": "sending"}
        refusal = db.session.scalars(select(DeliveryEvent.reason).where(
            DeliveryEvent.type == "refused")).one()
        assert "(MessageRejected)" in refusal


def test_unsuppress_and_resend_clears_the_account_list_then_sends_again(sent, fake, sns):
    client, deliveries = sent
    ada = deliveries["ada"]
    fake.suppress(ada.email)
    record = about("bounce", ada, bounceSubType="OnAccountSuppressionList")
    assert post(client, sns.notification(TOPIC, record))[0] == 200
    assert status_of(ada.recipient) == "bounced"
    again = unsuppress_and_resend(db.session.get(Recipient, ada.recipient_id))
    assert ada.email.lower() not in fake.suppressed
    assert [r["method"] for r in fake.requests][-2:] == ["DELETE", "POST"]
    assert again.id != ada.id and status_of(ada.recipient) == "sending"
