"""The SMTP provider against a real SMTP server on loopback (the embedded aiosmtpd sink):
accepted, refused for good (550), refused for now (451) and retried for days then expired, one
connection per batch, STARTTLS and AUTH, a server that is down, header injection, and the
tracking pixel."""
from __future__ import annotations

import email.policy
import re
import ssl
import time
from datetime import datetime, timedelta, timezone
from email.generator import Generator
from unittest import mock
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings, strategies as st
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from helpdesk.causes import DeliveryFacts, EventFacts, diagnose
from helpdesk.credentials import create_credential
from helpdesk.contract import CORRELATION_HEADER, Message
from helpdesk.models import Delivery, DeliveryEvent, Recipient, db, utcnow
from helpdesk.sending import header_safe, retry_delay
from helpdesk.sending import send_batch as send_now
from helpdesk.queue import huey_of
from helpdesk.sink import SmtpSink, free_port
from helpdesk.status import BOUNCED, NOT_OPENED, NOT_SENT, OPENED, SENDING
from helpdesk.views.tracking import PIXEL
import helpdesk_smtp
from helpdesk_smtp import build_email, verp_address

from certificates import self_signed

SENDER = "credentials@issuer.example"


def send_batch(delivery_ids):
    """Run a queued send as Huey's scheduler does: once it is due (a retry waits its delay)."""
    db.session.rollback()
    waiting = db.session.scalars(select(Delivery.send_due_at).where(
        Delivery.id.in_(delivery_ids), Delivery.sent_at.is_(None))).all()
    due = max((d for d in waiting if d is not None), default=None)
    if due is not None:
        time.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()))
    return send_now(delivery_ids)


def publish(*people: tuple[str, str], title: str = "Analytical Engine Operator") -> list[Recipient]:
    credential = create_credential(title, [{"name": n, "email": e} for n, e in people],
                                   state="published")
    return list(credential.recipients)


def fresh(recipient: Recipient) -> Recipient:
    db.session.expire_all()
    return db.session.get(Recipient, recipient.id)


def timeline(delivery_id: int) -> list[DeliveryEvent]:
    return db.session.scalars(select(DeliveryEvent).where(DeliveryEvent.delivery_id ==
                                                          delivery_id)
                              .order_by(DeliveryEvent.id)).all()


def test_an_accepted_email_is_not_opened_and_carries_its_delivery(app, sink):
    [recipient] = publish(("Ada Lovelace", "ada@example.co.uk"))
    assert fresh(recipient).status == NOT_OPENED
    delivery = recipient.deliveries[0]
    [caught] = sink.messages
    assert caught.recipients == ["ada@example.co.uk"]
    assert caught.envelope_from == verp_address(SENDER, delivery.correlation_id)
    assert caught.email["X-Helpdesk-Delivery"] == delivery.correlation_id
    assert caught.email["To"] == "Ada Lovelace <ada@example.co.uk>"
    assert caught.subject == "Your credential: Analytical Engine Operator"
    assert delivery.provider_message_id == caught.email["Message-ID"]
    assert [e.type for e in timeline(delivery.id)] == ["queued", "accepted"]


def test_a_550_is_a_bounce_with_the_server_reply_kept(app, sink):
    [recipient] = publish(("Typo", "someone@gmial.com"))
    assert fresh(recipient).status == BOUNCED
    assert sink.messages == []
    bounce = timeline(recipient.deliveries[0].id)[-1]
    assert bounce.type == "bounced"
    assert bounce.reason == ("550 5.1.1 <someone@gmial.com>: Recipient address rejected: "
                             "no such domain")


def due_in(delivery_id: int) -> float:
    """Seconds until the delivery's retry is due, by the real clock the queue uses."""
    db.session.expire_all()
    return (db.session.get(Delivery, delivery_id).send_due_at - utcnow()).total_seconds()


def test_a_451_is_retried_for_days_then_expires_as_a_soft_failure(app_factory, sink):
    app = app_factory(sink, SEND_RETRY_DELAY=1000, SEND_RETRY_MAX_DELAY=3600)
    window = timedelta(hours=120)
    assert app.config["SEND_RETRY_WINDOW_HOURS"] == 120  # the default: five days
    with app.app_context():
        [recipient] = publish(("Grey", "grace@greylist.example"))
        delivery_id = recipient.deliveries[0].id
        assert fresh(recipient).status == SENDING
        # In immediate mode the retry is scheduled, not run: it waits in Huey's schedule.
        assert len(huey_of().scheduled()) == 1
        first = timeline(delivery_id)[-1].occurred_at
        assert due_in(delivery_id) == pytest.approx(1000, abs=5)
        # Each retry waits twice as long, at most SEND_RETRY_MAX_DELAY, and the last one falls
        # on the window's end.
        for later, wait in ((timedelta(hours=1), 2000), (timedelta(days=2), 3600),
                            (window - timedelta(seconds=1), 1)):
            assert send_now([delivery_id], now=first + later) == {"deferred": 1}
            assert fresh(recipient).status == SENDING
            assert due_in(delivery_id) == pytest.approx(wait, abs=5)
        assert send_now([delivery_id], now=first + window) == {"expired": 1}
        assert fresh(recipient).status == NOT_SENT  # the address is not blamed: not bounced
        events = timeline(delivery_id)
        deferrals = [e for e in events if e.type == "deferred"]
        assert len(deferrals) == 4
        assert all((e.severity, e.reason_code) == ("temporary", "temporary")
                   and e.reason.startswith("451 4.7.1") for e in deferrals)
        expired = events[-1]
        assert (expired.type, expired.severity, expired.reason_code) == \
            ("expired", "temporary", "expired")
        assert expired.reason == ("gave up after 5 days of temporary refusals; the last: 451 "
                                  "4.7.1 <grace@greylist.example>: Greylisted, try again later")
        assert expired.mta_response.startswith("451 4.7.1")
        cause = diagnose(email="grace@greylist.example", email_error=None, published=True,
                         deliveries=[DeliveryFacts("grace@greylist.example",
                                                   tuple(map(EventFacts.of, events)))])
        assert (cause.cause, cause.evidence) == ("gave_up", expired.reason)
        assert db.session.get(Delivery, delivery_id).attempts == 5
        # A delivery with its final answer is never sent again.
        assert send_now([delivery_id], now=first + window * 2) == {"skipped": 1}
    assert sink.messages == []


@pytest.mark.parametrize("attempts, delay", [(1, 30), (2, 60), (7, 1920), (8, 3600),
                                             (10_000, 3600)])
def test_the_retry_delay_doubles_up_to_its_cap(attempts, delay):
    assert retry_delay(attempts, first=30, longest=3600) == delay


def test_a_deferral_that_clears_is_delivered(app, sink):
    [recipient] = publish(("Grey", "grace@greylist.example"))
    delivery = recipient.deliveries[0]
    sink.defer_domains.clear()  # the greylisting period is over
    assert send_batch([delivery.id]) == {"accepted": 1}
    assert fresh(recipient).status == NOT_OPENED
    assert [m.recipients for m in sink.messages] == [["grace@greylist.example"]]


def test_one_connection_serves_a_whole_batch(app, sink):
    people = [(f"Person {i}", f"person{i}@example.org") for i in range(6)]
    recipients = publish(*people)
    assert {fresh(r).status for r in recipients} == {NOT_OPENED}
    assert len(sink.messages) == 6
    assert sink.connections == 1


class RefusesTheSender:
    """An SMTP server that will not take mail from our envelope sender."""

    def __init__(self, reply: str):
        self.reply = reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return self.reply


@pytest.mark.parametrize("reply", [
    "553 5.7.1 <credentials@issuer.example>: Sender address rejected: not owned by user",
    "451 4.3.0 Sender throttled, try again later",
], ids=["for good", "for now"])
def test_a_refused_sender_is_not_sent_never_bounced(app_factory, reply):
    server = Controller(RefusesTheSender(reply), hostname="127.0.0.1", port=free_port())
    server.start()
    try:
        app = app_factory(SMTP_HOST=server.hostname, SMTP_PORT=server.port,
                          SEND_RETRY_WINDOW_HOURS=0)  # a refusal for now is given up at once
        with app.app_context():
            [recipient] = publish(("Ada", "ada@example.co.uk"))
            assert fresh(recipient).status == NOT_SENT
            assert timeline(recipient.deliveries[0].id)[-1].mta_response == reply
    finally:
        server.stop()


# --- STARTTLS and AUTH ---------------------------------------------------------------------

@pytest.fixture
def certificate(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1, trusted by this process's TLS clients only
    (through OpenSSL's SSL_CERT_FILE), so that the provider verifies it for real."""
    cert_file, key_file = self_signed(tmp_path, "sink")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def secure_sink(certificate):
    with SmtpSink(tls_context=certificate, logins={"relay": "right password"}) as sink:
        yield sink


def test_starttls_and_login(app_factory, secure_sink):
    app = app_factory(secure_sink, SMTP_STARTTLS=True, SMTP_USERNAME="relay",
                      SMTP_PASSWORD="right password")
    with app.app_context():
        recipients = publish(("Ada", "ada@example.co.uk"), ("Grace", "grace@example.org"))
        assert {fresh(r).status for r in recipients} == {NOT_OPENED}
    assert len(secure_sink.messages) == 2
    assert secure_sink.connections == 1  # EHLO again after STARTTLS is the same connection


def test_a_wrong_password_is_not_sent_with_the_reason(app_factory, secure_sink):
    app = app_factory(secure_sink, SMTP_STARTTLS=True, SMTP_USERNAME="relay",
                      SMTP_PASSWORD="wrong password")
    with app.app_context():
        [recipient] = publish(("Ada", "ada@example.co.uk"))
        assert fresh(recipient).status == NOT_SENT
        refusal = timeline(recipient.deliveries[0].id)[-1]
    assert refusal.type == "refused"
    assert refusal.reason.startswith("the SMTP server refused our login: 535 5.7.8")
    assert "wrong password" not in refusal.reason
    assert secure_sink.messages == []


def test_mail_without_the_starttls_the_server_requires_is_not_sent(app_factory, secure_sink):
    app = app_factory(secure_sink, SMTP_STARTTLS=False)
    with app.app_context():
        [recipient] = publish(("Ada", "ada@example.co.uk"))
        assert fresh(recipient).status == NOT_SENT
        refusal = timeline(recipient.deliveries[0].id)[-1]
    assert refusal.reason == "530 Must issue a STARTTLS command first"


def test_starttls_asked_of_a_server_without_it_is_not_sent(app_factory, sink):
    app = app_factory(sink, SMTP_STARTTLS=True)
    with app.app_context():
        [recipient] = publish(("Ada", "ada@example.co.uk"))
        assert fresh(recipient).status == NOT_SENT
        refusal = timeline(recipient.deliveries[0].id)[-1]
    assert "does not offer what SMTP_STARTTLS / SMTP_USERNAME ask for" in refusal.reason
    assert "STARTTLS extension not supported" in refusal.reason


# --- a server that is down --------------------------------------------------------------

def test_a_server_that_is_down_defers_and_the_send_completes_when_it_is_back(app_factory):
    sink = SmtpSink(port=free_port())  # not started yet
    app = app_factory(sink)
    try:
        with app.app_context():
            [recipient] = publish(("Ada", "ada@example.co.uk"))
            delivery_id = recipient.deliveries[0].id
            assert fresh(recipient).status == SENDING
            deferral = timeline(delivery_id)[-1]
            assert deferral.type == "deferred"
            assert deferral.reason.startswith(
                f"cannot reach the SMTP server {sink.host}:{sink.port}")
            sink.start()
            assert send_batch([delivery_id]) == {"accepted": 1}
            assert fresh(recipient).status == NOT_OPENED
            assert [m.recipients for m in sink.messages] == [["ada@example.co.uk"]]
    finally:
        sink.stop()


# --- header injection ---------------------------------------------------------------------

def test_cr_lf_in_a_name_or_title_never_reaches_a_header(app, sink):
    [recipient] = publish(("Eve\r\nBcc: victim@evil.example", "eve@example.org"),
                          title="Badge\r\nX-Injected: yes\nCc: other@evil.example")
    assert fresh(recipient).status == NOT_OPENED
    [caught] = sink.messages
    assert caught.recipients == ["eve@example.org"]
    head = caught.data.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")
             if line and not line[:1].isspace()]
    assert not {b"bcc", b"cc", b"x-injected"} & set(names)
    assert caught.email["To"].addresses[0].addr_spec == "eve@example.org"
    assert caught.email["To"].addresses[0].display_name == "Eve Bcc: victim@evil.example"
    assert caught.subject == "Your credential: Badge X-Injected: yes Cc: other@evil.example"


# Words of headers as they come: quotes, commas, Unicode, long words, encoded-word look-alikes.
WORDS = st.lists(st.sampled_from(["Ada", "O'Neil", '"Jr."', "Müller,", "Zoë", "=?utf-8?q?x?=",
                                  "Data-Protection-Practitioner-" * 3, "日本語", "—", "(x)"])
                 | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
                 max_size=25).map(" ".join)


@given(name=WORDS, subject=WORDS, text=WORDS, local=st.sampled_from(["ada", "jö", "o'neil"]),
       domain=st.sampled_from(["example.org", "bücher.example"]))
@settings(max_examples=80, deadline=None)
def test_reusing_header_classes_changes_no_byte_of_a_message(name, subject, text, local,
                                                             domain):
    """The provider's policy (each header's class made once) writes exactly what the standard
    modern policy writes."""
    message = Message(correlation_id="c-1", sender=SENDER, to=f"{local}@{domain}",
                      to_name=header_safe(name), subject=header_safe(subject), text=text,
                      html=f"<p>{text}</p>", headers={CORRELATION_HEADER: "c-1"})

    def written(policy) -> bytes:
        with mock.patch.object(helpdesk_smtp, "make_msgid", lambda domain: "<1@x>"), \
                mock.patch.object(Generator, "_make_boundary", classmethod(lambda c, t: "b")):
            built = build_email(message, "Issuer, Ltd.", policy=policy)
            # as smtplib writes it: with the message's own policy
            return built.as_bytes(policy=built.policy.clone(utf8=True, linesep="\r\n"))

    assert written(helpdesk_smtp.POLICY) == written(email.policy.default)


# --- the tracking pixel ---------------------------------------------------------------------

def pixel_path(caught) -> str:
    url = re.search(r'<img src="([^"]+)"', caught.html).group(1)
    return urlsplit(url).path


def test_the_pixel_records_one_open(app, sink, client):
    [recipient] = publish(("Ada", "ada@example.co.uk"))
    path = pixel_path(sink.messages[0])
    for _ in range(2):  # a mail app that loads the image twice
        response = client.get(path)
        assert response.status_code == 200
        assert response.mimetype == "image/gif" and response.data == PIXEL
    assert fresh(recipient).status == OPENED
    opens = [e for e in timeline(recipient.deliveries[0].id) if e.type == "opened"]
    assert len(opens) == 1


MAIL_APP = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148")


@pytest.mark.parametrize("user_agent, address", [
    ("Mozilla/5.0", "203.0.113.9"),  # the proxy's bare name, from anywhere
    (MAIL_APP, "17.58.100.1"),  # from Apple's network, whatever it says it is
], ids=["bare user agent", "apple network"])
def test_a_privacy_proxys_fetch_of_the_pixel_is_an_open_by_a_machine(app, sink, client,
                                                                     user_agent, address):
    [recipient] = publish(("Ada", "ada@example.co.uk"))
    path = pixel_path(sink.messages[0])
    client.get(path, headers={"User-Agent": user_agent}, environ_base={"REMOTE_ADDR": address})
    ada = fresh(recipient)
    assert (ada.status, ada.cause) == (OPENED, "machine_opened")
    assert "mail-privacy proxy" in ada.evidence  # and on the timeline
    assert [e.reason_code for e in timeline(recipient.deliveries[0].id)
            if e.type == "opened"] == ["machine_open"]
    # Later the person opens it in the same minute: both opens are kept, and it was read.
    client.get(path, headers={"User-Agent": MAIL_APP}, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert fresh(recipient).cause == "opened"


@pytest.mark.parametrize("token", [
    "garbage",
    URLSafeSerializer("another-secret", salt="helpdesk.open-pixel").dumps("0" * 32),
], ids=["garbage", "forged"])
def test_a_bad_pixel_token_gets_the_same_image_and_records_nothing(app, sink, client, token):
    [recipient] = publish(("Ada", "ada@example.co.uk"))
    before = db.session.scalar(select(db.func.count()).select_from(DeliveryEvent))
    response = client.get(f"/t/{token}.gif")
    assert response.status_code == 200
    assert response.mimetype == "image/gif" and response.data == PIXEL
    assert db.session.scalar(select(db.func.count()).select_from(DeliveryEvent)) == before
    assert fresh(recipient).status == NOT_OPENED
