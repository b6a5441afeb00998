"""What ``helpdesk demo --provider NAME`` stands in for the email service with: a plugin's
``helpdesk_demo_service`` hook returns a ``DemoService``. Flask-free.

An HTTP service's stand-in (``HttpStandIn``) is a real HTTP server on loopback speaking the
service's API: every email it is sent goes to the demo's SMTP sink over SMTP, so that the sink's
refusals (550) and greylisting (451) are real SMTP answers, and the stand-in then posts the
event the real service would send about that answer (delivered, bounced, deferred) to the app's
webhook, shaped and authenticated as the service does. Like the real service, a stand-in may
keep a suppression list: an address that bounced for good or reported spam is dropped, not sent,
until it is removed through the service's API.
"""
from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping, NamedTuple

log = logging.getLogger(__name__)


class SmtpAnswer(NamedTuple):
    """What the receiving server (the demo's sink) answered one recipient."""

    code: int
    text: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


class Dropped(NamedTuple):
    """The service did not try: the address is on its suppression list ``list``."""

    list: str  # "bounces" | "spam reports"


class DemoService:
    """A stand-in for an email service. ``settings`` are the app settings that point the
    provider at it; ``attach`` lets it adjust the built provider (a stand-in that signs with a
    certificate of its own makes the provider trust it); ``report_spam`` passes on a
    recipient's spam report, as a mailbox provider's feedback loop does, when the service
    reports complaints."""

    settings: Mapping[str, Any] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def attach(self, provider: Any) -> None:
        pass

    def report_spam(self, address: str) -> bool:
        """The recipient at ``address`` marked the latest email as spam. Returns whether the
        service reports it (one without complaint events does not)."""
        return False


class HttpStandIn(DemoService, ABC):
    """Subclasses set ``name`` and define ``answer(method, path, headers, body) -> (status,
    payload)`` for the API's requests, calling ``deliver`` for each email they take. One that
    keeps a suppression list sets ``keeps_suppressions``; ``complaint`` posts its event."""

    keeps_suppressions = False

    name = ""

    def __init__(self, sink_host: str, sink_port: int, webhook_url: str):
        self.sink = (sink_host, sink_port)
        self.webhook_url = webhook_url
        # address -> (list, since): who the service no longer sends to, as its API shows.
        self.suppressions: dict[str, tuple[str, int]] = {}
        self._events = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"demo-{self.name}")
        handler = type("Handler", (_Handler,), {"service": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"demo-{self.name}-api")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._events.shutdown(wait=False, cancel_futures=True)

    @abstractmethod
    def answer(self, method: str, path: str, headers: Mapping[str, str],
               body: bytes) -> tuple[int, dict]:
        """The API's answer to one request: an HTTP status and a JSON object."""

    def suppress(self, address: str, listed: str) -> None:
        if self.keeps_suppressions:
            self.suppressions.setdefault(_bare(address), (listed, int(time.time())))

    def report_spam(self, address: str) -> bool:
        if self.complaint(address) is False:
            return False
        self.suppress(address, "spam reports")
        return True

    def complaint(self, address: str) -> bool:
        """Post the service's complaint event about the latest email to ``address`` (later);
        False: this service reports no complaints."""
        return False

    def deliver(self, sender: str, to: str, subject: str, text: str, html: str,
                headers: Mapping[str, str], report) -> None:
        """Hand an email to the sink, later (the API answers first, as the real services do),
        then call ``report(SmtpAnswer)`` to post the service's event about it, or
        ``report(Dropped)`` when the address is on the service's suppression list."""
        def send() -> None:
            listed = self.suppressions.get(_bare(to))
            if listed:
                report(Dropped(listed[0]))
                return
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, to, subject
            message["Message-ID"] = make_msgid(domain="demo.helpdesk.invalid")
            for name, value in headers.items():
                message[name] = value
            message.set_content(text)
            message.add_alternative(html, subtype="html")
            try:
                with smtplib.SMTP(*self.sink, timeout=30) as smtp:
                    smtp.send_message(message, to_addrs=[to])
                answer = SmtpAnswer(250, "2.0.0 Ok: queued")
            except smtplib.SMTPRecipientsRefused as refused:
                code, reply = next(iter(refused.recipients.values()))
                answer = SmtpAnswer(code, reply.decode("utf-8", "replace"))
            if answer.permanent:
                self.suppress(to, "bounces")
            report(answer)

        self.later(send)

    def later(self, work) -> None:
        """Run ``work`` on the stand-in's own threads, after the API has answered."""
        self._events.submit(_logged, work)

    def post_event(self, body: bytes, headers: Mapping[str, str]) -> None:
        """POST one webhook request to the app."""
        request = urllib.request.Request(self.webhook_url, data=body, method="POST",
                                         headers=dict(headers))
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


def _bare(address: str) -> str:
    """``Name <a@b>`` or ``a@b``, as the list keys it: ``a@b`` in lower case."""
    return parseaddr(address)[1].lower()


def _logged(work) -> None:
    try:
        work()
    except Exception:  # a demo event lost is logged, never the end of the demo
        log.exception("the demo stand-in could not report an event")


class _Handler(BaseHTTPRequestHandler):
    service: HttpStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.service.answer(self.command, self.path, self.headers, body)
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _any
