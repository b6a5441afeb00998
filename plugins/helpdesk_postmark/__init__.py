"""The Postmark provider: sends through the email API and reads the webhooks
(``helpdesk_postmark.webhook``), which Postmark protects with HTTP basic auth, not a signature.

Settings: ``HELPDESK_POSTMARK_SERVER_TOKEN`` (the server's API token),
``HELPDESK_POSTMARK_MESSAGE_STREAM`` (``outbound`` unless you made another transactional
stream), ``HELPDESK_POSTMARK_WEBHOOK_SECRET`` (the basic-auth password of the webhook URL; the
user is ``HELPDESK_POSTMARK_WEBHOOK_USER``, ``postmark`` by default) and
``HELPDESK_POSTMARK_API_URL`` (``https://api.postmarkapp.com``).

A send is one ``POST {API_URL}/email`` of JSON with the header ``X-Postmark-Server-Token``; its
``Metadata`` carries ``helpdesk_delivery``, so every webhook Postmark posts about the message
names the delivery. Postmark answers 200 with the ``MessageID``; 422 carries its ``ErrorCode``
(406: the address is inactive, on Postmark's suppression list) and is a refusal for good like
any other 4xx but 429; 429, 5xx, timeouts and dropped connections are transient, and the queue
retries them with backoff.

Postmark's suppression list is its inactive addresses: a hard bounce, a spam complaint or a
manual deactivation makes an address inactive. ``suppression_lookup`` finds its inactive
bounces through the bounce API, and ``suppression_remove`` reactivates them
(``PUT /bounces/{id}/activate``), which Postmark allows for bounces, not for spam complaints.
"""
from __future__ import annotations

from email.utils import formataddr
from typing import Any, Mapping

import requests

from helpdesk import hookimpl
from helpdesk.contract import (CORRELATION_VARIABLE, Message, SendResult, ServiceError,
                               Setting, Suppression, WebhookError, parse_iso_timestamp)
from helpdesk.provider_http import ThreadSessions, api_answer, send_result

from .demo import PostmarkStandIn
from .webhook import DEFAULT_USER, parse_events, verify_basic_auth

DEFAULT_API_URL = "https://api.postmarkapp.com"
DEFAULT_STREAM = "outbound"
TOKEN_HEADER = "X-Postmark-Server-Token"
# What makes an address inactive, by the bounce Type that did it.
SUPPRESSION_LISTS = {"SpamComplaint": "spam complaints",
                     "ManuallyDeactivated": "manual deactivations"}


def email_body(message: Message, sender_name: str = "", stream: str = DEFAULT_STREAM) -> dict:
    """The email API's JSON for one message."""
    return {
        "From": formataddr((sender_name, message.sender)),
        "To": formataddr((message.to_name, message.to)),
        "Subject": message.subject,
        "TextBody": message.text,
        "HtmlBody": message.html,
        "Headers": [{"Name": name, "Value": value} for name, value in message.headers.items()],
        "Metadata": {CORRELATION_VARIABLE: message.correlation_id},
        "TrackOpens": True,
        "MessageStream": stream,
    }


def error_message(response: requests.Response) -> str:
    """Postmark's own explanation of a refusal (``Message`` and ``ErrorCode``), else the raw
    text."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("Message"), str):
        code = payload.get("ErrorCode")
        return f"{payload['Message'].strip()} (ErrorCode {code})" if code else \
            payload["Message"].strip()
    return " ".join(response.text.split())[:500] or response.reason or ""


def sent_message_id(response: requests.Response) -> str | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    message_id = payload.get("MessageID") if isinstance(payload, dict) else None
    return (message_id.strip() or None) if isinstance(message_id, str) else None


class PostmarkProvider:
    """One HTTP session per thread, reused for every message that thread sends (a batch costs
    one TLS handshake)."""

    name = "postmark"
    reports_deliveries = True  # the Delivery webhook says when the receiving server took it

    def __init__(self, config: Mapping[str, Any]):
        self.api_url = (config.get("POSTMARK_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.stream = config.get("POSTMARK_MESSAGE_STREAM") or DEFAULT_STREAM
        self._token = config.get("POSTMARK_SERVER_TOKEN") or ""
        self.webhook_user = config.get("POSTMARK_WEBHOOK_USER") or DEFAULT_USER
        self._webhook_secret = config.get("POSTMARK_WEBHOOK_SECRET")
        self.timeout = float(config.get("SEND_TIMEOUT") or 20)
        self.sender_name = config.get("SENDER_NAME") or ""
        self._sessions = ThreadSessions(self._authorise)

    def __repr__(self) -> str:  # never show the token
        return f"<PostmarkProvider {self.api_url} {self.stream}>"

    def _authorise(self, session: requests.Session) -> None:
        session.headers.update({TOKEN_HEADER: self._token, "Accept": "application/json",
                                "User-Agent": "helpdesk-postmark"})

    def send(self, message: Message) -> SendResult:
        if not self._token:
            return SendResult.refused("HELPDESK_POSTMARK_SERVER_TOKEN is not set")
        body = email_body(message, self.sender_name, self.stream)
        return send_result(
            "Postmark", lambda: self._sessions.get().post(f"{self.api_url}/email", json=body,
                                                          timeout=self.timeout,
                                                          allow_redirects=False),
            timeout=self.timeout, message_id=sent_message_id, detail=error_message)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raise unless the request carries the webhook URL's basic-auth credentials. Postmark
        signs nothing, so there is no nonce: replays are harmless because ingest dedupes on the
        record (a bounce's ``ID``, else its content)."""
        verify_basic_auth(self._webhook_secret, headers.get("Authorization"), self.webhook_user)
        return None

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes):
        return parse_events(raw_body)

    def suppression_lookup(self, address: str) -> Suppression | None:
        bounces = self._inactive_bounces(address)
        if not bounces:
            return None
        latest = bounces[0]  # the bounce API lists the newest first
        try:
            since = parse_iso_timestamp(latest.get("BouncedAt"), what="BouncedAt")
        except WebhookError:
            since = None
        words = [w for w in (latest.get("Name"), latest.get("Details")) if isinstance(w, str)]
        return Suppression(address=address,
                           list=SUPPRESSION_LISTS.get(latest.get("Type"), "bounces"),
                           reason=": ".join(words), since=since)

    def suppression_remove(self, address: str) -> bool:
        bounces = self._inactive_bounces(address)
        locked = [b for b in bounces if b.get("CanActivate") is not True]
        if locked:
            raise ServiceError(f"Postmark will not reactivate {address}: it is inactive after "
                               f"a {locked[0].get('Name') or 'spam complaint'}, which only the "
                               "recipient can undo")
        for bounce in bounces:
            self._ask("PUT", f"/bounces/{int(bounce['ID'])}/activate", address)
        return bool(bounces)

    def _inactive_bounces(self, address: str) -> list[dict]:
        """The address's bounces that keep it inactive (``emailFilter`` matches parts of
        addresses: only the exact address counts)."""
        found = self._ask("GET", "/bounces", address, params={
            "count": 50, "offset": 0, "inactive": "true", "emailFilter": address})
        bounces = found.get("Bounces")
        if not isinstance(bounces, list):
            raise ServiceError(f"Postmark's bounce API answered no \"Bounces\" for {address}")
        return [b for b in bounces if isinstance(b, dict) and b.get("Inactive") is True
                and str(b.get("Email", "")).lower() == address.strip().lower()]

    def _ask(self, method: str, path: str, address: str, params=None) -> dict:
        """One bounce-API call's JSON object.

        :raises ServiceError: Postmark cannot be reached, or answers anything but 200.
        """
        if not self._token:
            raise ServiceError("HELPDESK_POSTMARK_SERVER_TOKEN is not set")
        return api_answer(
            "Postmark's bounce API", address, lambda: self._sessions.get().request(
                method, f"{self.api_url}{path}", params=params, timeout=self.timeout,
                allow_redirects=False),
            detail=error_message, json_object=True)

    def close(self) -> None:
        self._sessions.close()


@hookimpl
def helpdesk_settings():
    return [
        Setting("POSTMARK_SERVER_TOKEN", None, "the server's API token", secret=True),
        Setting("POSTMARK_MESSAGE_STREAM", DEFAULT_STREAM, "the message stream to send on"),
        Setting("POSTMARK_WEBHOOK_USER", DEFAULT_USER, "the basic-auth user webhooks bring"),
        Setting("POSTMARK_WEBHOOK_SECRET", None, "the basic-auth password webhooks bring",
                secret=True),
        Setting("POSTMARK_API_URL", DEFAULT_API_URL, "the email API"),
    ]


@hookimpl
def helpdesk_providers(config):
    return [PostmarkProvider(config)]


@hookimpl
def helpdesk_demo_service(name, sink, webhook_url):
    if name == PostmarkProvider.name:
        return PostmarkStandIn(sink.host, sink.port, webhook_url)
