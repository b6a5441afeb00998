"""Reading a message that came back to the SMTP provider's envelope sender: a bounce report of
any shape, a spam complaint, or something that is not a bounce at all.

- RFC 3464 delivery status notifications, in all their real-world variants (``dsn``);
- bounces written as prose, with no status part (``prose``);
- Amazon SES notifications by email (``ses``);
- ARF feedback reports (RFC 5965): a ``complained`` event for the recipient;
- auto-replies (RFC 3834, out-of-office), read receipts and anything else that is not a
  bounce: a ``NotABounce`` saying which.

Each failed recipient becomes one event: ``bounced`` (severity ``permanent``) when the address
was refused for good, ``deferred`` (``temporary``) otherwise, with a reason code from
``helpdesk.contract.REASON_CODES`` (see ``reasons``) and the server's words. The report is
matched to our delivery by the VERP address it came back to (``local+<correlation id>@domain``),
our ``X-Helpdesk-Delivery`` header in the returned original, or (by the core) the original's
Message-ID or the recipient's address; a report naming no delivery of ours still gives its
events (the core keeps them as unmatched).

Pure: the standard library's ``email`` package and our event shape, no Flask.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from email.message import Message
from email.utils import parsedate_to_datetime

from helpdesk.contract import CORRELATION_HEADER, NotABounce, ProviderEvent
from helpdesk.known_domains import split_public_suffix

from . import dsn, mime, prose, reasons, ses
from .dsn import MalformedReport

PROVIDER = "smtp"

# Headers by which an MTA says where it delivered the report: our VERP address shows here.
ADDRESSED_TO = ("delivered-to", "x-original-to", "envelope-to", "to", "x-envelope-to")
VERP = re.compile(r"\+([0-9a-f]{32})@", re.IGNORECASE)
CORRELATION_ID = re.compile(r"[0-9a-f]{32}", re.IGNORECASE)
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer|antwort)|autoreply|auto:|"
    r"out of (?:the )?office|\booo\b|vacation|away from|on leave|abwesenheit|"
    r"r[ée]ponse automatique|absence|risposta automatica|respuesta autom[aá]tica|"
    r"resposta autom[aá]tica|automatisch|autorespond|autosvar|automaattinen vastaus|"
    r"odpowied[zź] automatyczna|automatick[aá] odpov[eě]d|автоматический ответ|"
    r"自動応答|自動返信|自动回复|자동 회신|i am (?:out|away))", re.I)
AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-vacation")


def parse_bounce(raw: bytes, now: datetime | None = None) -> list[ProviderEvent] | NotABounce:
    """The events of one returned message; what it is when it is not a bounce or complaint
    report.

    :raises MalformedReport: (a ValueError) a report that cannot be read: cut short, or naming
        no recipient.
    """
    raw = mime.normalise_line_ends(raw)
    message = mime.read_message(raw)
    headers = mime.fields(message)
    now = now or datetime.now(timezone.utc)
    if _is_feedback(message):
        return _complaints(message, headers, raw, now)
    status = dsn.read_status_parts(message)
    text, copy = prose.split_original(prose.report_text(message))
    original = mime.returned_headers(message) or _pasted_headers(copy)
    ours = _our_addresses(headers, original)
    if status is not None:
        recipients = _with_prose(status.recipients, text, ours) or \
            _prose_recipients(headers, text, ours, original)
        if not recipients:
            raise MalformedReport("the delivery-status part names no recipient")
        return _events(recipients, headers, status.per_message, original, raw, now)
    notice = ses.read_notification(text)
    if notice is not None:
        return _notice_events(notice, headers, raw, now)
    if not _is_bounce(headers, text, original):
        if message.get_content_type() == "multipart/report" and \
                str(message.get_param("report-type", "")).lower() == "delivery-status":
            raise MalformedReport("the report has no message/delivery-status part"
                                  if message.is_multipart() else
                                  "the multipart/report has no parts: it is cut short or its "
                                  "boundary is wrong")
        return _what_it_is(message, headers, text)
    recipients = _prose_recipients(headers, text, ours, original)
    if not recipients:
        raise MalformedReport("the message reads as a bounce but names no recipient address")
    return _events(recipients, headers, {}, original, raw, now)


# --- kinds of message -------------------------------------------------------------------------

def _is_feedback(message: Message) -> bool:
    if message.get_content_type() == "multipart/report" and \
            str(message.get_param("report-type", "")).lower() == "feedback-report":
        return True
    return any(p.get_content_type() == "message/feedback-report" for p in mime.parts(message))


def _is_bounce(headers: mime.Fields, text: str, original: mime.Fields) -> bool:
    """Whether a message with no status part is a bounce: it reads as one and is not an
    auto-reply (some MTAs mark their bounces auto-replied too: a bounce's sender tells)."""
    if not prose.looks_like_bounce(headers, text, bool(original)):
        return False
    return not _is_auto_reply(headers) or \
        bool(prose.BOUNCE_SENDER.search(mime.first(headers, "from")))


def _what_it_is(message: Message, headers: mime.Fields, text: str) -> NotABounce:
    """Which kind of message that is not a bounce this is, for the log of a bounce mailbox."""
    kinds = {p.get_content_type() for p in mime.parts(message)}
    if "message/disposition-notification" in kinds:
        return NotABounce("a read receipt (RFC 8098), not a bounce report")
    if _is_auto_reply(headers):
        return NotABounce("an auto-reply (RFC 3834: out of office, vacation), not a bounce "
                          "report")
    if prose.DELIVERED.search(mime.first(headers, "subject")):
        return NotABounce("a delivery-success notice, not a bounce report")
    return NotABounce("not a bounce report (no delivery status, no words of failure)")


def _is_auto_reply(headers: mime.Fields) -> bool:
    """RFC 3834's Auto-Submitted: auto-replied, the older vacation headers, or an
    out-of-office subject."""
    submitted = mime.first(headers, "auto-submitted").lower()
    if submitted.startswith("auto-replied"):
        return True
    if any(name in headers for name in AUTO_REPLY_HEADERS):
        return True
    if mime.first(headers, "precedence").lower() == "auto_reply":
        return True
    return bool(AUTO_REPLY_SUBJECT.search(mime.first(headers, "subject")))


# --- recipients -------------------------------------------------------------------------------

def _our_addresses(headers: mime.Fields, original: mime.Fields) -> set[str]:
    """Addresses that are never the failed recipient: the report's own (and a mailing list's
    control addresses, when a list sent it), and the sender's."""
    ours = set()
    for found, names in ((headers, ("from", "to", "cc", "reply-to", "return-path", "sender",
                                    "errors-to", *prose.LIST_CONTROL_HEADERS)),
                         (original, ("from", "sender", "reply-to", "return-path",
                                     "errors-to"))):
        for name in names:
            for value in found.get(name, []):
                ours.update(a.lower() for a in prose.ADDRESS.findall(value))
    return ours


def _prose_recipients(headers: mime.Fields, text: str, ours: set[str],
                      original: mime.Fields) -> list[dsn.Recipient]:
    action = "delayed" if prose.delayed(text, mime.first(headers, "subject")) else "failed"
    failed = prose.failed_addresses(text, ours) or _completed_names(text, headers, original)
    if not failed:
        # Some reports name the failed address only where it equals their own To (a report
        # forwarded, or written to the wrong party): better that than nothing.
        failed = prose.failed_addresses(text, _our_addresses({}, original))
    if not failed:
        # Only the headers name the recipient: Exim's X-Failed-Recipients, which says so
        # outright (even where the report also goes to that address, or the original was
        # written from it), else the original's To when the report quotes it.
        addresses = [a for value in headers.get("x-failed-recipients", [])
                     for a in prose.ADDRESS.findall(value)] or \
            [a for value in original.get("to", []) for a in prose.ADDRESS.findall(value)
             if a.lower() not in ours]
        failed = [prose.Failed(a, text, prose.server_words(text)) for a in addresses]
    return [dsn.Recipient(address=f.address, action=action,
                          status=reasons.status_code(f.server_words, f.text),
                          diagnostic=f.server_words or mime.clean(f.text)[:500],
                          context=f.text, guessed=f.guessed)
            for f in failed]


def _completed_names(text: str, headers: mime.Fields,
                     original: mime.Fields) -> list[prose.Failed]:
    """Recipients a report names by their local part alone, completed: the address with that
    local part in its X-Failed-Recipients or the returned original's To or Cc, else (when no
    header names a failed address) that name at the organisation of the mail system that wrote
    the report, which speaks so of its own users (AOL's screen names)."""
    names = prose.bare_names(text)
    if not names:
        return []
    failed_header = headers.get("x-failed-recipients", [])
    sent_to = {a.split("@")[0].lower(): a
               for value in failed_header + original.get("to", []) + original.get("cc", [])
               for a in prose.ADDRESS.findall(value)}
    system = [a for a in prose.ADDRESS.findall(mime.first(headers, "from"))
              if prose.SYSTEM_MAILBOX.match(a.split("@")[0])]
    split = split_public_suffix(system[0].split("@")[1].lower()) if system else None
    domain = f"{split[0].rpartition('.')[2]}.{split[1]}" if split else ""
    failed = []
    for name in names:
        if name.lower() in sent_to:
            failed.append(prose.Failed(sent_to[name.lower()], text, prose.server_words(text)))
        elif domain and not failed_header:
            failed.append(prose.Failed(f"{name}@{domain}", text, prose.server_words(text),
                                       guessed=True))
    return failed


def _with_prose(recipients: list[dsn.Recipient], text: str,
                ours: set[str]) -> list[dsn.Recipient]:
    """Status groups completed from the report's text, which often says more: the address
    where a group names a program or a file instead, the server's words where a group gives
    no Diagnostic-Code, and the lines about each recipient for its reason."""
    about = prose.failed_addresses(text, ours)
    by_address = {f.address.lower(): f for f in about}
    named = {a.lower() for r in recipients for a in (r.address, r.final) if a}
    spare = [f for f in about if f.address.lower() not in named]
    complete = []
    for recipient in recipients:
        if "@" not in recipient.address:
            if not spare:
                continue
            recipient.address = spare.pop(0).address
        found = by_address.get(recipient.address.lower()) or \
            by_address.get(recipient.final.lower())
        if found is None and len(recipients) == 1:
            found = prose.Failed(recipient.address, text, prose.server_words(text))
        if found is not None:
            recipient.context = found.text
            if not recipient.diagnostic:
                recipient.diagnostic = found.server_words or mime.clean(found.text)[:500]
        complete.append(recipient)
    return complete


def _pasted_headers(copy: str) -> mime.Fields:
    """The header fields of an original message pasted into the report's text."""
    lines = copy.split("\n")
    start = next((i for i, line in enumerate(lines) if prose.HEADER_LINE.match(line)), None)
    if start is None:
        return {}
    head = []
    for line in lines[start:]:
        if not (prose.HEADER_LINE.match(line) or line[:1] in " \t") or not line.strip():
            break
        head.append(line)
    blocks = mime.field_blocks("\n".join(head))
    return blocks[0] if blocks else {}


# --- events -----------------------------------------------------------------------------------

def _events(recipients: list[dsn.Recipient], headers: mime.Fields, per_message: mime.Fields,
            original: mime.Fields, raw: bytes, now: datetime,
            message_id: str = "") -> list[ProviderEvent]:
    """``message_id``: the sent message's id as the service that sent it knows it, when the
    report says (else the returned original's Message-ID)."""
    correlation_id = _correlation_id(headers, per_message, original)
    message_id = (message_id or mime.first(original, "message-id")
                  or mime.first(per_message, "x-original-message-id")).strip() or None
    report_id = mime.first(headers, "message-id")
    # The same report ingested twice gives the same ids; without a Message-ID, its bytes do.
    basis = report_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    # When it happened: the last attempt, else when the report was written, else when the
    # message reached the reporting MTA.
    reported_at = (_date(mime.first(headers, "date"))
                   or _date(mime.first(per_message, "arrival-date")) or now)
    reporting_mta = dsn.untyped(mime.first(per_message, "reporting-mta"))
    events = []
    seen = set()
    for recipient in recipients:
        key = (recipient.address.lower(), recipient.action)
        if key in seen:
            continue
        seen.add(key)
        if recipient.action == "delivered":
            event_type, severity, code, status = "delivered", None, None, recipient.status
        else:
            verdict = reasons.verdict(recipient.status, recipient.diagnostic,
                                      given_up=recipient.action in ("failed", "expired"),
                                      context=recipient.context)
            status = recipient.status or verdict.status
            code = "expired" if recipient.action == "expired" and not verdict.hard \
                else verdict.reason_code
            event_type = "bounced" if verdict.hard else "deferred"
            severity = "permanent" if verdict.hard else "temporary"
        diagnostic = recipient.diagnostic
        identity = f"{basis}\n{recipient.address}\n{recipient.action}"
        events.append(ProviderEvent(
            provider=PROVIDER, type=event_type,
            event_id=f"dsn:{recipient.action}:"
                     f"{hashlib.sha256(identity.encode('utf-8', 'surrogatepass')).hexdigest()}",
            occurred_at=_date(recipient.last_attempt) or reported_at,
            correlation_id=correlation_id, message_id=message_id, recipient=recipient.address,
            severity=severity, reason_code=code, recipient_guessed=recipient.guessed,
            reason=diagnostic or None,
            mta_response=" ".join(v for v in (status, diagnostic) if v) or None,
            raw={"action": recipient.reported_action or recipient.action, "status": status or None,
                 "diagnostic_code": diagnostic or None,
                 "reporting_mta": reporting_mta or None,
                 "remote_mta": recipient.remote_mta or None,
                 "final_recipient": recipient.final or None,
                 "dsn_message_id": report_id or None},
        ))
    return events


def _complaints(message: Message, headers: mime.Fields, raw: bytes,
                now: datetime) -> list[ProviderEvent]:
    """An ARF report (RFC 5965): a ``complained`` event for the recipient who complained."""
    report: mime.Fields = {}
    for part in mime.parts(message):
        if part.get_content_type() == "message/feedback-report":
            blocks = mime.field_blocks(dsn.status_text(part))
            report = {k: v for block in blocks for k, v in block.items()}
            break
    original = mime.returned_headers(message)
    named = report.get("original-rcpt-to", []) or original.get("to", []) or \
        report.get("removal-recipient", [])
    addresses: list[str | None] = [a for value in named for a in prose.ADDRESS.findall(value)]
    if not addresses:
        # Feedback loops often redact the complainer's address ("undisclosed", "redacted@"):
        # the returned original's Message-ID or our header still names the delivery.
        if not (mime.first(original, "message-id") or _correlation_id({}, {}, original)):
            raise MalformedReport("the feedback report names no recipient and returns no "
                                  "Message-ID of the original")
        addresses = [None]
    occurred_at = _date(mime.first(report, "arrival-date")) or \
        _date(mime.first(headers, "date")) or now
    return _complaint_events(addresses, mime.first(report, "feedback-type") or "abuse",
                             mime.first(report, "user-agent"), original, headers, raw,
                             occurred_at)


def _notice_events(notice: ses.Notification, headers: mime.Fields, raw: bytes,
                   now: datetime) -> list[ProviderEvent]:
    if not notice.recipients:
        raise MalformedReport(f"the Amazon SES {notice.kind} notification names no recipient")
    if notice.kind == "complaint":
        return _complaint_events([r.address for r in notice.recipients], notice.feedback_type,
                                 "Amazon SES", notice.original, headers, raw,
                                 _date(mime.first(headers, "date")) or now, notice.message_id)
    return _events(notice.recipients, headers, {}, notice.original, raw, now, notice.message_id)


def _complaint_events(addresses: list[str | None], feedback_type: str, user_agent: str,
                      original: mime.Fields, headers: mime.Fields, raw: bytes,
                      occurred_at: datetime, message_id: str = "") -> list[ProviderEvent]:
    basis = mime.first(headers, "message-id") or "sha256:" + hashlib.sha256(raw).hexdigest()
    correlation_id = _correlation_id({}, {}, original)
    return [ProviderEvent(
        provider=PROVIDER, type="complained",
        event_id="arf:" + hashlib.sha256(f"{basis}\n{a or ''}".encode(
            "utf-8", "surrogatepass")).hexdigest(),
        occurred_at=occurred_at, correlation_id=correlation_id,
        message_id=message_id or mime.first(original, "message-id") or None, recipient=a,
        reason=f"feedback report: {feedback_type}", reason_code="spam",
        raw={"feedback_type": feedback_type, "user_agent": user_agent or None,
             "dsn_message_id": mime.first(headers, "message-id") or None},
    ) for a in dict.fromkeys(addresses)]


def _correlation_id(headers: mime.Fields, per_message: mime.Fields,
                    original: mime.Fields) -> str | None:
    """Our delivery's id: from the VERP address the report came back to, or the envelope id,
    else from our header in the returned original."""
    addressed = [v for name in ADDRESSED_TO for v in headers.get(name, [])]
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


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the zone is unknown; RFC 5322 says to read it as UTC
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)
