"""Amazon SES events as Amazon SNS delivers them over HTTPS: checking the SNS message (its topic,
its signing certificate's address, its signature) and reading the SES event inside. Plain
functions, no Flask and no network, so each can be tested on its own; fetching the certificate
is ``helpdesk_ses.certificates``.

SNS posts one JSON message per request: ``Type`` is ``SubscriptionConfirmation`` (once, when the
topic is subscribed to our URL), ``Notification`` (an SES event record, as JSON text, in
``Message``) or ``UnsubscribeConfirmation``. Each is signed with RSA over a canonical string of
its fields (``SignatureVersion`` 1: SHA1, 2: SHA256) by the key of the certificate at
``SigningCertURL``, which must be an ``https`` URL on an Amazon SNS host.

An SES event record names its kind in ``eventType`` (event publishing through a configuration
set) or ``notificationType`` (an identity's feedback notifications), and carries the send's
message tags in ``mail.tags``: ``helpdesk_delivery`` names our delivery.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Iterable, NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from helpdesk.contract import (CORRELATION_HEADER, CORRELATION_VARIABLE, NotConfigured,
                               ProviderEvent, SignatureError, WebhookError, check_fresh,
                               parse_iso_timestamp, read_json, text_of)

PROVIDER = "ses"
TOPICS_SETTING = "HELPDESK_SES_SNS_TOPIC_ARNS"
# sns.<region>.amazonaws.com, and the China regions' sns.<region>.amazonaws.com.cn
SNS_HOST = re.compile(r"sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?")

# The fields each kind of SNS message signs, in this order, as "name\nvalue\n" for each present.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
SIGNATURE_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class Outcome(NamedTuple):
    """What an SES event (or a bounce's type and subtype) means for us."""

    type: str  # a normalized event type
    severity: str | None = None
    reason_code: str | None = None  # a key of helpdesk.contract.REASON_CODES


EVENT_TYPES: dict[str, Outcome] = {
    "Send": Outcome("accepted"),
    "Delivery": Outcome("delivered"),
    "Bounce": Outcome("bounced", "permanent", "other"),  # refined by bounce_outcome
    "Complaint": Outcome("complained"),
    # SES refused to send it (a virus in the content): it never left.
    "Reject": Outcome("rejected", "permanent", "spam"),
    "DeliveryDelay": Outcome("deferred", "temporary", "temporary"),  # refined by its delayType
    "Open": Outcome("opened"),
    "Click": Outcome("clicked"),
    # A template could not be rendered: nothing was sent.
    "Rendering Failure": Outcome("refused", "permanent", "other"),
    "Subscription": Outcome("unknown"),
}

# Bounce subtypes SES documents, by the reason code they mean. "Suppressed" (the global
# suppression list) and "OnAccountSuppressionList" (ours) mean SES never tried the address.
BOUNCE_SUBTYPES: dict[str, str] = {
    "General": "other",
    "NoEmail": "user_unknown",
    "Suppressed": "suppressed",
    "OnAccountSuppressionList": "suppressed",
    "MailboxFull": "mailbox_full",
    "MessageTooLarge": "too_large",
    "ContentRejected": "spam",
    "AttachmentRejected": "spam",
    "UnsubscribedRecipient": "suppressed",
}

DELAY_TYPES: dict[str, str] = {
    "MailboxFull": "mailbox_full",
    "SpamDetected": "spam",
    "IPFailure": "policy",
    "SendingDeliverabilityIssue": "policy",
}


def bounce_outcome(bounce_type: str | None, subtype: str | None) -> Outcome:
    """``Permanent`` is a hard bounce; ``Transient`` a soft one, which SES retries and which
    never makes a status "bounced"; ``Undetermined`` is a bounce SES could not classify, shown
    as a bounce without claiming it is for good."""
    reason_code = BOUNCE_SUBTYPES.get(subtype or "", "other")
    if bounce_type == "Permanent":
        return Outcome("bounced", "permanent", reason_code)
    if bounce_type == "Transient":
        return Outcome("deferred", "temporary",
                       "temporary" if reason_code == "other" else reason_code)
    return Outcome("bounced", None, reason_code)


# --- the SNS message --------------------------------------------------------------------------

def allowed_topics(setting: Any) -> frozenset[str]:
    """The topic ARNs a setting allows: a list, or one text of ARNs separated by commas or
    spaces."""
    if isinstance(setting, str):
        return frozenset(arn for arn in re.split(r"[\s,]+", setting) if arn)
    if isinstance(setting, (list, tuple, set, frozenset)):
        return frozenset(str(arn).strip() for arn in setting if str(arn).strip())
    return frozenset()


def read_envelope(raw_body: bytes, topics: Iterable[str]) -> dict:
    """The SNS message of a request, once its kind, its fields and its topic are acceptable
    (the signature is checked apart, by ``verify_signature``).

    :raises NotConfigured: (403) no topic is allowed: every message is refused.
    :raises WebhookError: 400 for a body that is not an SNS message, 403 for a message from a
        topic the settings do not allow.
    """
    topics = frozenset(topics)
    if not topics:
        raise NotConfigured(f"Amazon SES webhooks are refused: {TOPICS_SETTING} is not set")
    envelope = read_json(raw_body)
    if not isinstance(envelope, dict):
        raise WebhookError(f"the body must be an SNS message (a JSON object), not a "
                           f"{type(envelope).__name__}")
    kind = envelope.get("Type")
    if kind not in SIGNED_FIELDS:
        raise WebhookError(f"not an SNS message Type helpdesk takes: {str(kind)[:60]!r}")
    for name in [f for f in SIGNED_FIELDS[kind] if f != "Subject"]:
        if not isinstance(envelope.get(name), str) or not envelope[name]:
            raise WebhookError(f"the SNS {kind} has no {name}")
    for name in ("SignatureVersion", "Signature", "SigningCertURL"):
        if not isinstance(envelope.get(name), str) or not envelope[name]:
            raise SignatureError(f"the SNS {kind} is not signed: it has no {name}")
    if "Subject" in envelope and not isinstance(envelope["Subject"], str):
        raise WebhookError("the SNS Subject must be text")
    if envelope["TopicArn"] not in topics:
        raise WebhookError(f"SNS topic {envelope['TopicArn'][:200]!r} is not one of "
                           f"{TOPICS_SETTING}", 403)
    return envelope


def check_sns_url(url: Any, what: str) -> str:
    """An ``https`` URL on an Amazon SNS host (``sns.<region>.amazonaws.com``), port 443.

    :raises SignatureError: any other URL: a certificate or a confirmation anywhere else could
        be anyone's.
    """
    parts = urlsplit(url if isinstance(url, str) else "")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme != "https" or not parts.hostname or not SNS_HOST.fullmatch(parts.hostname)
            or parts.username is not None or port not in (None, 443)):
        raise SignatureError(f"the SNS {what} is not an https URL on an Amazon SNS host: "
                             f"{str(url)[:200]!r}")
    return url


def check_timestamp(envelope: dict, *, tolerance: float, now: float | None = None) -> None:
    """Refuse a message signed longer ago (or further ahead) than the tolerance.

    :raises SignatureError: its ``Timestamp`` is not an ISO 8601 time, or is stale.
    """
    try:
        signed_at = parse_iso_timestamp(envelope["Timestamp"], what="the SNS Timestamp")
    except WebhookError as error:
        raise SignatureError(str(error)) from None
    check_fresh(signed_at.timestamp(), tolerance=tolerance, now=now, what="the SNS Timestamp")


def string_to_sign(envelope: dict) -> bytes:
    """The canonical text SNS signs: each signed field present, as ``name\\nvalue\\n``."""
    fields = SIGNED_FIELDS[envelope["Type"]]
    return "".join(f"{name}\n{envelope[name]}\n" for name in fields
                   if name in envelope).encode("utf-8")


def load_signing_key(pem: bytes) -> rsa.RSAPublicKey:
    """The RSA public key of a signing certificate (PEM).

    :raises SignatureError: it is not a PEM certificate with an RSA key.
    """
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise SignatureError("the SNS signing certificate is not a PEM certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the SNS signing certificate has no RSA key")
    return key


def verify_signature(envelope: dict, key: rsa.RSAPublicKey) -> None:
    """Check the message's signature with the signing certificate's key.

    :raises SignatureError: an unknown ``SignatureVersion``, a signature that is not base64,
        or one that does not match the message.
    """
    algorithm = SIGNATURE_HASHES.get(envelope["SignatureVersion"])
    if algorithm is None:
        raise SignatureError(f"unknown SNS SignatureVersion "
                             f"{envelope['SignatureVersion'][:10]!r} (1 and 2 are known)")
    try:
        signature = base64.b64decode(envelope["Signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the SNS Signature is not base64") from None
    try:
        key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SignatureError("the SNS signature does not match the message") from None


# --- the SES event inside a notification ------------------------------------------------------

def parse_notification(envelope: dict) -> list[ProviderEvent]:
    """The normalized events of one verified SNS Notification: one per recipient the SES
    record names (one, for the emails helpdesk sends). Their ids are the SNS ``MessageId``
    (with the recipient's place when there are several), the dedupe key of SNS's retries.

    :raises WebhookError: (400) ``Message`` is not an SES event record.
    """
    record = read_json(envelope["Message"].encode("utf-8"))
    if not isinstance(record, dict):
        raise WebhookError("the SNS Message is not an SES event record (a JSON object)")
    name = text_of(record.get("eventType")) or text_of(record.get("notificationType"))
    if not name:
        raise WebhookError("the SES record has no eventType or notificationType")
    if name == "AmazonSnsSubscriptionSucceeded":  # SES's own test message when a topic is set
        return []
    mail = record.get("mail")
    if not isinstance(mail, dict):
        raise WebhookError(f"the SES {name} record has no \"mail\" object")
    detail = _detail(record, name)
    outcome = EVENT_TYPES.get(name, Outcome("unknown"))
    reason, mta_response = _reason(name, detail), None
    if name == "Bounce":
        outcome = bounce_outcome(text_of(detail.get("bounceType")),
                                 text_of(detail.get("bounceSubType")))
    elif name == "DeliveryDelay":
        code = DELAY_TYPES.get(text_of(detail.get("delayType")) or "", "temporary")
        outcome = Outcome("deferred", "temporary", code)
    elif name == "Delivery":
        mta_response = text_of(detail.get("smtpResponse"))
    stamp = next((value for value in (detail.get("timestamp"), mail.get("timestamp"),
                                      envelope.get("Timestamp")) if text_of(value)), None)
    occurred_at = parse_iso_timestamp(stamp, what=f"the SES {name} record's timestamp")
    recipients = _recipients(name, detail, mail)
    events = []
    for index, (address, diagnostic) in enumerate(recipients):
        suffix = f":{index}" if len(recipients) > 1 else ""
        events.append(ProviderEvent(
            provider=PROVIDER,
            type=outcome.type,
            event_id=envelope["MessageId"] + suffix,
            occurred_at=occurred_at,
            correlation_id=_correlation_id(mail),
            message_id=text_of(mail.get("messageId")),
            recipient=address,
            severity=outcome.severity,
            reason_code=outcome.reason_code,
            reason=reason if name in EVENT_TYPES else
            f"Amazon SES event {name[:100]!r}, not one helpdesk knows",
            mta_response=diagnostic or mta_response,
            raw=record,
        ))
    return events


def _detail(record: dict, name: str) -> dict:
    """The record's object for its kind: ``bounce``, ``deliveryDelay``, ``failure``…"""
    key = {"Rendering Failure": "failure", "DeliveryDelay": "deliveryDelay"}.get(
        name, name[:1].lower() + name[1:])
    detail = record.get(key)
    return detail if isinstance(detail, dict) else {}


def _recipients(name: str, detail: dict, mail: dict) -> list[tuple[str | None, str | None]]:
    """(address, diagnostic code) for each recipient the event is about."""
    listed = {"Bounce": "bouncedRecipients", "Complaint": "complainedRecipients",
              "DeliveryDelay": "delayedRecipients"}.get(name)
    if listed and isinstance(detail.get(listed), list):
        found = [(text_of(r.get("emailAddress")), text_of(r.get("diagnosticCode")))
                 for r in detail[listed] if isinstance(r, dict)]
        if found:
            return found
    addresses = detail.get("recipients") if name == "Delivery" else mail.get("destination")
    if isinstance(addresses, list):
        found = [(text_of(a), None) for a in addresses if text_of(a)]
        if found:
            return found
    return [(None, None)]


def _reason(name: str, detail: dict) -> str | None:
    if name == "Bounce":
        kind = text_of(detail.get("bounceType")) or "Undetermined"
        subtype = text_of(detail.get("bounceSubType"))
        return f"{kind} bounce ({subtype})" if subtype else f"{kind} bounce"
    if name == "DeliveryDelay":
        delay = text_of(detail.get("delayType")) or "delayed"
        until = text_of(detail.get("expirationTime"))
        return f"delivery delayed ({delay}); SES keeps trying until {until}" if until else \
            f"delivery delayed ({delay})"
    if name == "Complaint":
        feedback = text_of(detail.get("complaintFeedbackType"))
        said = "the recipient marked the email as spam"
        return f"{said} ({feedback})" if feedback else said
    if name == "Reject":
        return text_of(detail.get("reason"))
    if name == "Rendering Failure":
        return text_of(detail.get("errorMessage"))
    if name == "Click":
        return text_of(detail.get("link"))
    return None


def _correlation_id(mail: dict) -> str | None:
    """Our message tag (event publishing keeps it); else our header, when SES included the
    original headers."""
    tags = mail.get("tags")
    if isinstance(tags, dict):
        values = tags.get(CORRELATION_VARIABLE)
        if isinstance(values, list) and values and text_of(values[0]):
            return text_of(values[0])
    headers = mail.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if (isinstance(header, dict) and isinstance(header.get("name"), str)
                    and header["name"].lower() == CORRELATION_HEADER.lower()):
                return text_of(header.get("value"))
    return None
