"""Reading RFC 3464 delivery status fields as real MTAs write them: the
``message/delivery-status`` part anywhere in the message (``multipart/report`` or not, nested,
without ``report-type``), groups left out or run together, folded or unfolded multi-line
``Diagnostic-Code``, non-standard ``Action`` values, and the same fields written inline in the
text of a report that has no status part at all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from . import mime

# RFC 3464 section 2.3.3, and the variants servers write.
ACTIONS = {
    "failed": "failed", "failure": "failed", "fail": "failed", "failed permanently": "failed",
    "bounced": "failed", "bounce": "failed", "undeliverable": "failed", "rejected": "failed",
    "expired": "expired", "delayed": "delayed", "delay": "delayed", "deferred": "delayed",
    "delivered": "delivered", "relayed": "delivered", "expanded": "delivered",
    "success": "delivered", "deliverable": "delivered",
}
PER_MESSAGE_FIELDS = {"reporting-mta", "arrival-date", "received-from-mta",
                      "original-envelope-id", "x-postfix-queue-id"}
STATUS_CLASSES = {"5": "failed", "4": "delayed", "2": "delivered"}
INLINE_FIELDS = re.compile(r"^(?:final|original)-recipient[ \t]*:", re.I | re.M)


class MalformedReport(ValueError):
    """A bounce report that cannot be read (cut short, or missing what it must carry): nothing
    of it may be stored."""


@dataclass
class Recipient:
    """What a report says about one recipient."""

    address: str  # the address we sent to
    action: str  # "failed" | "expired" | "delayed" | "delivered"
    final: str = ""  # the Final-Recipient, where the report names another (an alias, a forward)
    reported_action: str = ""  # the Action field as written
    last_attempt: str = ""
    context: str = ""  # the report's prose about this recipient, for its reason
    status: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    guessed: bool = False  # the address's domain was guessed (the report named its local part)


@dataclass
class StatusFields:
    per_message: mime.Fields
    recipients: list[Recipient]


def untyped(value: str) -> str:
    """``smtp; 550 5.1.1 ...`` → ``550 5.1.1 ...`` (the type before the semicolon dropped)."""
    head, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9][A-Za-z0-9.+-]*\s*", head):
        return rest.strip()
    return value.strip()


def address(value: str) -> str:
    """The address of a recipient field: ``rfc822; <Ada@Example.org>`` → ``Ada@Example.org``."""
    value = untyped(value)
    found = re.search(r"<([^<>\s]+@[^<>\s]+)>", value) or \
        re.search(r"(?<![^\s|])([^\s<>|]+@[^\s<>|]+)", value)  # e.g. "|/bin/prog ada@example.org"
    return found.group(1) if found else ""


def _plain(found: str) -> bool:
    """An address as sent: not source-routed (``@relay:user@host``), with a dotted domain."""
    return bool(found) and not found.startswith("@") and "." in found.rpartition("@")[2]


def one_reply(text: str) -> str:
    """A multi-line SMTP reply read as one: ``550-5.1.1 a 550-5.1.1 b 550 5.1.1 c`` →
    ``550-5.1.1 a b c`` (the code repeated on each line says nothing new)."""
    code = re.match(r"([245]\d\d)[- ](\d\.\d{1,3}\.\d{1,3})?\s*", text)
    if not code:
        return text
    repeated = re.compile(rf"\s{code.group(1)}[- ]{re.escape(code.group(2) or '')}\s+")
    head, rest = text[:code.end()], text[code.end():]
    return head + repeated.sub(" ", rest).strip() if rest else text


def _action(group: mime.Fields, status: str) -> str | None:
    value = mime.first(group, "action").lower().strip()
    value = re.sub(r"\s*\(.*", "", value)
    if value in ACTIONS:
        return ACTIONS[value]
    word = value.split()[0] if value else ""
    if word in ACTIONS:
        return ACTIONS[word]
    # No Action, or one nobody defined: the status code's class still says what happened, but
    # beside an unknown Action only a failure or delay code is worth reading that way.
    klass = status[:1]
    if klass in ("4", "5") or (not value and klass == "2"):
        return STATUS_CLASSES[klass]
    return None


def read_groups(blocks: list[mime.Fields]) -> StatusFields:
    """The per-message fields and each recipient's report, from the field blocks of a status
    part. Raises ``MalformedReport`` for a group cut short: an Action without a recipient, or a
    recipient with neither Action nor Status."""
    per_message: mime.Fields = {}
    recipients: list[Recipient] = []
    number = 0
    for block in blocks:
        named = mime.first(block, "final-recipient") or mime.first(block, "original-recipient")
        if not named:
            if "action" in block or (recipients and "status" in block):
                raise MalformedReport(f"recipient group {number + 1} has no Final-Recipient "
                                      "field")
            if not recipients and not per_message and PER_MESSAGE_FIELDS & block.keys():
                per_message = block
            continue
        number += 1
        # The Original-Recipient is the address we sent to (RFC 3464 2.3.1); beside it the
        # Final-Recipient may be another that it was rewritten to (an alias, a forward).
        original = address(mime.first(block, "original-recipient"))
        final = address(mime.first(block, "final-recipient"))
        status = mime.first(block, "status").split()[0] if mime.first(block, "status") else ""
        action = _action(block, status)
        if action is None:
            if not mime.first(block, "action") and not status:
                raise MalformedReport(f"recipient group {number} has no Action field: the "
                                      "report is cut short")
            continue
        diagnostic = one_reply(untyped(" ".join(block.get("diagnostic-code", []))))
        recipients.append(Recipient(
            address=original if _plain(original) else final,
            final=final if _plain(original) and original.lower() != final.lower() else "",
            action=action, reported_action=mime.first(block, "action").lower(), status=status,
            diagnostic=diagnostic,
            remote_mta=untyped(mime.first(block, "remote-mta")),
            last_attempt=mime.first(block, "last-attempt-date")))
    return StatusFields(per_message, recipients)


def split_groups(text: str) -> str:
    """Recipient groups run together (no blank line between them) set apart: a group ends
    where a recipient field it already has comes again."""
    lines: list[str] = []
    named: set[str] = set()
    for line in text.split("\n"):
        if not line.strip():
            named = set()
        name = line.split(":", 1)[0].strip().lower()
        if name in ("final-recipient", "original-recipient"):
            if name in named and lines and lines[-1].strip():
                lines.append("")
                named = set()
            named.add(name)
        lines.append(line)
    return "\n".join(lines)


def status_text(part: Message) -> str:
    """The text of a delivery-status part, whatever the parser made of it."""
    return mime.body_text(part)


def read_status_parts(message: Message) -> StatusFields | None:
    """The delivery status of a message: its status parts, else status fields written inline
    in its text; None when it has neither."""
    found: StatusFields | None = None
    for into_returned in (False, True):  # a forwarded report carries its status inside
        for part in mime.parts(message, into_returned=into_returned):
            if part.get_content_type() not in mime.STATUS_PARTS:
                continue
            read = read_groups(mime.field_blocks(split_groups(status_text(part))))
            if found is None:
                found = read
            else:
                found.recipients += read.recipients
                found.per_message = found.per_message or read.per_message
        if found is not None:
            return found
    for part in mime.parts(message):
        if not mime.is_text(part):
            continue
        text = mime.body_text(part)
        found = INLINE_FIELDS.search(text)
        if found:
            # The group starts at its paragraph, which may put Action and Status first.
            start = text.rfind("\n\n", 0, found.start()) + 1
            read = read_groups(mime.field_blocks(split_groups(text[start:])))
            if read.recipients:
                return read
    return None
