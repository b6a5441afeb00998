"""The embedded SMTP sink: a real SMTP server (aiosmtpd) on loopback that keeps what it
receives, for ``helpdesk demo`` and the tests. It can refuse some domains for good (550) or for
now (451), so that bounces and deferrals happen through real SMTP traffic."""
from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Iterable, Mapping

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class CaughtMessage:
    envelope_from: str
    recipients: list[str]
    data: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def email(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    @property
    def subject(self) -> str:
        return str(self.email["Subject"] or "")

    @property
    def html(self) -> str:
        part = self.email.get_body(("html",))
        return part.get_content() if part else ""

    @property
    def text(self) -> str:
        part = self.email.get_body(("plain",))
        return part.get_content() if part else ""


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.sink.saw_connection(session.peer)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rpartition("@")[2].lower()
        if domain in self.sink.refuse_domains:
            return (self.sink.refuse_domains[domain]
                    or f"550 5.1.1 <{address}>: Recipient address rejected: no such domain")
        if domain in self.sink.defer_domains:
            return f"451 4.7.1 <{address}>: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.sink.store(CaughtMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        return "250 OK: queued"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 refuse_domains: Iterable[str] | Mapping[str, str | None] = (),
                 defer_domains: Iterable[str] = (), tls_context: ssl.SSLContext | None = None,
                 logins: Mapping[str, str] | None = None, smtputf8: bool = True):
        """``refuse_domains``: domains answered 550, as a set or a mapping to the reply.
        ``tls_context``: offer STARTTLS and require it before mail. ``logins``: require AUTH
        with one of these user names and passwords (over TLS when there is a context).
        ``smtputf8``: offer SMTPUTF8 (addresses in Unicode), as most servers now do."""
        self.host = host
        self.port = port or free_port(host)
        replies = refuse_domains if isinstance(refuse_domains, Mapping) else \
            dict.fromkeys(refuse_domains)
        self.refuse_domains = {d.lower(): r for d, r in replies.items()}
        self.defer_domains = {d.lower() for d in defer_domains}
        self.tls_context = tls_context
        self.logins = dict(logins) if logins is not None else None
        self.smtputf8 = smtputf8
        self.messages: list[CaughtMessage] = []
        self.connections = 0  # SMTP sessions that said EHLO, to see connection reuse
        self._peers: set = set()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def store(self, message: CaughtMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def saw_connection(self, peer) -> None:
        with self._lock:
            if peer not in self._peers:  # a second EHLO after STARTTLS is the same connection
                self._peers.add(peer)
                self.connections += 1

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and self.logins.get(
            auth_data.login.decode("utf-8", "replace")) == auth_data.password.decode(
            "utf-8", "replace")
        return AuthResult(success=ok, handled=False)  # aiosmtpd sends the 235 or 535 reply

    def start(self) -> "SmtpSink":
        security = {}
        if self.tls_context is not None:
            security.update(tls_context=self.tls_context, require_starttls=True)
        if self.logins is not None:
            security.update(authenticator=self._authenticate, auth_required=True,
                            auth_require_tls=self.tls_context is not None)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      decode_data=False, data_size_limit=10 * 1024 * 1024,
                                      enable_SMTPUTF8=self.smtputf8, **security)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
