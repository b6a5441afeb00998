"""Reading asynchronous bounce reports: RFC 3464 delivery status notifications
(``multipart/report; report-type=delivery-status``) that come back to the SMTP provider's
envelope sender.

Pure: the standard library's ``email`` package and our event shape, no Flask. Each
per-recipient group of the report becomes one event; the report is matched to our delivery by
the VERP envelope sender it was addressed to (``local+<correlation id>@domain``), or by our
``X-Helpdesk-Delivery`` header in the returned original. A report that names no delivery of ours
still gives its events (with no correlation id): the core keeps them as unmatched.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime

from helpdesk.contract import CORRELATION_HEADER, ProviderEvent

PROVIDER = "smtp"

STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")
# The returned original: whole, or its headers only (RFC 3462, RFC 6533).
RETURNED_PARTS = ("message/rfc822", "message/global", "text/rfc822-headers",
                  "message/global-headers")

# RFC 3464 section 2.3.3: the Action field, to our event type and severity.
ACTIONS: dict[str, tuple[str, str | None]] = {
    "failed": ("bounced", "permanent"),
    "delayed": ("deferred", "temporary"),
    "delivered": ("delivered", None),
    "relayed": ("delivered", None),
    "expanded": ("delivered", None),
}

# Headers by which an MTA says where it delivered the report: our VERP address shows here.
ADDRESSED_TO = ("delivered-to", "x-original-to", "envelope-to", "to")
VERP = re.compile(r"\+([0-9a-f]{32})@", re.IGNORECASE)
CORRELATION_ID = re.compile(r"[0-9a-f]{32}", re.IGNORECASE)
SMTP_REPLY_CODE = re.compile(r"([245]\d\d)[- ](\d\.\d{1,3}\.\d{1,3})?\s*")
TYPED_VALUE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9.+-]*)\s*;\s*(.*)$", re.DOTALL)


class MalformedReport(ValueError):
    """A delivery status report that cannot be read (cut short, or missing its required
    fields): nothing of it may be stored."""


def parse_dsn(raw: bytes, now: datetime | None = None) -> list[ProviderEvent] | None:
    """The events of one delivery status notification; None when ``raw`` is not one.

    Raises ``MalformedReport`` for a report that says it is one but cannot be read.
    """
    report = message_from_bytes(raw, policy=policy.default)
    if report.get_content_type() != "multipart/report" or \
            str(report.get_param("report-type", "")).lower() != "delivery-status":
        return None
    if not report.is_multipart():
        raise MalformedReport("the multipart/report has no parts: it is cut short or its "
                              "boundary is wrong")
    parts = list(report.iter_parts())
    status_part = next((p for p in parts if p.get_content_type() in STATUS_PARTS), None)
    if status_part is None:
        raise MalformedReport("the report has no message/delivery-status part")
    per_message, per_recipient = _field_groups(status_part)
    if not per_recipient:
        raise MalformedReport("the delivery-status part names no recipient")
    for number, group in enumerate(per_recipient, 1):
        if not _first(group, "action"):
            raise MalformedReport(f"recipient group {number} has no Action field: the report "
                                  "is cut short")
        if not (_first(group, "final-recipient") or _first(group, "original-recipient")):
            raise MalformedReport(f"recipient group {number} has no Final-Recipient field")

    report_fields = _fields(report)
    original = _returned_original(parts)
    correlation_id = _correlation_id(report_fields, per_message, original)
    message_id = _first(original, "message-id") or _first(per_message, "x-original-message-id")
    dsn_message_id = _first(report_fields, "message-id")
    # The same report ingested twice gives the same ids; without a Message-ID, its bytes do.
    basis = dsn_message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    report_date = _date(_first(report_fields, "date"))
    arrival = _date(_first(per_message, "arrival-date"))
    reporting_mta = _untyped(_first(per_message, "reporting-mta"))

    events = []
    for group in per_recipient:
        action = _first(group, "action").split()[0].lower()
        if action not in ACTIONS:
            continue
        event_type, severity = ACTIONS[action]
        recipient = _address(_first(group, "final-recipient")
                             or _first(group, "original-recipient"))
        status = _first(group, "status")
        diagnostic = _one_reply(_untyped(_first(group, "diagnostic-code")))
        # When it happened: the last attempt, else when the report was written, else when the
        # message reached the reporting MTA.
        occurred_at = (_date(_first(group, "last-attempt-date")) or report_date or arrival
                       or now or datetime.now(timezone.utc))
        key = f"{basis}\n{recipient}\n{action}".encode("utf-8", "surrogatepass")
        events.append(ProviderEvent(
            provider=PROVIDER, type=event_type,
            event_id=f"dsn:{action}:{hashlib.sha256(key).hexdigest()}",
            occurred_at=occurred_at, correlation_id=correlation_id,
            message_id=message_id or None,
            recipient=recipient or None, severity=severity,
            reason=diagnostic or None,
            mta_response=" ".join(v for v in (status, diagnostic) if v) or None,
            raw={"action": action, "status": status or None,
                 "diagnostic_code": diagnostic or None,
                 "reporting_mta": reporting_mta or None,
                 "remote_mta": _untyped(_first(group, "remote-mta")) or None,
                 "dsn_message_id": dsn_message_id or None},
        ))
    return events


# --- reading the parts ------------------------------------------------------------------------

Fields = dict[str, list[str]]


def _text(value: str) -> str:
    """One clean line: unfolded, control characters dropped, undeclared 8-bit bytes read as
    UTF-8 or, failing that, Latin-1 (what MTAs put in diagnostics in practice)."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        data = value.encode("utf-8", "surrogateescape")
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = data.decode("latin-1")
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def _fields(message: Message | None) -> Fields:
    """A message's header fields by lower-cased name, read raw (never through the header
    parser, which can trip on the odd values bounce reports carry)."""
    found: Fields = {}
    if message is None:
        return found
    for name, value in message.raw_items():
        found.setdefault(name.strip().lower(), []).append(_text(str(value)))
    return found


def _first(fields: Fields, name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _field_groups(part: Message) -> tuple[Fields, list[Fields]]:
    """The per-message fields and the per-recipient groups of a delivery-status part."""
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        blocks = []
    if part.get_content_type() == "message/global-delivery-status" and len(blocks) == 1:
        # RFC 6533: the parser reads it like an enclosed message, the first group as its
        # header and every other group as its body.
        body = blocks[0].get_payload(decode=True)
        if isinstance(body, bytes):
            parser = BytesHeaderParser(policy=policy.default)
            blocks = blocks[:1] + [parser.parsebytes(block)
                                   for block in re.split(rb"\r?\n[ \t]*\r?\n", body.strip())]
    groups = [_fields(block) for block in blocks if isinstance(block, Message)]
    groups = [g for g in groups if g]
    if not groups:
        return {}, []
    first = groups[0]
    if "action" in first or "final-recipient" in first:
        return {}, groups  # no per-message group: some MTAs leave it out
    return first, groups[1:]


def _returned_original(parts: list[Message]) -> Fields:
    """The header fields of the returned original message, whole or headers only."""
    for part in parts:
        if part.get_content_type() not in RETURNED_PARTS:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload:  # the parser read it as an enclosed message
            return _fields(payload[0])
        body = part.get_payload(decode=True)
        if isinstance(body, bytes):
            return _fields(BytesHeaderParser(policy=policy.default).parsebytes(body))
    return {}


def _correlation_id(report: Fields, per_message: Fields, original: Fields) -> str | None:
    """Our delivery's id: from the VERP address the report came back to, or the envelope id,
    else from our header in the returned original."""
    addressed = [v for name in ADDRESSED_TO for v in report.get(name, [])]
    addressed += per_message.get("x-postfix-sender", []) + original.get("return-path", [])
    for value in addressed:
        found = VERP.search(value)
        if found:
            return found.group(1).lower()
    for value in per_message.get("original-envelope-id", []) + \
            original.get(CORRELATION_HEADER.lower(), []):
        value = value.strip().strip("<>")
        if CORRELATION_ID.fullmatch(value):
            return value.lower()
    return None


def _untyped(value: str) -> str:
    """``smtp; 550 5.1.1 ...`` → ``550 5.1.1 ...`` (the type before the semicolon dropped)."""
    typed = TYPED_VALUE.match(value)
    return (typed.group(2) if typed else value).strip()


def _one_reply(text: str) -> str:
    """A multi-line SMTP reply read as one: ``550-5.1.1 a 550-5.1.1 b 550 5.1.1 c`` →
    ``550-5.1.1 a b c`` (the code repeated on each line says nothing new)."""
    code = SMTP_REPLY_CODE.match(text)
    if not code:
        return text
    repeated = re.compile(rf"\s{code.group(1)}[- ]{re.escape(code.group(2) or '')}\s+")
    head, rest = text[:code.end()], text[code.end():]
    return head + repeated.sub(" ", rest).strip() if rest else text


def _address(value: str) -> str:
    return _untyped(value).strip().strip("<>").strip()


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": the zone is unknown; RFC 5322 says to read it as UTC
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)
