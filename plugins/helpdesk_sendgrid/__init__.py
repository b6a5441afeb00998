"""The SendGrid provider: sends through the v3 mail-send API and reads the signed Event Webhook
(``helpdesk_sendgrid.webhook``).

A send is one personalization per recipient whose ``custom_args`` carry ``helpdesk_delivery``,
so every event SendGrid reports about it names the delivery. SendGrid answers 202 when it takes
the message; any other 4xx but 429 is a refusal for good (a bad request, a bad key); 429, 5xx,
timeouts and dropped connections are transient, and the queue retries them with backoff.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import quote

import requests

from helpdesk import hookimpl
from helpdesk.provider_http import ThreadSessions, api_answer, send_result
from helpdesk.contract import (CORRELATION_VARIABLE, Message, SendResult, ServiceError, Setting,
                               Suppression)

from .webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events, verify_signature

DEFAULT_API_URL = "https://api.sendgrid.com/v3/mail/send"
# The suppression lists helpdesk clears before a resend, by name, under the v3 API's root.
SUPPRESSION_PATHS = {"bounces": "suppression/bounces", "spam reports": "suppression/spam_reports",
                     "unsubscribes": "asm/suppressions/global"}


def mail_send_body(message: Message, sender_name: str = "") -> dict[str, Any]:
    """The v3 mail-send JSON for one message."""
    to = {"email": message.to}
    if message.to_name:
        to["name"] = message.to_name
    sender = {"email": message.sender}
    if sender_name:
        sender["name"] = sender_name
    body: dict[str, Any] = {
        "personalizations": [{
            "to": [to],
            "custom_args": {CORRELATION_VARIABLE: message.correlation_id},
        }],
        "from": sender,
        "subject": message.subject,
        # SendGrid requires text/plain before text/html.
        "content": [{"type": "text/plain", "value": message.text},
                    {"type": "text/html", "value": message.html}],
        "tracking_settings": {"open_tracking": {"enable": True}},
    }
    if message.headers:
        body["headers"] = dict(message.headers)
    return body


def error_messages(response: requests.Response) -> str:
    """SendGrid's own explanation of a refusal (``errors[].message``), else the raw text."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list):
        parts = []
        for error in errors:
            if isinstance(error, dict) and error.get("message"):
                field = f" ({error['field']})" if error.get("field") else ""
                parts.append(f"{error['message']}{field}")
        if parts:
            return "; ".join(parts)
    return " ".join(response.text.split())[:500] or response.reason or ""


class SendgridProvider:
    """One HTTP session per thread, reused for every message that thread sends (a batch costs
    one TLS handshake)."""

    name = "sendgrid"
    # SendGrid reports "delivered" when the receiving server took the email; its signature
    # covers a timestamp, not a one-time token (replays are deduped on sg_event_id).
    reports_deliveries = True
    signs_one_time_tokens = False

    def __init__(self, config: Mapping[str, Any]):
        self.api_url = config.get("SENDGRID_API_URL") or DEFAULT_API_URL
        # The v3 root the mail-send URL sits under: the suppression API lives there too.
        self.api_base = self.api_url.rsplit("/mail/send", 1)[0]
        self._api_key = config.get("SENDGRID_API_KEY") or ""
        self.public_key = config.get("SENDGRID_WEBHOOK_PUBLIC_KEY")
        self.tolerance = float(config.get("WEBHOOK_TOLERANCE_SECONDS") or 600)
        self.timeout = float(config.get("SEND_TIMEOUT") or 20)
        self.sender_name = config.get("SENDER_NAME") or ""
        self._sessions = ThreadSessions(self._authorise)

    def __repr__(self) -> str:  # never show the API key
        return f"<SendgridProvider {self.api_url}>"

    def _authorise(self, session: requests.Session) -> None:
        session.headers.update({"Authorization": f"Bearer {self._api_key}",
                                "User-Agent": "helpdesk-sendgrid"})

    def send(self, message: Message) -> SendResult:
        if not self._api_key:
            return SendResult.refused("HELPDESK_SENDGRID_API_KEY is not set")
        body = mail_send_body(message, self.sender_name)
        return send_result(
            "SendGrid", lambda: self._sessions.get().post(self.api_url, json=body,
                                                          timeout=self.timeout,
                                                          allow_redirects=False),
            timeout=self.timeout, message_id=lambda r: r.headers.get("X-Message-Id"),
            detail=error_messages)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raise unless the request carries SendGrid's valid, fresh signature. There is no
        one-time token to return (see ``signs_one_time_tokens``)."""
        verify_signature(self.public_key, headers.get(TIMESTAMP_HEADER),
                         headers.get(SIGNATURE_HEADER), raw_body, tolerance=self.tolerance)
        return None

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes):
        return parse_events(raw_body)

    def suppression_lookup(self, address: str) -> Suppression | None:
        """The first of SendGrid's lists (bounces, spam reports, global unsubscribes) that
        holds the address."""
        for name, path in SUPPRESSION_PATHS.items():
            entry = self._entry(path, address)
            if entry is not None:
                created = entry.get("created")
                since = (datetime.fromtimestamp(created, tz=timezone.utc)
                         if isinstance(created, int) and not isinstance(created, bool) else None)
                reason = " ".join(str(entry[k]) for k in ("status", "reason")
                                  if isinstance(entry.get(k), str) and entry[k])
                return Suppression(address=address, list=name, reason=reason, since=since)
        return None

    def suppression_remove(self, address: str) -> bool:
        """Delete the address's entry from each list that holds it."""
        removed = False
        for path in SUPPRESSION_PATHS.values():
            if self._entry(path, address) is not None:
                self._ask("DELETE", path, address, expect=204)
                removed = True
        return removed

    def _entry(self, path: str, address: str) -> dict | None:
        """The address's entry on one list: bounces and spam reports answer a list of entries,
        global unsubscribes one object (empty when it is not there)."""
        found = self._ask("GET", path, address, expect=200)
        entries = found if isinstance(found, list) else [found] if found else []
        return next((e for e in entries if isinstance(e, dict)), None)

    def _ask(self, method: str, path: str, address: str, *, expect: int) -> Any:
        """One suppression-API call's JSON (None for an empty answer).

        :raises ServiceError: SendGrid cannot be reached, or answers other than ``expect``.
        """
        if not self._api_key:
            raise ServiceError("HELPDESK_SENDGRID_API_KEY is not set")
        url = f"{self.api_base}/{path}/{quote(address.strip(), safe='@')}"
        return api_answer(
            "SendGrid's suppression API", address, lambda: self._sessions.get().request(
                method, url, timeout=self.timeout, allow_redirects=False),
            detail=error_messages, expect=expect)

    def close(self) -> None:
        self._sessions.close()


@hookimpl
def helpdesk_settings():
    return [
        Setting("SENDGRID_API_KEY", None, "an API key with the Mail Send permission", secret=True),
        Setting("SENDGRID_API_URL", DEFAULT_API_URL, "the v3 mail-send endpoint"),
        Setting("SENDGRID_WEBHOOK_PUBLIC_KEY", None, "the verification key of the Signed "
                "Event Webhook, base64 DER as SendGrid shows it"),
    ]


@hookimpl
def helpdesk_providers(config):
    return [SendgridProvider(config)]


@hookimpl
def helpdesk_demo_service(name, sink, webhook_url):
    if name == SendgridProvider.name:
        from .demo import SendgridStandIn  # the stand-in reads this module's API paths

        return SendgridStandIn(sink.host, sink.port, webhook_url)
