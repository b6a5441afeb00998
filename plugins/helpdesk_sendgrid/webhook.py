"""SendGrid's Event Webhook: checking its signature and reading its events. Plain functions, no
Flask, so each can be tested on its own.

SendGrid posts a JSON array of events, several deliveries' events in one batch, and flattens
each message's ``custom_args`` into its events: ``helpdesk_delivery`` names our delivery.
The Signed Event Webhook signs ``timestamp header value + raw body`` with ECDSA P-256 / SHA-256;
the public key is shown on SendGrid's settings page as base64 DER.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from helpdesk.contract import (CORRELATION_VARIABLE, NotConfigured, ProviderEvent, SignatureError,
                               WebhookError, check_fresh, content_id, parse_timestamp, read_json,
                               text_of)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
PUBLIC_KEY_SETTING = "HELPDESK_SENDGRID_WEBHOOK_PUBLIC_KEY"

# SendGrid's event names and the normalized type each one becomes. A bounce of type "blocked"
# is a soft bounce and becomes "deferred" (see ``to_event``); any other name is "unknown".
EVENT_TYPES: dict[str, str] = {
    "processed": "accepted",
    "deferred": "deferred",
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "rejected",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "resubscribed",
}

MACHINE_OPEN = "machine open (Apple Mail Privacy Protection)"


def load_public_key(encoded: str | None) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER text; NotConfigured (fail closed) when it is
    missing or is not an EC P-256 public key."""
    if not encoded or not encoded.strip():
        raise NotConfigured(f"SendGrid webhooks are refused: {PUBLIC_KEY_SETTING} is not set")
    text = encoded.strip()
    if text.startswith("-----BEGIN"):  # a PEM copy of the same key: drop the armour
        text = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise NotConfigured(f"{PUBLIC_KEY_SETTING} is not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise NotConfigured(f"{PUBLIC_KEY_SETTING} is not an ECDSA P-256 public key")
    return key


def verify_signature(public_key: str | None, timestamp: str | None, signature: str | None,
                     raw_body: bytes, *, tolerance: float, now: float | None = None) -> None:
    """Check a signed Event Webhook request; return quietly when it is genuine and fresh.

    :param public_key: the base64 DER key from SendGrid's settings (NotConfigured when absent).
    :param timestamp: the ``X-Twilio-Email-Event-Webhook-Timestamp`` header, exactly as sent.
    :param signature: the ``X-Twilio-Email-Event-Webhook-Signature`` header (base64 DER ECDSA).
    :param raw_body: the request body, byte for byte.
    :param tolerance: seconds a timestamp may be in the past or the future.
    :raises SignatureError: a missing, forged or stale signature.
    """
    key = load_public_key(public_key)
    if not signature or not timestamp:
        missing = SIGNATURE_HEADER if not signature else TIMESTAMP_HEADER
        raise SignatureError(f"the request is not signed: {missing} is missing")
    try:
        der_signature = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} is not base64") from None
    try:
        key.verify(der_signature, timestamp.encode("utf-8") + raw_body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureError("the SendGrid signature does not match the body and timestamp") \
            from None
    check_fresh(timestamp, tolerance=tolerance, now=now, what=TIMESTAMP_HEADER)


def parse_events(raw_body: bytes) -> list[ProviderEvent]:
    """The normalized events of one Event Webhook body (a JSON array of event objects).

    :raises WebhookError: the body is not a JSON array of objects that each name an ``event``
        and a ``timestamp``; then nothing of the batch is stored.
    """
    payload = read_json(raw_body)
    if not isinstance(payload, list):
        raise WebhookError(f"the body must be a JSON array of events, not a "
                           f"{type(payload).__name__}")
    events = []
    for index, item in enumerate(payload):
        try:
            events.append(to_event(item))
        except WebhookError as error:
            raise WebhookError(f"event {index}: {error}") from None
    return events


def to_event(payload: Any) -> ProviderEvent:
    """One SendGrid event object as a normalized event.

    :raises WebhookError: it is not an object, or lacks a usable ``event`` or ``timestamp``.
    """
    if not isinstance(payload, dict):
        raise WebhookError(f"an event must be a JSON object, not {type(payload).__name__}")
    name = payload.get("event")
    if not isinstance(name, str) or not name:
        raise WebhookError("the event has no \"event\" name")
    event_type = EVENT_TYPES.get(name, "unknown")
    severity = None
    if name == "bounce":
        # "bounce" is a hard bounce; "blocked" a soft one the receiving server may lift later.
        soft = payload.get("type") == "blocked"
        event_type = "deferred" if soft else "bounced"
        severity = "temporary" if soft else "permanent"
    elif name == "dropped":
        severity = "permanent"
    elif name == "deferred":
        severity = "temporary"
    response = text_of(payload.get("response"))
    machine = name == "open" and payload.get("sg_machine_open") is True
    return ProviderEvent(
        provider=PROVIDER,
        type=event_type,
        event_id=text_of(payload.get("sg_event_id")) or content_id(payload),
        occurred_at=parse_timestamp(payload.get("timestamp")),
        correlation_id=text_of(payload.get(CORRELATION_VARIABLE)),
        message_id=_send_message_id(payload.get("sg_message_id")),
        recipient=text_of(payload.get("email")),
        severity=severity,
        reason=_reason(name, payload),
        mta_response=response or (text_of(payload.get("reason")) if name == "bounce" else None),
        raw=payload,
        reason_code="machine_open" if machine else None,
    )


def _reason(name: str, payload: dict) -> str | None:
    reason = text_of(payload.get("reason")) or text_of(payload.get("response"))
    if name == "bounce":
        label = "soft bounce (blocked)" if payload.get("type") == "blocked" else "hard bounce"
        details = [d for d in (text_of(payload.get("status")), reason) if d]
        classification = text_of(payload.get("bounce_classification"))
        if classification:
            details.append(f"({classification})")
        return " ".join([f"{label}:", *details]) if details else label
    if name == "open":
        return MACHINE_OPEN if payload.get("sg_machine_open") is True else None
    if name == "click":
        return text_of(payload.get("url"))
    if name in ("group_unsubscribe", "group_resubscribe") and "asm_group_id" in payload:
        verb = "unsubscribed from" if name == "group_unsubscribe" else "resubscribed to"
        return f"{verb} unsubscribe group {payload['asm_group_id']}"
    if name == "spamreport":
        return "the recipient marked the email as spam"
    if name not in EVENT_TYPES:
        return f"SendGrid event {name[:100]!r}, not one helpdesk knows"
    return reason


def _send_message_id(value: Any) -> str | None:
    """The id the mail-send API answered (X-Message-Id): ``sg_message_id`` is that id followed
    by ``.filter…`` and SendGrid's routing details."""
    text = text_of(value)
    return text.partition(".filter")[0] if text else None


