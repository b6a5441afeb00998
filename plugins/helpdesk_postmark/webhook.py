"""Postmark's webhooks: checking their HTTP basic auth and reading their event. Plain functions,
no Flask, so each can be tested on its own.

Postmark posts one JSON object per request; its ``RecordType`` says what it is (``Delivery``,
``Bounce``, ``SpamComplaint``, ``Open``, ``Click``, ``SubscriptionChange``) and its ``Metadata``
carries the metadata of the send, ``helpdesk_delivery`` among them. Postmark does not sign its
webhooks: the webhook URL carries basic-auth credentials (``https://postmark:SECRET@…``), which
are checked here in constant time, and nothing is accepted when no secret is set.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any, NamedTuple

from helpdesk.contract import (CORRELATION_VARIABLE, NotConfigured, ProviderEvent, SignatureError,
                               WebhookError, content_id, parse_iso_timestamp, read_json, text_of)

PROVIDER = "postmark"
SECRET_SETTING = "HELPDESK_POSTMARK_WEBHOOK_SECRET"
DEFAULT_USER = "postmark"


class Outcome(NamedTuple):
    """What a kind of Postmark record means for us."""

    type: str  # a normalized event type
    severity: str | None = None
    reason_code: str | None = None  # a key of helpdesk.contract.REASON_CODES


# Every bounce ``Type`` Postmark documents (its bounce API's list), and what it means here. Soft
# bounces and delays are deferrals: Postmark keeps trying, and they never make a status
# "bounced". Types that are not about our message reaching a mailbox are timeline-only.
BOUNCE_TYPES: dict[str, Outcome] = {
    "HardBounce": Outcome("bounced", "permanent", "user_unknown"),
    "BadEmailAddress": Outcome("bounced", "permanent", "user_unknown"),
    "SoftBounce": Outcome("deferred", "temporary", "temporary"),
    "Transient": Outcome("deferred", "temporary", "temporary"),
    "DnsError": Outcome("deferred", "temporary", "host_unknown"),
    "ChallengeVerification": Outcome("deferred", "temporary", "policy"),
    "SpamNotification": Outcome("bounced", "permanent", "spam"),
    "VirusNotification": Outcome("bounced", "permanent", "spam"),
    "Blocked": Outcome("bounced", "permanent", "policy"),
    "DMARCPolicy": Outcome("bounced", "permanent", "policy"),
    "ManuallyDeactivated": Outcome("rejected", "permanent", "suppressed"),
    "Unconfirmed": Outcome("rejected", "permanent", "policy"),
    "SMTPApiError": Outcome("rejected", "permanent", "other"),
    "TemplateRenderingFailed": Outcome("rejected", "permanent", "other"),
    "SpamComplaint": Outcome("complained"),
    "Unsubscribe": Outcome("unsubscribed"),
    "Subscribe": Outcome("resubscribed"),
    # An automatic reply (out of office, an address change notice) came back: it arrived.
    "AutoResponder": Outcome("delivered"),
    "AddressChange": Outcome("delivered"),
    "OpenRelayTest": Outcome("unknown"),
    "InboundError": Outcome("unknown"),
    "Unknown": Outcome("unknown"),
}

# The record types and the field holding each one's time.
RECORD_TIMES: dict[str, str] = {
    "Delivery": "DeliveredAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "SubscriptionChange": "ChangedAt",
}


def verify_basic_auth(secret: str | None, authorization: str | None,
                      user: str = DEFAULT_USER) -> None:
    """Check the request's ``Authorization: Basic …`` against the configured credentials.

    :raises NotConfigured: (403) no secret is set: webhooks are refused, never taken unchecked.
    :raises SignatureError: (401) the header is missing, malformed or names other credentials.
    """
    if not secret or not secret.strip():
        raise NotConfigured(f"Postmark webhooks are refused: {SECRET_SETTING} is not set")
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise SignatureError("the request has no HTTP basic auth: put the user and secret in "
                             "the webhook URL set in Postmark")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the Authorization header is not base64") from None
    expected = f"{user}:{secret.strip()}".encode("utf-8")
    if not hmac.compare_digest(given, expected):
        raise SignatureError("the webhook's basic-auth user or secret is wrong")


def parse_events(raw_body: bytes) -> list[ProviderEvent]:
    """The normalized event of one webhook body: a one-element list, since Postmark posts one
    record per request.

    :raises WebhookError: (400) the body is not a JSON object with a ``RecordType`` and its
        time field. A ``RecordType`` helpdesk does not know is an ``unknown`` event.
    """
    return [to_event(read_json(raw_body))]


def to_event(record: Any) -> ProviderEvent:
    """One Postmark webhook record as a normalized event."""
    if not isinstance(record, dict):
        raise WebhookError(f"the body must be a JSON object, not {type(record).__name__}")
    kind = text_of(record.get("RecordType"))
    if kind == "Inbound" or "FromFull" in record:
        raise WebhookError("this is an inbound-message webhook: point Postmark's inbound "
                           "webhook elsewhere, helpdesk reads only outbound events")
    if not kind:
        raise WebhookError("the record has no RecordType")
    # A record type Postmark adds later is kept as "unknown", with whichever time it carries.
    field = RECORD_TIMES.get(kind) or next(
        (f for f in dict.fromkeys(RECORD_TIMES.values()) if f in record), "ReceivedAt")
    outcome = _outcome(kind, record)
    return ProviderEvent(
        provider=PROVIDER,
        type=outcome.type,
        event_id=_event_id(kind, record),
        occurred_at=parse_iso_timestamp(record.get(field), what=field),
        correlation_id=_metadata(record).get(CORRELATION_VARIABLE),
        message_id=text_of(record.get("MessageID")),
        recipient=text_of(record.get("Recipient")) or text_of(record.get("Email")),
        severity=outcome.severity,
        reason_code=outcome.reason_code,
        reason=_reason(kind, record),
        mta_response=text_of(record.get("Details")) if kind in ("Bounce", "Delivery") else None,
        raw=record,
    )


def _outcome(kind: str, record: dict) -> Outcome:
    if kind == "Delivery":
        return Outcome("delivered")
    if kind == "Open":
        return Outcome("opened")
    if kind == "Click":
        return Outcome("clicked")
    if kind == "SpamComplaint":
        return Outcome("complained")
    if kind not in RECORD_TIMES:
        return Outcome("unknown")
    if kind == "SubscriptionChange":
        if record.get("SuppressSending") is not True:
            return Outcome("resubscribed")
        because = record.get("SuppressionReason")
        if because == "HardBounce":
            return Outcome("bounced", "permanent", "suppressed")
        return Outcome("complained" if because == "SpamComplaint" else "unsubscribed")
    return BOUNCE_TYPES.get(text_of(record.get("Type")) or "Unknown", Outcome("unknown"))


def _event_id(kind: str, record: dict) -> str:
    """Bounces and spam complaints carry Postmark's bounce ``ID``; the other records carry no
    id of their own, so their content is the key (the same record posted again hashes the
    same)."""
    bounce_id = text_of(record.get("ID"))
    if kind in ("Bounce", "SpamComplaint") and bounce_id:
        return f"{kind.lower()}:{bounce_id}"
    return content_id(record)


def _metadata(record: dict) -> dict[str, str]:
    metadata = record.get("Metadata")
    if not isinstance(metadata, dict):
        return {}
    return {key: text for key, value in metadata.items() if (text := text_of(value))}


def _reason(kind: str, record: dict) -> str | None:
    if kind == "Bounce":
        name = text_of(record.get("Name")) or text_of(record.get("Type")) or "Bounce"
        description = text_of(record.get("Description"))
        return f"{name}: {description}" if description else name
    if kind == "SpamComplaint":
        return "the recipient marked the email as spam"
    if kind == "Click":
        return text_of(record.get("OriginalLink"))
    if kind not in RECORD_TIMES:
        return f"Postmark record {kind[:100]!r}, not one helpdesk knows"
    if kind == "SubscriptionChange":
        origin = text_of(record.get("Origin")) or "Postmark"
        if record.get("SuppressSending") is True:
            because = text_of(record.get("SuppressionReason")) or "no reason given"
            return f"sending suppressed ({because}), by {origin}"
        return f"sending reactivated, by {origin}"
    return None
