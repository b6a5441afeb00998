"""The Mailgun provider: sends through the messages API and reads the signed tracking webhooks
(``helpdesk_mailgun.webhook``).

Settings: ``HELPDESK_MAILGUN_API_KEY``, ``HELPDESK_MAILGUN_DOMAIN`` (the sending domain),
``HELPDESK_MAILGUN_WEBHOOK_SIGNING_KEY`` and ``HELPDESK_MAILGUN_API_URL``, the base URL of the
domain's region:

- US (the default): ``https://api.mailgun.net/v3``
- EU: ``https://api.eu.mailgun.net/v3``

A send is one ``POST {API_URL}/{DOMAIN}/messages`` of form fields, with HTTP basic auth
``api:<API key>``; the user variable ``v:helpdesk_delivery`` carries the delivery's
correlation id, so every event Mailgun reports about the message names the delivery. Mailgun
answers 200 with the message id when it queues the message; any other 4xx but 429 is a refusal
for good (a bad address, a bad key, an unknown domain); 429, 5xx, timeouts and dropped
connections are transient, and the queue retries them with backoff.
"""
from __future__ import annotations

from datetime import timezone
from email.headerregistry import Address
from email.utils import parsedate_to_datetime
from typing import Any, Mapping
from urllib.parse import quote

import requests

from helpdesk import hookimpl
from helpdesk.provider_http import ThreadSessions, api_answer, send_result
from helpdesk.contract import (CORRELATION_VARIABLE, Message, SendResult, ServiceError, Setting,
                               Suppression)

from .demo import MailgunStandIn
from .webhook import parse_events, read_body, require_signing_key, signature_fields, \
    verify_signature

US_API_URL = "https://api.mailgun.net/v3"
# The domain's suppression lists helpdesk clears before a resend.
SUPPRESSION_LISTS = ("bounces", "complaints", "unsubscribes")
EU_API_URL = "https://api.eu.mailgun.net/v3"


def messages_url(api_url: str, domain: str) -> str:
    return f"{api_url.rstrip('/')}/{quote(domain.strip(), safe='')}/messages"


def named_address(name: str, address: str) -> str:
    """``Name <address>`` in Unicode, as the form takes it (``formataddr`` raises on an
    international address). Raises ValueError for CR or LF in it."""
    local, _, domain = address.rpartition("@")
    return str(Address(name, local, domain))


def message_form(message: Message, sender_name: str = "") -> list[tuple[str, str]]:
    """The messages API form fields for one message."""
    fields = [
        ("from", named_address(sender_name, message.sender)),
        ("to", named_address(message.to_name, message.to)),
        ("subject", message.subject),
        ("text", message.text),
        ("html", message.html),
        (f"v:{CORRELATION_VARIABLE}", message.correlation_id),
        ("o:tracking-opens", "yes"),
    ]
    fields += [(f"h:{name}", value) for name, value in message.headers.items()]
    return fields


def error_message(response: requests.Response) -> str:
    """Mailgun's own explanation of a refusal (the JSON ``message``), else the raw text."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return payload["message"].strip()
    return " ".join(response.text.split())[:500] or response.reason or ""


def queued_message_id(response: requests.Response) -> str | None:
    """The id of a queued message, without the angle brackets (as webhooks spell it)."""
    try:
        payload = response.json()
    except ValueError:
        return None
    message_id = payload.get("id") if isinstance(payload, dict) else None
    return (message_id.strip().strip("<>") or None) if isinstance(message_id, str) else None


class MailgunProvider:
    """One HTTP session per thread, reused for every message that thread sends (a batch costs
    one TLS handshake)."""

    name = "mailgun"
    # Mailgun reports "delivered" when the receiving server took the email, and signs a
    # one-time token with every webhook request.
    reports_deliveries = True
    signs_one_time_tokens = True

    def __init__(self, config: Mapping[str, Any]):
        self.api_url = config.get("MAILGUN_API_URL") or US_API_URL
        self.domain = config.get("MAILGUN_DOMAIN") or ""
        self._api_key = config.get("MAILGUN_API_KEY") or ""
        self._signing_key = config.get("MAILGUN_WEBHOOK_SIGNING_KEY")
        self.tolerance = float(config.get("WEBHOOK_TOLERANCE_SECONDS") or 600)
        self.timeout = float(config.get("SEND_TIMEOUT") or 20)
        self.sender_name = config.get("SENDER_NAME") or ""
        self._sessions = ThreadSessions(self._authorise)

    def __repr__(self) -> str:  # never show the API key
        return f"<MailgunProvider {self.api_url} {self.domain}>"

    def _authorise(self, session: requests.Session) -> None:
        session.auth = ("api", self._api_key)
        session.headers["User-Agent"] = "helpdesk-mailgun"

    def send(self, message: Message) -> SendResult:
        if not self._api_key:
            return SendResult.refused("HELPDESK_MAILGUN_API_KEY is not set")
        if not self.domain.strip():
            return SendResult.refused("HELPDESK_MAILGUN_DOMAIN is not set")
        url = messages_url(self.api_url, self.domain)
        form = message_form(message, self.sender_name)
        return send_result(
            "Mailgun", lambda: self._sessions.get().post(url, data=form, timeout=self.timeout,
                                                         allow_redirects=False),
            timeout=self.timeout, message_id=queued_message_id, detail=error_message)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> str:
        """Raise unless the body carries Mailgun's valid, fresh signature; return its token, a
        one-time value the app refuses (406) when it comes again."""
        require_signing_key(self._signing_key)  # fail closed before reading anything
        body = read_body(raw_body)
        timestamp, token, signature = signature_fields(body)
        return verify_signature(self._signing_key, timestamp, token, signature,
                                tolerance=self.tolerance)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes):
        return parse_events(raw_body)

    def suppression_lookup(self, address: str) -> Suppression | None:
        """The first of the domain's lists (bounces, complaints, unsubscribes) holding it."""
        for name in SUPPRESSION_LISTS:
            entry = self._entry(name, address)
            if entry is not None:
                reason = " ".join(str(entry[k]) for k in ("code", "error") if entry.get(k))
                try:
                    since = parsedate_to_datetime(entry.get("created_at") or "")
                except (TypeError, ValueError):
                    since = None
                return Suppression(address=address, list=name, reason=reason,
                                   since=since.astimezone(timezone.utc) if since else None)
        return None

    def suppression_remove(self, address: str) -> bool:
        """Delete the address from each of the domain's lists that holds it."""
        removed = False
        for name in SUPPRESSION_LISTS:
            if self._entry(name, address) is not None:
                self._ask("DELETE", name, address)
                removed = True
        return removed

    def _entry(self, name: str, address: str) -> dict | None:
        """The address's entry on one list; None when Mailgun answers 404 (not on it)."""
        return self._ask("GET", name, address, absent_ok=True)

    def _ask(self, method: str, name: str, address: str, absent_ok: bool = False) -> dict | None:
        """One suppression-API call's JSON object.

        :raises ServiceError: Mailgun cannot be reached, or answers anything but 200 (or 404
            when ``absent_ok``).
        """
        if not self._api_key or not self.domain:
            raise ServiceError("HELPDESK_MAILGUN_API_KEY and HELPDESK_MAILGUN_DOMAIN must be set")
        url = (f"{self.api_url.rstrip('/')}/{quote(self.domain.strip(), safe='')}/{name}/"
               f"{quote(address.strip(), safe='@')}")
        return api_answer(
            "Mailgun's suppression API", address, lambda: self._sessions.get().request(
                method, url, timeout=self.timeout, allow_redirects=False),
            detail=error_message, absent=404 if absent_ok else None, json_object=True)

    def close(self) -> None:
        self._sessions.close()


@hookimpl
def helpdesk_settings():
    return [
        Setting("MAILGUN_API_KEY", None, "a sending API key", secret=True),
        Setting("MAILGUN_DOMAIN", None, "the sending domain"),
        Setting("MAILGUN_API_URL", US_API_URL, f"the region's API: {EU_API_URL} for the EU"),
        Setting("MAILGUN_WEBHOOK_SIGNING_KEY", None, "the HTTP webhook signing key",
                secret=True),
    ]


@hookimpl
def helpdesk_providers(config):
    return [MailgunProvider(config)]


@hookimpl
def helpdesk_demo_service(name, sink, webhook_url):
    if name == MailgunProvider.name:
        return MailgunStandIn(sink.host, sink.port, webhook_url)
