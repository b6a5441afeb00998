"""Asynchronous SMTP bounce reports (RFC 3464 delivery status notifications): the parser over
real-world shapes, `helpdesk bounces ingest FILE|-` (the mailboxes the worker reads are in
test_mailboxes), and the whole path from a real send through the SMTP sink to a returned
report."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from helpdesk.contract import NotABounce
from helpdesk.credentials import create_credential
from helpdesk.models import Delivery, DeliveryEvent, Recipient, db
from helpdesk.status import BOUNCED, NOT_OPENED
from helpdesk_smtp import verp_address
from helpdesk_smtp.bounces import parse_bounce as parse_dsn
from helpdesk_smtp.dsn import MalformedReport

DATA = Path(__file__).parent / "data" / "dsn"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def make_dsn(*, to: str, groups: list[dict[str, str]], original: bytes | None = None,
             per_message: dict[str, str] | None = None,
             message_id: str | None = "<dsn-1@mx.example>") -> bytes:
    """A delivery status notification as an MTA writes one (LF line ends)."""
    head = [f"To: {to}", "From: MAILER-DAEMON@mx.example", "Subject: Delivery report",
            "Date: Thu, 27 Mar 2025 10:00:00 +0000", "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=delivery-status; boundary="BND"']
    if message_id:
        head.append(f"Message-ID: {message_id}")
    fields = {"Reporting-MTA": "dns; mx.example", **(per_message or {})}
    status = [f"{k}: {v}" for k, v in fields.items()]
    for group in groups:
        status += [""] + [f"{k}: {v}" for k, v in group.items()]
    lines = head + ["", "--BND", "Content-Type: text/plain", "", "A report.", "",
                    "--BND", "Content-Type: message/delivery-status", ""] + status + [""]
    text = "\n".join(lines).encode()
    if original is not None:
        text += b"--BND\nContent-Type: message/rfc822\n\n" + original.replace(b"\r\n", b"\n")
        text += b"\n"
    return text + b"--BND--\n"


def events_of(delivery_id: int) -> list[DeliveryEvent]:
    return db.session.scalars(select(DeliveryEvent).where(DeliveryEvent.delivery_id ==
                                                          delivery_id)
                              .order_by(DeliveryEvent.id)).all()


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(DeliveryEvent))


# --- the parser over real-world shapes -----------------------------------------------------

@pytest.mark.parametrize("name, correlation_id, recipient, status, diagnostic", [
    ("postfix-failed.eml", "3b9f1c0e6d2a4f8b9c7e5a1d2f4b6c8e", "ada@example.co.uk", "5.1.1",
     "550 5.1.1 <ada@example.co.uk>: Recipient address rejected: User unknown in virtual "
     "mailbox table"),
    ("exim-failed.eml", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "linus@kernel.example", "5.0.0",
     "550 5.7.1 Service unavailable; client [192.0.2.10] blocked using zen.example"),
    ("gmail-failed.eml", "c0ffee00c0ffee00c0ffee00c0ffee00", "nobody.here.12345@gmail.com",
     "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces. For more "
     "information, go to https://support.google.com/mail/?p=NoSuchUser "
     "a640c23a62f3a-ac3efbd5a2fsi123 - gsmtp"),
    ("global-utf8.eml", "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9", "josé@correo.example", "5.1.1",
     "550 5.1.1 <josé@correo.example>: usuario desconocido"),
])
def test_a_failed_report_is_one_permanent_bounce(name, correlation_id, recipient, status,
                                                  diagnostic):
    [event] = parse_dsn(fixture(name))
    assert (event.provider, event.type, event.severity) == ("smtp", "bounced", "permanent")
    assert event.correlation_id == correlation_id
    assert event.recipient == recipient
    assert event.reason == diagnostic
    assert event.mta_response == f"{status} {diagnostic}"
    assert event.raw["status"] == status and event.raw["action"] == "failed"
    assert event.occurred_at.tzinfo == timezone.utc


def test_a_full_mailbox_is_soft_whatever_the_action_says():
    [event] = parse_dsn(fixture("outlook-com-failed.eml"))  # Action: failed, Status: 5.2.2
    assert (event.type, event.severity, event.reason_code) == ("deferred", "temporary",
                                                               "mailbox_full")
    assert event.recipient == "rene@boite.example"
    assert event.reason == "552 5.2.2 <rene@boite.example>... Boîte pleine (mailbox full)"


def test_folded_fields_are_read_as_one_line():
    [event] = parse_dsn(fixture("postfix-failed.eml"))
    assert "\n" not in event.reason and "  " not in event.reason
    assert event.reason.endswith("Recipient address rejected: User unknown in virtual mailbox "
                                 "table")


def test_a_delayed_report_is_a_temporary_deferral():
    [event] = parse_dsn(fixture("postfix-delayed.eml"))
    assert (event.type, event.severity) == ("deferred", "temporary")
    assert event.correlation_id == "7d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a"
    assert event.mta_response == "4.7.1 451 4.7.1 Greylisted, please try again later"
    # Only the original's headers came back (text/rfc822-headers): its Message-ID is kept.
    assert event.message_id == "<174287649811.4242.7@issuer.example>"


def test_one_report_for_several_recipients_gives_one_event_each():
    raw = fixture("exchange-online-group.eml")
    assert b"\r\n" in raw  # Exchange writes CRLF line ends
    events = parse_dsn(raw)
    assert [(e.recipient, e.type, e.severity) for e in events] == [
        ("alex@contoso.example", "bounced", "permanent"),
        ("megan@contoso.example", "deferred", "temporary"),  # mailbox full
        ("lee@partner.example", "delivered", None),
    ]
    assert {e.correlation_id for e in events} == {"9a8b7c6d5e4f30211203f4e5d6c7b8a9"}
    assert events[1].reason == ("554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:"
                                "QuotaExceededException.MapiExceptionShutoffQuotaExceeded")
    assert events[2].raw["action"] == "relayed" and events[2].reason is None
    assert len({e.event_id for e in events}) == 3


def test_the_time_is_the_last_attempt_else_the_report_date():
    [gmail] = parse_dsn(fixture("gmail-failed.eml"))  # Last-Attempt-Date, in -0700
    assert gmail.occurred_at == datetime(2025, 3, 26, 11, 27, 29, tzinfo=timezone.utc)
    [postfix] = parse_dsn(fixture("postfix-failed.eml"))  # no Last-Attempt-Date: the Date
    assert postfix.occurred_at == datetime(2025, 3, 24, 18, 6, 50, tzinfo=timezone.utc)


def test_a_report_without_any_date_happened_now():
    raw = make_dsn(to="x@issuer.example", groups=[
        {"Final-Recipient": "rfc822; a@b.example", "Action": "failed", "Status": "5.0.0"}])
    raw = raw.replace(b"Date: Thu, 27 Mar 2025 10:00:00 +0000\n", b"")
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    [event] = parse_dsn(raw, now=now)
    assert event.occurred_at == now


def test_the_same_report_gives_the_same_event_ids():
    raw = fixture("postfix-failed.eml")
    assert [e.event_id for e in parse_dsn(raw)] == [e.event_id for e in parse_dsn(raw)]
    # Without a Message-ID the report's bytes identify it.
    anonymous = raw.replace(b"Message-Id: <20250324180650.7FE851AC10D@mail.issuer.example>\n",
                            b"")
    assert anonymous != raw
    first, again = parse_dsn(anonymous), parse_dsn(anonymous)
    assert first[0].event_id == again[0].event_id != parse_dsn(raw)[0].event_id
    assert all(len(e.event_id) <= 255 for e in first)


def test_correlation_by_the_envelope_id_alone():
    raw = make_dsn(to="someone@issuer.example",
                   per_message={"Original-Envelope-Id": "ABCDEF0123456789ABCDEF0123456789"},
                   groups=[{"Final-Recipient": "rfc822; a@b.example", "Action": "failed",
                            "Status": "5.1.1"}])
    [event] = parse_dsn(raw)
    assert event.correlation_id == "abcdef0123456789abcdef0123456789"


def test_a_report_naming_no_delivery_of_ours_keeps_its_events_unmatched():
    [event] = parse_dsn(fixture("not-ours.eml"))
    assert event.correlation_id is None
    assert event.type == "bounced" and event.recipient == "reader@example.net"
    assert event.message_id == "<news-2025-03@issuer.example>"  # still matched by Message-ID
    assert event.reason.startswith("Host or domain name not found")  # X-Postfix type dropped


def test_raw_is_a_small_summary_never_the_message():
    for name in ("postfix-failed.eml", "gmail-failed.eml", "exchange-online-group.eml"):
        for event in parse_dsn(fixture(name)):
            assert set(event.raw) == {"action", "status", "diagnostic_code", "reporting_mta",
                                      "remote_mta", "final_recipient", "dsn_message_id"}
            assert len(json.dumps(event.raw)) < 1000
            assert "issued a credential" not in json.dumps(event.raw)


def test_unknown_actions_are_skipped():
    raw = make_dsn(to="x@issuer.example", groups=[
        {"Final-Recipient": "rfc822; a@b.example", "Action": "bogus", "Status": "2.0.0"},
        {"Final-Recipient": "rfc822; c@d.example", "Action": "Failed", "Status": "5.0.0"}])
    assert [e.recipient for e in parse_dsn(raw)] == ["c@d.example"]


@pytest.mark.parametrize("raw", [
    fixture("not-a-report-read-receipt.eml"),
    b"From: ada@example.co.uk\nSubject: thanks!\n\nGot my badge.\n",
    b"\x00\xff not mail at all",
    b"",
], ids=["read receipt", "a reply", "binary", "empty"])
def test_anything_that_is_not_a_bounce_report_is_none(raw):
    assert isinstance(parse_dsn(raw), NotABounce)


@pytest.mark.parametrize("raw, message", [
    (fixture("truncated.eml"), "recipient group 1 has no Action field: the report is cut short"),
    (b"Content-Type: multipart/report; report-type=delivery-status; boundary=X\n\nno parts",
     "the multipart/report has no parts"),
    (b"Content-Type: multipart/report; report-type=delivery-status; boundary=X\n\n--X\n"
     b"Content-Type: text/plain\n\nonly prose\n--X--\n",
     "the report has no message/delivery-status part"),
    (make_dsn(to="x@y.example", groups=[]), "the delivery-status part names no recipient"),
    (make_dsn(to="x@y.example", groups=[{"Action": "failed", "Status": "5.0.0"}]),
     "recipient group 1 has no Final-Recipient field"),
])
def test_a_report_that_cannot_be_read_is_refused_precisely(raw, message):
    with pytest.raises(MalformedReport, match=re.escape(message)):
        parse_dsn(raw)


# --- through the app: the CLI -------------------------------------------------------

@pytest.fixture
def sent(app, sink):
    """One credential email really sent through the sink: (recipient, delivery, caught)."""
    credential = create_credential("Analytical Engine Operator",
                                   [{"name": "Ada", "email": "ada@example.co.uk"}],
                                   state="published")
    recipient = credential.recipients[0]
    assert recipient.status == NOT_OPENED
    [caught] = sink.messages
    return recipient, recipient.deliveries[0], caught


def report_for(delivery: Delivery, fixture_name: str = "postfix-failed.eml") -> bytes:
    """A real-world fixture, retargeted at one of our deliveries."""
    raw = fixture(fixture_name)
    return raw.replace(b"3b9f1c0e6d2a4f8b9c7e5a1d2f4b6c8e", delivery.correlation_id.encode())


def test_ingest_a_file(app, sent, tmp_path):
    recipient, delivery, _ = sent
    path = tmp_path / "bounce.eml"
    path.write_bytes(report_for(delivery))
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "Recorded 1 events (0 seen before, 0 for no delivery of ours)" in result.output
    db.session.expire_all()
    assert db.session.get(Recipient, recipient.id).status == BOUNCED
    bounce = events_of(delivery.id)[-1]
    assert (bounce.type, bounce.severity) == ("bounced", "permanent")
    assert bounce.mta_response.startswith("5.1.1 550 5.1.1 <ada@example.co.uk>")


def test_ingest_from_standard_input_twice_stores_it_once(app, sent):
    recipient, delivery, _ = sent
    runner = app.test_cli_runner()
    raw = report_for(delivery)
    first = runner.invoke(args=["bounces", "ingest", "-"], input=raw)
    assert first.exit_code == 0, first.output
    db.session.expire_all()
    stored, updated = event_count(), db.session.get(Recipient, recipient.id).updated_at
    again = runner.invoke(args=["bounces", "ingest", "-"], input=raw)
    assert again.exit_code == 0, again.output
    assert "Recorded 0 events (1 seen before" in again.output
    db.session.expire_all()
    assert event_count() == stored
    assert db.session.get(Recipient, recipient.id).updated_at == updated
    assert db.session.get(Recipient, recipient.id).status == BOUNCED


@pytest.mark.parametrize("name, message", [
    ("not-a-report-read-receipt.eml",
     "a read receipt (RFC 8098), not a bounce report; nothing was recorded"),
    ("truncated.eml", "not a readable bounce report: recipient group 1 has no Action field"),
])
def test_ingest_refuses_what_is_not_a_readable_report(app, sent, name, message):
    recipient, _, _ = sent
    before = event_count()
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"],
                                          input=fixture(name))
    assert result.exit_code != 0
    assert message in result.output
    db.session.expire_all()
    assert event_count() == before
    assert db.session.get(Recipient, recipient.id).status == NOT_OPENED


def test_ingest_when_the_database_fails_exits_75_so_the_mta_tries_again(app, sent):
    recipient, delivery, _ = sent
    before = event_count()
    lost = OperationalError("COMMIT", {}, Exception("the database went away"))
    with mock.patch.object(db.session, "commit", side_effect=lost):
        result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"],
                                              input=report_for(delivery))
    assert result.exit_code == 75  # EX_TEMPFAIL: the MTA keeps the message and pipes it later
    assert "the database could not record the report, try again later" in result.output
    db.session.expire_all()
    assert event_count() == before
    # Piped again once the database is back, it is recorded.
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"],
                                          input=report_for(delivery))
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.get(Recipient, recipient.id).status == BOUNCED


def test_ingest_keeps_a_report_for_no_delivery_of_ours(app, sent):
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"],
                                          input=fixture("not-ours.eml"))
    assert result.exit_code == 0, result.output
    assert "1 for no delivery of ours" in result.output
    unmatched = db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.delivery_id.is_(None))).all()
    assert [e.type for e in unmatched] == ["bounced"]


# --- end to end: a real send, a report built for its envelope sender ---------------------

def test_a_failed_report_to_the_verp_address_bounces_the_recipient(app, sent):
    recipient, delivery, caught = sent
    assert caught.envelope_from == verp_address("credentials@issuer.example",
                                                delivery.correlation_id)
    # The report goes back to the envelope sender and returns the original as it was sent.
    report = make_dsn(to=caught.envelope_from, original=caught.data, groups=[{
        "Final-Recipient": "rfc822; ada@example.co.uk", "Action": "failed", "Status": "5.1.1",
        "Diagnostic-Code": "smtp; 550 5.1.1 <ada@example.co.uk>: no mailbox here",
        "Last-Attempt-Date": "Thu, 27 Mar 2025 10:00:00 +0000"}])
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"], input=report)
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.get(Recipient, recipient.id).status == BOUNCED
    timeline = [(e.type, e.mta_response) for e in events_of(delivery.id)]
    assert ("bounced", "5.1.1 550 5.1.1 <ada@example.co.uk>: no mailbox here") in timeline


def test_a_misspelt_action_still_says_failed():
    raw = make_dsn(to="x@y.example", groups=[
        {"Final-Recipient": "rfc822; ada@example.org", "Action": "failure", "Status": "5.1.1",
         "Diagnostic-Code": "smtp; 550 5.1.1 no such user"}])
    [event] = parse_dsn(raw)
    assert (event.recipient, event.type, event.reason_code) == (
        "ada@example.org", "bounced", "user_unknown")


def test_a_spam_complaint_about_our_email_is_a_complaint_on_its_delivery(app, sent):
    # An ARF report (RFC 5965) from a mailbox provider's feedback loop, returning our email.
    recipient, delivery, caught = sent
    report = b"\n".join([
        b"From: fbl@mailbox.example", b"To: credentials@issuer.example",
        b"Subject: Abuse report", b"Message-ID: <fbl-1@mailbox.example>", b"MIME-Version: 1.0",
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"', b"",
        b"--B", b"Content-Type: text/plain", b"", b"A complaint about a message from you.", b"",
        b"--B", b"Content-Type: message/feedback-report", b"", b"Feedback-Type: abuse",
        b"User-Agent: FBL/1.0", b"Version: 1", b"Original-Rcpt-To: ada@example.co.uk",
        b"Arrival-Date: Thu, 27 Mar 2025 10:00:00 +0000", b"",
        b"--B", b"Content-Type: message/rfc822", b"", caught.data.replace(b"\r\n", b"\n"),
        b"--B--", b""])
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"], input=report)
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    complaint = events_of(delivery.id)[-1]
    assert (complaint.type, complaint.reason_code) == ("complained", "spam")
    assert db.session.get(Recipient, recipient.id).status != BOUNCED


def test_a_forwarded_address_that_failed_bounces_the_address_we_sent_to(app, sent):
    # Ada's company forwards her mail; the mailbox it forwards to refused it. The report names
    # both: the Original-Recipient (ours) and the Final-Recipient it was rewritten to.
    recipient, delivery, caught = sent
    report = make_dsn(to=caught.envelope_from, original=caught.data, groups=[{
        "Original-Recipient": "rfc822; ada@example.co.uk",
        "Final-Recipient": "rfc822; ada.lovelace@mail.example.net", "Action": "failed",
        "Status": "5.7.26", "Diagnostic-Code": "smtp; 550 5.7.26 unauthenticated email is "
        "not accepted from this domain"}])
    [event] = parse_dsn(report)
    assert (event.recipient, event.raw["final_recipient"]) == (
        "ada@example.co.uk", "ada.lovelace@mail.example.net")
    assert app.test_cli_runner().invoke(args=["bounces", "ingest", "-"],
                                        input=report).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Recipient, recipient.id).status == BOUNCED
    assert [e.type for e in events_of(delivery.id)][-1] == "bounced"


def test_a_report_matched_only_by_our_header_in_the_original(app, sent):
    recipient, delivery, caught = sent
    report = make_dsn(to="credentials@issuer.example", original=caught.data, groups=[{
        "Final-Recipient": "rfc822; ada@example.co.uk", "Action": "failed",
        "Status": "5.1.1", "Diagnostic-Code": "smtp; 550 5.1.1 no such user"}])
    [event] = parse_dsn(report)
    assert event.correlation_id == delivery.correlation_id
    assert app.test_cli_runner().invoke(args=["bounces", "ingest", "-"],
                                        input=report).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Recipient, recipient.id).status == BOUNCED


def test_a_delayed_report_leaves_the_status_and_adds_a_deferral(app, sent):
    recipient, delivery, caught = sent
    report = make_dsn(to=caught.envelope_from, original=caught.data, groups=[{
        "Final-Recipient": "rfc822; ada@example.co.uk", "Action": "delayed", "Status": "4.4.1",
        "Diagnostic-Code": "smtp; 421 4.4.1 connection timed out",
        "Will-Retry-Until": "Mon, 31 Mar 2025 10:00:00 +0000"}])
    result = app.test_cli_runner().invoke(args=["bounces", "ingest", "-"], input=report)
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.get(Recipient, recipient.id).status == NOT_OPENED
    deferral = events_of(delivery.id)[-1]
    assert (deferral.type, deferral.severity) == ("deferred", "temporary")
    assert deferral.reason == "421 4.4.1 connection timed out"


# --- the event each report gives: its type, and a key of its own ----------------------------

@pytest.mark.parametrize("action, status", [
    ("delivered", "2.0.0"), ("relayed", "2.0.0"), ("expanded", "2.1.5"),
    ("Delivered (to the mailbox)", "2.0.0"), ("", "2.0.0")])
def test_a_success_report_is_a_delivery_not_a_queueing(action, status):
    group = {"Final-Recipient": "rfc822; ada@example.org", "Status": status}
    if action:
        group["Action"] = action
    [event] = parse_dsn(make_dsn(to="credentials@issuer.example", groups=[group]))
    assert (event.type, event.severity) == ("delivered", None)
    assert event.event_id.startswith("dsn:delivered:")


def _anonymous_delay(when: str, reply: str, envelope_id: str = "") -> bytes:
    """A delay report without a Message-ID (some MTAs write none)."""
    per_message = {"Arrival-Date": when}
    if envelope_id:
        per_message["Original-Envelope-Id"] = envelope_id
    return make_dsn(to="credentials@issuer.example", message_id=None,
                    per_message=per_message, groups=[{
                        "Final-Recipient": "rfc822; ada@example.co.uk", "Action": "delayed",
                        "Status": "4.4.1", "Diagnostic-Code": f"smtp; {reply}",
                        "Last-Attempt-Date": when}])


def test_two_reports_without_a_message_id_keep_keys_of_their_own():
    monday = _anonymous_delay("Mon, 24 Mar 2025 10:00:00 +0000", "421 4.4.1 timed out")
    tuesday = _anonymous_delay("Tue, 25 Mar 2025 10:00:00 +0000", "421 4.4.1 still timed out")
    [first], [second] = parse_dsn(monday), parse_dsn(tuesday)
    assert first.event_id != second.event_id
    assert parse_dsn(monday)[0].event_id == first.event_id  # the same report, the same key


def test_two_reports_without_a_message_id_are_both_stored_and_a_replay_is_not(app, sent):
    recipient, delivery, caught = sent
    reports = [_anonymous_delay(when, reply, delivery.correlation_id) for when, reply in (
        ("Mon, 24 Mar 2025 10:00:00 +0000", "421 4.4.1 timed out"),
        ("Tue, 25 Mar 2025 10:00:00 +0000", "421 4.4.1 still timed out"))]
    runner = app.test_cli_runner()
    for report in (*reports, reports[0]):
        result = runner.invoke(args=["bounces", "ingest", "-"], input=report)
        assert result.exit_code == 0, result.output
    db.session.expire_all()
    deferrals = [e.reason for e in events_of(delivery.id) if e.type == "deferred"]
    assert deferrals == ["421 4.4.1 timed out", "421 4.4.1 still timed out"]
    assert db.session.get(Recipient, recipient.id).status == NOT_OPENED
