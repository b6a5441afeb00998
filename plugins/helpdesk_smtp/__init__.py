"""The SMTP provider: sends through any SMTP server, reports synchronous refusals at once and
asynchronous ones from the bounce reports that come back (``helpdesk_smtp.bounces``); opens come
from the
app's tracking pixel."""
from __future__ import annotations

import functools
import smtplib
import socket
import ssl
import threading
import time
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.policy import Policy, default as modern_policy
from email.utils import make_msgid
from typing import Any, Mapping

import idna

from helpdesk import hookimpl
from helpdesk.contract import Message, SendResult, Setting
from helpdesk.demo_service import DemoService

from .bounces import parse_bounce


def verp_address(sender: str, correlation_id: str) -> str:
    """The envelope sender for one delivery: a bounce sent back to it names the delivery."""
    local, _, domain = sender.rpartition("@")
    return f"{local}+{correlation_id}@{domain}"


def header_address(name: str, address: str) -> Address:
    """An address for a header, Unicode kept: SMTPUTF8 carries it as it is. Raises ValueError
    for an address that no header can carry (no @, CR or LF in it)."""
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        raise ValueError(f"{address!r} is not an email address")
    return Address(name, local, domain)


def wire_address(address: str, smtputf8: bool) -> str:
    """The address as a server takes it: as it is when it is ASCII or the server offers
    SMTPUTF8; else with its domain in IDNA form (punycode), which every server takes. Raises
    ValueError, with the reason, when neither can carry it (Unicode before the @, and no
    SMTPUTF8)."""
    if address.isascii() or smtputf8:
        return address
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError(f"{address} has non-ASCII characters before the @, which only a "
                         "server offering SMTPUTF8 can deliver, and this one does not")
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError as error:
        raise ValueError(f"the domain of {address} is not a valid international domain name "
                         f"({error})") from None


class _ReusedHeaderClasses(HeaderRegistry):
    """The standard header registry, but each header's class made once: the standard one makes
    a new class for every header it parses (``type(...)`` in ``__getitem__``), a third of the
    time to build and write a message. The classes, and so every header's parsing and checks,
    are the same."""

    @functools.cache
    def __getitem__(self, name: str):
        return super().__getitem__(name.lower())


# The modern policy (``email.policy.default``) with those classes.
POLICY = modern_policy.clone(header_factory=_ReusedHeaderClasses())


@functools.lru_cache(maxsize=64)
def _from_header(policy: Policy, name: str, address: str):
    """The From header, parsed and checked once for every message from this sender: a header
    is an immutable value, which a message takes as it is."""
    return policy.header_factory("From", header_address(name, address))


def build_email(message: Message, sender_name: str = "", to: str | None = None,
                policy: Policy = POLICY) -> EmailMessage:
    """The MIME message, with the modern policy; ``to``: the recipient's address as the server
    takes it (see ``wire_address``), by default the message's own."""
    email = EmailMessage(policy=policy)
    email["From"] = _from_header(policy, sender_name, message.sender)
    email["To"] = header_address(message.to_name, to or message.to)
    email["Subject"] = message.subject
    email["Message-ID"] = make_msgid(domain=message.sender.rpartition("@")[2] or None)
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


# A connection idle longer than this is checked with NOOP before it is used again.
CHECK_AFTER_IDLE_SECONDS = 5.0


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


class SmtpProvider:
    """Keeps one connection per thread and reuses it for every message the thread sends, so a
    batch costs one connection and one handshake."""

    name = "smtp"
    # No webhooks: bounces come back as messages (see helpdesk_smtp.bounces). The receiving
    # server's acceptance is the delivery, so it has no later "delivered" to report, and no
    # suppression list.
    verify_webhook = None
    parse_webhook = None

    def __init__(self, config: Mapping[str, Any]):
        self.host = config["SMTP_HOST"]
        self.port = int(config["SMTP_PORT"])
        self.username = config.get("SMTP_USERNAME")
        self.password = config.get("SMTP_PASSWORD")
        self.starttls = bool(config.get("SMTP_STARTTLS"))
        self.timeout = float(config.get("SMTP_TIMEOUT") or 30)
        self.sender_name = config.get("SENDER_NAME") or ""
        self._local = threading.local()
        self._all: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    def _connection(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            # A connection used a moment ago is alive: a NOOP before each message would cost a
            # round trip per message. One idle for a while may have been closed by the server.
            if time.monotonic() - self._local.used_at < CHECK_AFTER_IDLE_SECONDS:
                self._local.used_at = time.monotonic()
                return conn
            try:
                if conn.noop()[0] == 250:
                    self._local.used_at = time.monotonic()
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
            self._drop(conn)
        conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except BaseException:
            conn.close()
            raise
        self._local.conn = conn
        self._local.used_at = time.monotonic()
        with self._lock:
            self._all.add(conn)
        return conn

    def _drop(self, conn: smtplib.SMTP) -> None:
        self._local.conn = None
        with self._lock:
            self._all.discard(conn)
        try:
            conn.close()
        except OSError:
            pass

    def send(self, message: Message) -> SendResult:
        envelope_from = verp_address(message.sender, message.correlation_id)
        try:
            conn = self._connection()
        except smtplib.SMTPAuthenticationError as error:
            return SendResult.refused("the SMTP server refused our login: "
                                      + _reply(error.smtp_code, error.smtp_error))
        except smtplib.SMTPNotSupportedError as error:
            # The settings ask for STARTTLS or AUTH that the server does not offer: retrying
            # will not change that, and "cannot reach" would send people looking elsewhere.
            return SendResult.refused(f"the SMTP server {self.host}:{self.port} does not offer "
                                      f"what SMTP_STARTTLS / SMTP_USERNAME ask for: {error}")
        except (smtplib.SMTPException, OSError, socket.timeout) as error:
            return SendResult.deferred(f"cannot reach the SMTP server {self.host}:{self.port}: "
                                       f"{error}")
        try:
            to = wire_address(message.to, conn.has_extn("smtputf8"))
            email = build_email(message, self.sender_name, to)
        except ValueError as error:
            return SendResult.refused(f"not sent: {error}")
        try:
            # smtplib asks for SMTPUTF8 itself when an address needs it.
            conn.send_message(email, from_addr=envelope_from, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            return self._refusal(code, text, on_permanent=SendResult.bounced)
        except smtplib.SMTPSenderRefused as error:
            return self._refusal(error.smtp_code, error.smtp_error,
                                 on_permanent=SendResult.refused)
        except smtplib.SMTPResponseException as error:
            self._reset(conn)
            return self._refusal(error.smtp_code, error.smtp_error,
                                 on_permanent=SendResult.bounced)
        except (smtplib.SMTPException, OSError) as error:
            self._drop(conn)
            return SendResult.deferred(f"the SMTP connection failed: {error}")
        return SendResult.accepted(message_id=email["Message-ID"])

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop(conn)

    @staticmethod
    def _refusal(code: int, text: bytes | str, on_permanent) -> SendResult:
        reply = _reply(code, text)
        if 500 <= code < 600:
            return on_permanent(reply)
        return SendResult.deferred(reply)  # 4xx: try again later

    def close(self) -> None:
        with self._lock:
            conns, self._all = list(self._all), set()
        for conn in conns:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


class SinkService(DemoService):
    """The demo's SMTP sink, sent to directly: the SMTP provider needs no stand-in between."""

    def __init__(self, sink):
        self.settings = {"SMTP_HOST": sink.host, "SMTP_PORT": sink.port, "SMTP_STARTTLS": False,
                         "SMTP_USERNAME": None}


@hookimpl
def helpdesk_settings():
    return [
        Setting("SMTP_HOST", "127.0.0.1", "the SMTP server"),
        Setting("SMTP_PORT", 25, "its port"),
        Setting("SMTP_USERNAME", None, "log in with this name (none: no login)"),
        Setting("SMTP_PASSWORD", None, "and this password", secret=True),
        Setting("SMTP_STARTTLS", False, "upgrade the connection with STARTTLS"),
        Setting("SMTP_TIMEOUT", 30, "seconds to wait for the server"),
    ]


@hookimpl
def helpdesk_providers(config):
    return [SmtpProvider(config)]


@hookimpl
def helpdesk_demo_service(name, sink, webhook_url):
    if name == SmtpProvider.name:  # the demo's sink is the receiving server itself
        return SinkService(sink)


@hookimpl(trylast=True)  # it reads any returned message: a reader of one format goes first
def helpdesk_parse_bounce(raw_message):
    return parse_bounce(raw_message)
