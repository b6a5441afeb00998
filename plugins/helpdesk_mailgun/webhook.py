"""Mailgun's tracking webhooks: checking their signature and reading their event. Plain
functions, no Flask, so each can be tested on its own.

Mailgun posts one event per request, as JSON::

    {"signature": {"timestamp": "1534108637", "token": "<50 random characters>",
                   "signature": "<hex HMAC-SHA256 of timestamp + token>"},
     "event-data": {"event": "delivered", "id": "...", "timestamp": 1534108637.153125,
                    "recipient": "...", "user-variables": {"helpdesk_delivery": "..."},
                    "message": {"headers": {"message-id": "..."}}, ...}}

The HMAC key is the domain's HTTP webhook signing key. The signature covers the timestamp and
the token, not the body: the token is a one-time value (the app refuses one it saw before) and
the timestamp must be recent, so a captured request cannot be posted again.
"""
from __future__ import annotations

import hashlib
import hmac
from email.utils import parseaddr
from typing import Any

from helpdesk.contract import (CORRELATION_VARIABLE, NotConfigured, ProviderEvent, SignatureError,
                               WebhookError, check_fresh, content_id, parse_timestamp, read_json,
                               text_of)

PROVIDER = "mailgun"
SIGNING_KEY_SETTING = "HELPDESK_MAILGUN_WEBHOOK_SIGNING_KEY"
# Mailgun retries a webhook on any answer but 200 and 406: 406 says "never send this again".
NOT_ACCEPTABLE = 406

# Mailgun's event names and the normalized type each one becomes. "failed" depends on its
# severity (see ``to_event``); any other name is "unknown".
EVENT_TYPES: dict[str, str] = {
    "accepted": "accepted",
    "delivered": "delivered",
    "failed": "bounced",
    "rejected": "rejected",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}


def require_signing_key(signing_key: str | None) -> bytes:
    """The signing key as HMAC key bytes.

    :raises NotConfigured: (403) no key is set: webhooks are refused, never accepted unchecked.
    """
    if not signing_key or not signing_key.strip():
        raise NotConfigured(f"Mailgun webhooks are refused: {SIGNING_KEY_SETTING} is not set")
    return signing_key.strip().encode("utf-8")


def read_body(raw_body: bytes) -> dict:
    """The webhook body as a JSON object.

    :raises WebhookError: (400) it is not UTF-8 JSON text holding an object.
    """
    body = read_json(raw_body)
    if not isinstance(body, dict):
        raise WebhookError(f"the body must be a JSON object with \"signature\" and "
                           f"\"event-data\", not a {type(body).__name__}")
    return body


def signature_fields(body: dict) -> tuple[str, str, str]:
    """``(timestamp, token, signature)`` from the body's ``signature`` object.

    :raises SignatureError: the object or one of its fields is missing.
    """
    block = body.get("signature")
    if not isinstance(block, dict):
        raise SignatureError("the request is not signed: the \"signature\" object is missing")
    fields = []
    for name in ("timestamp", "token", "signature"):
        value = block.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a timestamp sent as a number signs as its digits
        if not isinstance(value, str) or not value.strip():
            raise SignatureError(f"the request is not signed: signature.{name} is missing")
        fields.append(value)
    timestamp, token, signature = fields
    return timestamp, token, signature


def verify_signature(signing_key: str | None, timestamp: str, token: str, signature: str, *,
                     tolerance: float, now: float | None = None) -> str:
    """Check one signature block; return its token (the one-time nonce) when genuine and fresh.

    :param signing_key: the HTTP webhook signing key (NotConfigured, fail closed, when absent).
    :param timestamp: ``signature.timestamp`` exactly as sent (unix seconds).
    :param token: ``signature.token``.
    :param signature: ``signature.signature``: hex HMAC-SHA256 of ``timestamp + token``.
    :param tolerance: seconds a timestamp may be in the past or the future.
    :raises SignatureError: a forged or stale signature.
    """
    signed = f"{timestamp}{token}".encode("utf-8")
    expected = hmac.new(require_signing_key(signing_key), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"),
                               signature.strip().lower().encode("utf-8")):
        raise SignatureError("the Mailgun signature does not match the timestamp and token")
    check_fresh(timestamp, tolerance=tolerance, now=now, what="signature.timestamp")
    return token


def parse_events(raw_body: bytes) -> list[ProviderEvent]:
    """The normalized event of one webhook body: a one-element list, since Mailgun posts one
    event per request.

    :raises WebhookError: 400 when the body is not a JSON object; 406 when its ``event-data``
        is missing or unusable, so that Mailgun does not retry a request that can never work.
    """
    body = read_body(raw_body)
    event_data = body.get("event-data")
    if not isinstance(event_data, dict):
        raise WebhookError("the body has no \"event-data\" object", NOT_ACCEPTABLE)
    return [to_event(event_data)]


# The delivery-status codes of a message Mailgun dropped because of its own lists (an earlier
# bounce, a spam complaint, an unsubscribe).
SUPPRESSION_CODES = frozenset({"605", "606", "607"})


def to_event(event_data: Any) -> ProviderEvent:
    """One ``event-data`` object as a normalized event.

    :raises WebhookError: (406) it is not an object, or lacks an ``event`` name or a usable
        ``timestamp``.
    """
    if not isinstance(event_data, dict):
        raise WebhookError(f"\"event-data\" must be a JSON object, not "
                           f"{type(event_data).__name__}", NOT_ACCEPTABLE)
    name = event_data.get("event")
    if not isinstance(name, str) or not name.strip():
        raise WebhookError("\"event-data\" has no \"event\" name", NOT_ACCEPTABLE)
    event_type = EVENT_TYPES.get(name, "unknown")
    severity = text_of(event_data.get("severity"))
    if name == "failed" and severity != "permanent":
        # Only a failure Mailgun calls permanent is a bounce; it retries a temporary one.
        event_type = "deferred"
    elif name == "rejected":
        severity = "permanent"
    status = event_data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    return ProviderEvent(
        provider=PROVIDER,
        type=event_type,
        event_id=text_of(event_data.get("id")) or content_id(event_data),
        occurred_at=parse_timestamp(event_data.get("timestamp"), what='"event-data"',
                                    status=NOT_ACCEPTABLE),
        correlation_id=_user_variable(event_data, CORRELATION_VARIABLE),
        message_id=_message_id(event_data),
        recipient=_recipient(event_data),
        severity=severity,
        reason=_reason(name, event_data, status),
        mta_response=_mta_response(status),
        raw=event_data,
        reason_code="suppressed" if text_of(status.get("code")) in SUPPRESSION_CODES else None,
    )


def _reason(name: str, event_data: dict, status: dict) -> str | None:
    if name == "failed":
        return (text_of(status.get("description")) or text_of(status.get("message"))
                or text_of(event_data.get("reason")))
    if name == "rejected":
        reject = event_data.get("reject")
        reject = reject if isinstance(reject, dict) else {}
        return text_of(reject.get("reason")) or text_of(reject.get("description"))
    if name == "clicked":
        return text_of(event_data.get("url"))
    if name == "complained":
        return "the recipient marked the email as spam"
    if name not in EVENT_TYPES:
        return f"Mailgun event {name.strip()[:100]!r}, not one helpdesk knows"
    return None


def _mta_response(status: dict) -> str | None:
    """The receiving server's reply, with its SMTP code: ``550 5.1.1 The email account…``."""
    message = text_of(status.get("message"))
    if not message:
        return None
    code = text_of(status.get("code"))
    return f"{code} {message}" if code else message


def _user_variable(event_data: dict, name: str) -> str | None:
    variables = event_data.get("user-variables")
    return text_of(variables.get(name)) if isinstance(variables, dict) else None


def _headers(event_data: dict) -> dict:
    message = event_data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    return headers if isinstance(headers, dict) else {}


def _message_id(event_data: dict) -> str | None:
    """The Message-ID without angle brackets: the form the messages API answered."""
    text = text_of(_headers(event_data).get("message-id"))
    return (text.strip("<>") or None) if text else None


def _recipient(event_data: dict) -> str | None:
    recipient = text_of(event_data.get("recipient"))
    if recipient:
        return recipient
    # A "rejected" event may lack the recipient; the To header still names it.
    to = text_of(_headers(event_data).get("to"))
    return (parseaddr(to)[1] or None) if to else None
