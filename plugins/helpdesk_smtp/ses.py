"""Amazon SES notifications that arrive by email (an SNS topic with an email subscription): the
body is SES's JSON, a ``Bounce``, ``Complaint`` or ``Delivery`` notification.

Pure: the JSON read into the report shape the other readers give (``dsn.Recipient``s and the
original's header fields), no Flask.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import dsn, mime

# SES's bounce subtypes that say more than its diagnostic does.
SUBTYPE_WORDS = {
    "noemail": "no such mailbox", "mailboxfull": "mailbox full",
    "messagetoolarge": "message too large", "contentrejected": "content rejected as spam",
    "attachmentrejected": "attachment rejected",
    "suppressed": "on the suppression list", "onaccountsuppressionlist": "on the suppression list",
}


@dataclass
class Notification:
    kind: str  # "bounce" | "complaint" | "delivery"
    recipients: list[dsn.Recipient]
    original: mime.Fields = field(default_factory=dict)  # the sent message's headers
    feedback_type: str = ""
    message_id: str = ""  # SES's id of the sent message, as its API answered it


def read_notification(text: str) -> Notification | None:
    """The SES notification in a message's text; None when the text is not one."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or "notificationType" not in text:
        return None
    body = text[start:end + 1]
    for candidate in (body, body.replace("\n", "")):  # the mail may wrap the JSON's lines
        try:
            notice = json.loads(candidate)
            break
        except ValueError:
            continue
    else:
        return None
    if isinstance(notice, dict) and isinstance(notice.get("Message"), str):
        # The whole SNS envelope (a "raw message delivery" off): SES's notice is inside.
        try:
            notice = json.loads(notice["Message"])
        except ValueError:
            return None
    if not isinstance(notice, dict):
        return None
    kind = str(notice.get("notificationType") or notice.get("eventType") or "").lower()
    mail = notice.get("mail") if isinstance(notice.get("mail"), dict) else {}
    original: mime.Fields = {}
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and isinstance(header.get("name"), str):
            original.setdefault(header["name"].lower(), []).append(
                mime.clean(str(header.get("value", ""))))
    message_id = mail.get("messageId") if isinstance(mail.get("messageId"), str) else ""
    if kind == "bounce":
        return _bounce(notice.get("bounce"), original, message_id)
    if kind == "complaint":
        complaint = notice.get("complaint") if isinstance(notice.get("complaint"), dict) else {}
        return Notification("complaint", _people(complaint.get("complainedRecipients"),
                                                 "failed"), original,
                            feedback_type=str(complaint.get("complaintFeedbackType") or "abuse"),
                            message_id=message_id)
    if kind == "delivery":
        delivery = notice.get("delivery") if isinstance(notice.get("delivery"), dict) else {}
        return Notification("delivery", [dsn.Recipient(a, "delivered") for a in
                                         delivery.get("recipients") or [] if isinstance(a, str)],
                            original, message_id=message_id)
    return None


def _bounce(bounce: object, original: mime.Fields, message_id: str) -> Notification | None:
    if not isinstance(bounce, dict):
        return None
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    subtype = str(bounce.get("bounceSubType", "")).replace(" ", "").lower()
    recipients = _people(bounce.get("bouncedRecipients"), "failed" if permanent else "delayed")
    for recipient in recipients:
        words = SUBTYPE_WORDS.get(subtype)
        if words and words not in recipient.diagnostic.lower():
            recipient.diagnostic = f"{recipient.diagnostic} ({words})".strip()
    return Notification("bounce", recipients, original, message_id=message_id)


def _people(entries: object, action: str) -> list[dsn.Recipient]:
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), str):
            continue
        found.append(dsn.Recipient(
            address=dsn.address(entry["emailAddress"]), action=action,
            status=str(entry.get("status") or ""),
            diagnostic=dsn.untyped(mime.clean(str(entry.get("diagnosticCode") or "")))))
    return found
