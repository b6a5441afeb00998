"""Bounce mailboxes the worker reads: a Maildir, and a real Dovecot on loopback over IMAP (TLS
and STARTTLS) and POP3 (TLS and STLS). A report is removed only once its events are committed;
a message that is not a report, or cannot be read, is left unchanged and not read again; one
whose events fail to commit stays for the next poll; none of them stops the others."""
from __future__ import annotations

import logging
import re
import mailbox as stdlib_mailbox
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from helpdesk import hookimpl, maintenance
from helpdesk.auth import create_user
from helpdesk.credentials import create_credential
from helpdesk.ingest import MATCH_BY_ADDRESS_DAYS, record_events
from helpdesk.mailboxes import ImapMailbox, MailboxError, from_url
from helpdesk.maintenance import poll_bounces
from helpdesk.models import DeliveryEvent, Recipient, SkippedMessage, db, utcnow
from helpdesk.plugins import plugin_manager
from helpdesk.queue import huey_of
from helpdesk.status import BOUNCED, NOT_OPENED, SENDING
from helpdesk_smtp.bounces import parse_bounce

from conftest import AWS_ACCESS_KEY, AWS_SECRET_KEY, sign_in
from dovecot import DOVECOT, Dovecot
from fake_ses import FakeSes

PASSWORD = "a long mailbox password"
NOTHING = {"ingested": 0, "not_reports": 0, "unreadable": 0, "failed": 0}

# A person's answer to the credential email: not a bounce, and must be left for a person.
THANKS = (b"From: Ada Lovelace <ada@example.co.uk>\r\nTo: credentials@issuer.example\r\n"
          b"Subject: Re: Your credential\r\nDate: Thu, 27 Mar 2025 10:00:00 +0000\r\n"
          b"Message-ID: <thanks-1@example.co.uk>\r\n\r\nThank you so much, it is lovely!\r\n")
# A delivery status report cut off before its first part: it cannot be read.
CUT_SHORT = (b"From: MAILER-DAEMON\r\nTo: credentials@issuer.example\r\n"
             b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/report; report-type=delivery-status; "
             b'boundary="never-seen"\r\n\r\nThis is a MIME-encapsulated message.\r\n')


def report(caught, diagnostic: str = "550 5.1.1 <{to}>: Recipient address rejected: User "
           "unknown in virtual mailbox table") -> bytes:
    """The RFC 3464 report a receiving MTA sends back to a sent email's envelope sender, with
    the original returned whole."""
    to = caught.recipients[0]
    status = "\r\n".join([
        "Reporting-MTA: dns; mx.example.co.uk", "",
        f"Final-Recipient: rfc822; {to}", "Action: failed", "Status: 5.1.1",
        f"Diagnostic-Code: smtp; {diagnostic.format(to=to)}"])
    return "\r\n".join([
        f"To: {caught.envelope_from}", "From: Mail Delivery System <MAILER-DAEMON@mx.example>",
        "Subject: Undelivered Mail Returned to Sender",
        "Date: Thu, 27 Mar 2025 10:00:00 +0000", f"Message-ID: <{uuid.uuid4().hex}@mx.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BND"', "",
        "--BND", "Content-Type: text/plain", "", "Your message could not be delivered.", "",
        "--BND", "Content-Type: message/delivery-status", "", status, "",
        "--BND", "Content-Type: message/rfc822", "", ""]).encode() + \
        caught.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n--BND--\r\n"


def send_two(sink) -> tuple[list[Recipient], list[bytes]]:
    """Two credential emails really sent through the SMTP sink, and the report each one's
    receiving server sends back."""
    credential = create_credential("Analytical Engine Operator", [
        {"name": "Ada", "email": "ada@example.co.uk"},
        {"name": "Grace", "email": "grace@example.org"}], state="published")
    recipients = list(credential.recipients)
    assert [r.status for r in recipients] == [NOT_OPENED, NOT_OPENED]
    by_address = {m.recipients[0]: m for m in sink.messages}
    return recipients, [report(by_address[r.email]) for r in recipients]


def statuses(recipients) -> list[str]:
    db.session.expire_all()
    return [db.session.get(Recipient, r.id).status for r in recipients]


def skipped() -> set[str]:
    return set(db.session.scalars(select(SkippedMessage.key)))


# --- Dovecot --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dovecot():
    if not os.path.exists(DOVECOT):
        pytest.skip("Dovecot is not installed (Debian: dovecot-imapd dovecot-pop3d)")
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def account(dovecot, monkeypatch):
    """A mailbox of its own on the Dovecot, whose certificate this process trusts."""
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert))
    user, _ = dovecot.new_account()
    return user


def mailbox_app(app_factory, sink, dovecot, account, scheme: str, **settings):
    port = dovecot.ports[scheme]
    path = "/INBOX" if scheme.startswith("imap") else ""
    return app_factory(sink, BOUNCE_MAILBOX_URL=f"{scheme}://{account}@127.0.0.1:{port}{path}",
                       BOUNCE_MAILBOX_PASSWORD=dovecot.passwords[account], **settings)


def poll_once(app) -> dict[str, int]:
    """What one run of the worker's periodic task does."""
    [poll] = poll_bounces()
    assert poll.error is None, poll.error
    return poll.counts


@pytest.mark.parametrize("scheme", ["imaps", "imap", "pop3s", "pop3"],
                         ids=["IMAP over TLS", "IMAP with STARTTLS", "POP3 over TLS",
                              "POP3 with STLS"])
def test_reports_are_recorded_and_removed_and_the_rest_left_alone(
        app_factory, sink, dovecot, account, scheme, caplog):
    app = mailbox_app(app_factory, sink, dovecot, account, scheme)
    with app.app_context():
        recipients, (first, second) = send_two(sink)
        dovecot.deliver(account, first, THANKS, CUT_SHORT, second)

        with caplog.at_level(logging.WARNING, logger="helpdesk.maintenance"):
            assert poll_once(app) == {**NOTHING, "ingested": 2, "not_reports": 1,
                                      "unreadable": 1}
        assert statuses(recipients) == [BOUNCED, BOUNCED]
        left = dovecot.messages(account)
        assert [body for _, body in left] == [THANKS, CUT_SHORT]  # byte for byte
        if scheme.startswith("imap"):
            assert all(b"\\Seen" not in flags for flags, _ in left)  # still unread for a person
        assert "is not a bounce report (no delivery status, no words of failure); left there" \
            in caplog.text
        assert "is a report that cannot be read" in caplog.text
        assert dovecot.passwords[account] not in caplog.text

        # What was left is remembered: the next poll reads nothing again and logs nothing.
        caplog.clear()
        assert poll_once(app) == NOTHING
        assert caplog.text == ""
        assert len(skipped()) == 2
    # Every login went over TLS (Dovecot says "secured" for plain text on loopback): with
    # imap:// and pop3://, STARTTLS really took place.
    logins = [line for line in dovecot.log().splitlines()
              if f"user=<{account}>" in line and "-login: Info: Login:" in line]
    assert logins and all(", TLS," in line for line in logins)


def test_a_person_removing_what_was_left_is_forgotten(app_factory, sink, dovecot, account):
    app = mailbox_app(app_factory, sink, dovecot, account, "imaps")
    with app.app_context():
        dovecot.deliver(account, THANKS)
        assert poll_once(app)["not_reports"] == 1
        assert len(skipped()) == 1
        conn = dovecot.imap(account)
        conn.select("INBOX")
        conn.uid("STORE", "1:*", "+FLAGS", r"(\Deleted)")
        conn.expunge()
        conn.logout()
        assert poll_once(app) == NOTHING
        assert skipped() == set()


def test_imap_moves_reports_to_a_folder_when_asked(app_factory, sink, dovecot, account):
    app = mailbox_app(app_factory, sink, dovecot, account, "imap",
                      BOUNCE_MAILBOX_MOVE_TO="Bounces read")
    with app.app_context():
        recipients, reports = send_two(sink)
        dovecot.deliver(account, THANKS, *reports)
        assert poll_once(app) == {**NOTHING, "ingested": 2, "not_reports": 1}
        assert statuses(recipients) == [BOUNCED, BOUNCED]
        assert [body for _, body in dovecot.messages(account)] == [THANKS]
        assert [body for _, body in dovecot.messages(account, '"Bounces read"')] == reports


def test_a_server_without_move_or_uidplus_gets_copy_then_expunge(app_factory, sink, dovecot,
                                                                  account, monkeypatch):
    open_folder = ImapMailbox._open_folder

    def as_an_older_server(self):
        open_folder(self)
        self._capabilities -= {"MOVE", "UIDPLUS"}

    monkeypatch.setattr(ImapMailbox, "_open_folder", as_an_older_server)
    app = mailbox_app(app_factory, sink, dovecot, account, "imaps", BOUNCE_MAILBOX_MOVE_TO="Read")
    with app.app_context():
        recipients, reports = send_two(sink)
        dovecot.deliver(account, reports[0], THANKS, reports[1])
        assert poll_once(app) == {**NOTHING, "ingested": 2, "not_reports": 1}
        assert statuses(recipients) == [BOUNCED, BOUNCED]
    assert [body for _, body in dovecot.messages(account)] == [THANKS]
    assert [body for _, body in dovecot.messages(account, "Read")] == reports


def test_a_message_pop3_cannot_hand_over_is_left_and_the_next_poll_goes_on(
        app_factory, sink, dovecot, account, caplog):
    # poplib refuses lines over 2048 bytes; RFC 5322 allows 998, but real mail breaks rules.
    long_line = THANKS.replace(b"lovely!", b"lovely" + b"!" * 3000)
    app = mailbox_app(app_factory, sink, dovecot, account, "pop3s")
    with app.app_context():
        recipients, reports = send_two(sink)
        dovecot.deliver(account, reports[0], long_line, reports[1])
        with caplog.at_level(logging.WARNING, logger="helpdesk.maintenance"):
            assert poll_once(app) == {**NOTHING, "ingested": 1, "unreadable": 1}
        assert "cannot be read (the server's copy cannot be read: line too long)" in caplog.text
        # The session was given up mid-message without QUIT, so the first report is still
        # there too: read again, it is stored once.
        assert poll_once(app) == {**NOTHING, "ingested": 2}
        assert statuses(recipients) == [BOUNCED, BOUNCED]
        assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
            DeliveryEvent.type == "bounced")) == 2
    assert [body for _, body in dovecot.messages(account)] == [long_line]


def test_a_report_whose_events_fail_to_commit_stays_for_the_next_poll(
        app_factory, sink, dovecot, account, caplog):
    app = mailbox_app(app_factory, sink, dovecot, account, "imaps")
    with app.app_context():
        recipients, (doomed, fine) = send_two(sink)
        dovecot.deliver(account, doomed, fine)

        record_events = maintenance.record_events
        lost = OperationalError("COMMIT", {}, Exception("the database went away"))

        def commit_fails_for_ada(events, **options):
            events = list(events)
            if any(e.recipient == "ada@example.co.uk" for e in events):
                with mock.patch.object(db.session, "commit", side_effect=lost):
                    return record_events(events, **options)
            return record_events(events, **options)

        with mock.patch.object(maintenance, "record_events", commit_fails_for_ada), \
                caplog.at_level(logging.ERROR, logger="helpdesk.maintenance"):
            assert poll_once(app) == {**NOTHING, "ingested": 1, "failed": 1}
        assert statuses(recipients) == [NOT_OPENED, BOUNCED]
        assert db.session.scalar(select(DeliveryEvent).where(
            DeliveryEvent.type == "bounced",
            DeliveryEvent.delivery_id == recipients[0].deliveries[0].id)) is None
        assert [body for _, body in dovecot.messages(account)] == [doomed]
        assert "could not be recorded; left there for the next poll" in caplog.text
        assert skipped() == set()  # not remembered: it is read again

        assert poll_once(app) == {**NOTHING, "ingested": 1}
        assert statuses(recipients) == [BOUNCED, BOUNCED]
        assert dovecot.messages(account) == []


def test_a_wrong_password_is_a_clear_error_without_the_password(
        app_factory, sink, dovecot, account, caplog):
    app = app_factory(sink, BOUNCE_MAILBOX_URL=f"imaps://{account}@127.0.0.1:"
                      f"{dovecot.ports['imaps']}/INBOX",
                      BOUNCE_MAILBOX_PASSWORD="not the password")
    with app.app_context(), caplog.at_level(logging.ERROR, logger="helpdesk.maintenance"):
        [poll] = poll_bounces()
    assert poll.error.endswith("LOGIN: [AUTHENTICATIONFAILED] Authentication failed.")
    assert poll.mailbox == f"imaps://{account}@127.0.0.1:{dovecot.ports['imaps']}/INBOX"
    assert "cannot read the bounce mailbox" in caplog.text
    assert "not the password" not in caplog.text


def test_a_certificate_that_is_not_trusted_is_refused(app_factory, sink, dovecot, account,
                                                      monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    app = mailbox_app(app_factory, sink, dovecot, account, "imaps")
    with app.app_context():
        [poll] = poll_bounces()
    assert "CERTIFICATE_VERIFY_FAILED" in poll.error


def test_bounces_poll_on_the_command_line(app_factory, sink, dovecot, account):
    app = mailbox_app(app_factory, sink, dovecot, account, "pop3s")
    with app.app_context():
        _, reports = send_two(sink)
    dovecot.deliver(account, reports[0], THANKS)
    result = app.test_cli_runner().invoke(args=["bounces", "poll"])
    assert result.exit_code == 0, result.output
    assert result.output == (f"pop3s://{account}@127.0.0.1:{dovecot.ports['pop3s']}: 1 reports "
                             "recorded and removed, 1 not reports and 0 unreadable left there, "
                             "0 failed (tried again next time)\n")


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize("url, password, move_to, message", [
    ("imaps://bounces:secret@mail.example/INBOX", PASSWORD, None,
     "holds a password: put it in BOUNCE_MAILBOX_PASSWORD"),
    ("https://mail.example/", PASSWORD, None, "must start with imaps, imap, pop3s, pop3://"),
    ("imaps://mail.example/INBOX", PASSWORD, None, "needs a user and a host"),
    ("imaps://bounces@mail.example:99999/INBOX", PASSWORD, None, "bad port"),
    ("imaps://bounces@mail.example/INBOX", None, None, "BOUNCE_MAILBOX_PASSWORD is not set"),
    ("pop3s://bounces@mail.example/INBOX", PASSWORD, None, "a POP3 mailbox has no folders"),
    ("pop3s://bounces@mail.example", PASSWORD, "Done", "POP3 cannot move messages"),
    ("imaps://bounces@mail.example/Bo%C3%AEte", PASSWORD, None, "letters outside ASCII"),
])
def test_bad_mailbox_settings_are_refused_precisely(url, password, move_to, message):
    with pytest.raises(MailboxError, match=message):
        from_url(url, password, move_to)


def test_a_mailbox_url_names_its_server_user_and_folder():
    box = from_url("imaps://bounces%40issuer.example@mail.example/Bounce%20reports", PASSWORD)
    assert (box.host, box.port, box.username, box.folder) == (
        "mail.example", 993, "bounces@issuer.example", "Bounce reports")
    assert PASSWORD not in box.name
    assert from_url("imap://b@mail.example", PASSWORD).port == 143
    assert from_url("pop3://b@mail.example", PASSWORD).port == 110
    assert from_url("pop3s://b@mail.example:1995", PASSWORD).port == 1995


def test_the_admin_settings_page_shows_the_mailbox_and_masks_its_password(app_factory):
    url = "imaps://bounces%40issuer.example@mail.example/INBOX"
    app = app_factory(BOUNCE_MAILBOX_URL=url, BOUNCE_MAILBOX_PASSWORD=PASSWORD,
                      BOUNCE_MAILBOX_MOVE_TO="Read")
    with app.app_context():
        client = app.test_client()
        sign_in(client, create_user("admin@issuer.example", "correct horse battery", "admin"))
        html = client.get("/admin/settings").get_data(as_text=True)
    assert PASSWORD not in html
    rows = dict(re.findall(r'<tr data-setting="([A-Z0-9_]+)">(.*?)</tr>', html, re.S))
    assert "(set)" in rows["BOUNCE_MAILBOX_PASSWORD"]
    assert url in rows["BOUNCE_MAILBOX_URL"] and "Read" in rows["BOUNCE_MAILBOX_MOVE_TO"]


def test_no_bounce_mailbox_configured_polls_nothing(app):
    assert poll_bounces() == []
    result = app.test_cli_runner().invoke(args=["bounces", "poll"])
    assert result.exit_code != 0 and "no bounce mailbox is configured" in result.output


# --- the Maildir ------------------------------------------------------------------------------

def test_the_worker_reads_the_bounce_maildir(app_factory, sink, tmp_path: Path):
    box_path = tmp_path / "bounces"
    box = stdlib_mailbox.Maildir(box_path, create=True)
    app = app_factory(sink, BOUNCE_MAILDIR=str(box_path))
    with app.app_context():
        credential = create_credential("Badge", [{"name": "Ada", "email": "ada@example.co.uk"}],
                                       state="published")
        recipients = list(credential.recipients)
        first = report(sink.messages[0])
        keys = {"report": box.add(first), "thanks": box.add(THANKS), "cut": box.add(CUT_SHORT)}
        assert poll_once(app) == {**NOTHING, "ingested": 1, "not_reports": 1, "unreadable": 1}
        assert statuses(recipients) == [BOUNCED]

        box = stdlib_mailbox.Maildir(box_path, create=False)
        assert box.get_message(keys["report"]).get_subdir() == "cur"
        assert "S" in box.get_message(keys["report"]).get_flags()
        assert box.get_bytes(keys["report"]) == first  # moved, not rewritten
        assert sorted(os.listdir(box_path / "new")) == sorted([keys["thanks"], keys["cut"]])
        # What was left stays in new/ for a person, and is not read again.
        assert poll_once(app) == NOTHING
        assert skipped() == {keys["thanks"], keys["cut"]}


AUTO_REPLY = (b"From: Ada Lovelace <ada@example.co.uk>\r\nTo: credentials@issuer.example\r\n"
              b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
              b"Message-ID: <away-1@example.co.uk>\r\n\r\nI am away until Monday.\r\n")


class ReaderWithAFault:
    """A bounce reader that fails on one message, as a reader's bug would."""

    @hookimpl(tryfirst=True)
    def helpdesk_parse_bounce(self, raw_message):
        if b"Subject: Out of office" in raw_message:
            raise RuntimeError("the reader tripped over this one")
        return None  # the others go on to the SMTP plugin's reader


def test_the_log_says_what_each_message_left_was(app_factory, sink, tmp_path, caplog):
    box = stdlib_mailbox.Maildir(tmp_path / "bounces", create=True)
    app = app_factory(sink, BOUNCE_MAILDIR=str(tmp_path / "bounces"))
    with app.app_context(), caplog.at_level(logging.WARNING, logger="helpdesk.maintenance"):
        keys = {"away": box.add(AUTO_REPLY), "thanks": box.add(THANKS)}
        assert poll_once(app) == {**NOTHING, "not_reports": 2}
    lines = {name: next(line for line in caplog.messages if key in line)
             for name, key in keys.items()}
    assert "is an auto-reply (RFC 3834: out of office, vacation), not a bounce report; left " \
        "there" in lines["away"]
    assert "is not a bounce report (no delivery status, no words of failure); left there" in \
        lines["thanks"]


def test_a_message_the_reader_fails_on_is_logged_left_and_not_lost(app_factory, sink, tmp_path,
                                                                  caplog):
    box_path = tmp_path / "bounces"
    box = stdlib_mailbox.Maildir(box_path, create=True)
    app = app_factory(sink, BOUNCE_MAILDIR=str(box_path))
    plugin_manager(app).register(ReaderWithAFault(), name="reader-with-a-fault")
    with app.app_context():
        recipients, reports = send_two(sink)
        keys = [box.add(reports[0]), box.add(AUTO_REPLY), box.add(reports[1])]
        with caplog.at_level(logging.WARNING, logger="helpdesk.maintenance"):
            assert poll_once(app) == {**NOTHING, "ingested": 2, "unreadable": 1}
        assert statuses(recipients) == [BOUNCED, BOUNCED]  # the messages after it were read
        [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert keys[1] in failure.getMessage() and "failed" in failure.getMessage()
        assert "the reader tripped over this one" in failure.exc_text  # with its traceback
        assert f"message {keys[1]} in the bounce mailbox maildir:{box_path} could not be read " \
            "by the bounce reader (its error is logged above); left there" in caplog.text
        # Left byte for byte for a person, and not read (nor logged) again while it stays.
        assert os.listdir(box_path / "new") == [keys[1]]
        assert (box_path / "new" / keys[1]).read_bytes() == AUTO_REPLY
        caplog.clear()
        assert poll_once(app) == NOTHING
        assert caplog.text == ""
        assert skipped() == {keys[1]}


# --- matching back what the mailbox brings, whichever provider sent -------------------------

SAMPLES = Path(__file__).parent / "data" / "bounces" / "messages" / "sisimai"


def ses_notice(address: str, message_id: str) -> bytes:
    """A real Amazon SES bounce notification by email (an SNS email subscription) about one of
    our addresses and SES's id of the message."""
    raw = (SAMPLES / "lhost-amazonses-09.eml").read_bytes()
    return raw.replace(b"bounce@simulator.amazonses.com", address.encode()).replace(
        b"01010157e48f9b9b-891e9a0e-9c9d-4773-9bfe-608f2ef4756d-000000", message_id.encode())


def qmail_failure(address: str) -> bytes:
    """A plain-text bounce to our plain sender address that quotes nothing of ours: only the
    address can match it."""
    return (f"From: MAILER-DAEMON@mx.example\nTo: credentials@issuer.example\n"
            f"Subject: failure notice\nMessage-ID: <{uuid.uuid4().hex}@mx.example>\n\n"
            f"Hi. This is the qmail-send program at mx.example.\nI'm afraid I wasn't able to "
            f"deliver your message to the following addresses.\nThis is a permanent error; "
            f"I've given up. Sorry it didn't work out.\n\n<{address}>:\nRemote host said: "
            f"550 5.1.1 no such user\n").encode()


@pytest.fixture
def ses_api():
    with FakeSes(AWS_ACCESS_KEY, AWS_SECRET_KEY) as api:
        yield api


def on_ses(app_factory, sink, api: FakeSes, **settings):
    """An app that sends through Amazon SES (the local fake of its API)."""
    return app_factory(sink, PROVIDER="ses", SES_REGION="us-east-1", SES_ENDPOINT_URL=api.url,
                       SES_CONFIGURATION_SET="helpdesk", SEND_TIMEOUT=5, **settings)


def bounced_delivery_ids() -> list[int]:
    return sorted(db.session.scalars(select(DeliveryEvent.delivery_id).where(
        DeliveryEvent.type == "bounced", DeliveryEvent.delivery_id.is_not(None))))


def test_notices_in_the_mailbox_match_any_providers_latest_delivery(app_factory, sink, ses_api,
                                                                    tmp_path):
    box = stdlib_mailbox.Maildir(tmp_path / "bounces", create=True)
    app = on_ses(app_factory, sink, ses_api, BOUNCE_MAILDIR=str(tmp_path / "bounces"))
    with app.app_context():
        by_ses = create_credential("Badge", [
            {"name": "Ada", "email": "ada@example.co.uk"},
            {"name": "Grace", "email": "grace@example.org"},
            {"name": "Alan", "email": "alan@example.net"}], state="published")
        ada, grace, alan = by_ses.recipients
        assert {d.provider for r in by_ses.recipients for d in r.deliveries} == {"ses"}
        # Later, the desk switched to its own SMTP server and sent Ada and Alan another one.
        app.config["PROVIDER"] = "smtp"
        by_smtp = create_credential("Course", [{"name": "Ada", "email": "ada@example.co.uk"},
                                               {"name": "Alan", "email": "alan@example.net"}],
                                    state="published")
        ada_again, alan_again = by_smtp.recipients
        assert {d.provider for r in by_smtp.recipients for d in r.deliveries} == {"smtp"}

        # SES's notice names its own id of the message: the first email, not Ada's latest.
        box.add(ses_notice(ada.email, ada.deliveries[0].provider_message_id))
        box.add(qmail_failure("Grace@Example.org"))  # the address alone
        box.add(qmail_failure("alan@example.net"))  # the address alone, sent twice
        assert poll_once(app) == {**NOTHING, "ingested": 3}
        # (SES reports deliveries: an email it took is still "sending" until it says so.)
        assert statuses([ada, grace, alan]) == [BOUNCED, BOUNCED, SENDING]
        assert statuses([ada_again, alan_again]) == [NOT_OPENED, BOUNCED]
        # Alan's bounce went to his latest delivery, the SMTP one, not the SES one before it.
        assert bounced_delivery_ids() == sorted(
            [ada.deliveries[0].id, grace.deliveries[0].id, alan_again.deliveries[0].id])


def test_the_any_provider_match_is_for_returned_messages_only(app_factory, sink, ses_api):
    app = on_ses(app_factory, sink, ses_api)
    with app.app_context():
        [ada] = create_credential("Badge", [{"name": "Ada", "email": "ada@example.co.uk"}],
                                  state="published").recipients
        # An SMTP event that names SES's delivery only by its address, not from a mailbox (a
        # send answer, a webhook): it applies to no delivery of another provider.
        [event] = parse_bounce(qmail_failure(ada.email))
        assert record_events([event]).unmatched == 1
        assert statuses([ada]) == [SENDING]
        assert maintenance.ingest_bounce(qmail_failure(ada.email)).unmatched == 0
        assert statuses([ada]) == [BOUNCED]


def test_the_mailbox_matches_by_address_only_within_the_window(app_factory, sink, ses_api,
                                                                tmp_path):
    box = stdlib_mailbox.Maildir(tmp_path / "bounces", create=True)
    app = on_ses(app_factory, sink, ses_api, BOUNCE_MAILDIR=str(tmp_path / "bounces"))
    with app.app_context():
        [ada] = create_credential("Badge", [{"name": "Ada", "email": "ada@example.co.uk"}],
                                  state="published").recipients
        ada.deliveries[0].created_at = utcnow() - timedelta(days=MATCH_BY_ADDRESS_DAYS + 1)
        db.session.commit()
        box.add(qmail_failure(ada.email))
        assert poll_once(app) == {**NOTHING, "ingested": 1}
        assert statuses([ada]) == [SENDING]
        assert bounced_delivery_ids() == []


def test_a_directory_that_is_not_a_maildir_is_a_clear_error(app_factory, sink, tmp_path):
    app = app_factory(sink, BOUNCE_MAILDIR=str(tmp_path))
    with app.app_context():
        [poll] = poll_bounces()
    assert poll.error == f"{tmp_path} is not a Maildir (it needs new/ and cur/)"


def test_the_worker_reads_the_mailboxes_every_minute(app_factory, sink, tmp_path):
    box = stdlib_mailbox.Maildir(tmp_path / "bounces", create=True)
    app = app_factory(sink, BOUNCE_MAILDIR=str(tmp_path / "bounces"))
    for minute in (0, 1, 33):
        due = huey_of(app).read_periodic(datetime(2026, 1, 5, 9, minute))
        assert "poll_bounces" in {task.name for task in due}
    with app.app_context():
        recipients, reports = send_two(sink)
        box.add(reports[1])
    app.extensions["helpdesk_tasks"].poll_bounces()  # the queue runs it in-line in the tests
    with app.app_context():
        assert statuses(recipients) == [NOT_OPENED, BOUNCED]
