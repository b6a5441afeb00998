"""Reading returned mail as it really comes: any line ends, broken MIME, undeclared or unknown
character sets. Nothing here raises on odd input; what cannot be read reads as empty.

Pure: the standard library's ``email`` package (its lenient ``compat32`` parser, which keeps
going where the strict one stops), no Flask.
"""
from __future__ import annotations

import html
import re
from email import message_from_bytes
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32

Fields = dict[str, list[str]]

# The returned original: whole, or its headers only (RFC 3462, RFC 6533).
RETURNED_PARTS = ("message/rfc822", "message/global", "text/rfc822-headers",
                  "message/global-headers", "message/partial")
STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")
# Parts made of header-like fields: the parser reads them as enclosed messages, we as fields.
FIELD_PARTS = STATUS_PARTS + ("message/feedback-report", "message/disposition-notification")
FIELD = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*(.*)$")
TAG = re.compile(r"<(?:br|p|div|tr|li|h\d)\b[^>]*>|</(?:p|div|tr|li|h\d|table)>", re.I)
ANY_TAG = re.compile(r"<[^>]*>")
HIDDEN = re.compile(r"<(style|script|head)\b.*?</\1\s*>", re.I | re.S)


def normalise_line_ends(raw: bytes) -> bytes:
    """CRLF and CR-only line ends read as LF (the parser and the patterns expect LF)."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def read_message(raw: bytes) -> Message:
    return message_from_bytes(normalise_line_ends(raw), policy=compat32)


def decode(data: bytes, charset: str | None) -> str:
    """Bytes as text in their declared charset, else UTF-8, else (what servers put in
    undeclared diagnostics in practice) Latin-1; a declared charset that does not quite fit
    still reads, with what it cannot decode replaced."""
    for name in (charset, "utf-8"):
        if not name:
            continue
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    if charset:
        try:
            return data.decode(charset, "replace")
        except LookupError:
            pass
    return data.decode("latin-1")


def repair(value: str) -> str:
    """Text the parser read from undeclared 8-bit bytes (kept as surrogates) decoded as UTF-8
    or Latin-1, and undeclared ISO-2022-JP (7-bit, so it passes for ASCII) decoded."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        value = decode(value.encode("utf-8", "surrogateescape"), None)
    if "\x1b$" in value:  # ISO-2022-JP escapes left in a field that declares no charset
        try:
            value = value.encode("ascii").decode("iso-2022-jp")
        except UnicodeError:
            pass
    return value


def clean(value: str) -> str:
    """One line: unfolded, control characters dropped."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def header_text(value: object) -> str:
    """A header value as text, RFC 2047 encoded words decoded where they can be."""
    if not isinstance(value, str):  # compat32 hands back a Header for undecodable bytes
        value = str(value)
    value = repair(value)
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except (ValueError, LookupError, UnicodeError, AssertionError, MessageError):
            pass
    return clean(value)


def fields(message: Message | None) -> Fields:
    """A message's header fields by lower-cased name."""
    found: Fields = {}
    if message is None:
        return found
    for name, value in message.raw_items():
        found.setdefault(str(name).strip().lower(), []).append(header_text(value))
    return found


def first(found: Fields, name: str) -> str:
    values = found.get(name)
    return values[0] if values else ""


def field_blocks(text: str) -> list[Fields]:
    """Blocks of ``Name: value`` lines separated by blank lines, read leniently: a folded or
    an unindented continuation line belongs to the field before it."""
    blocks: list[Fields] = []
    for chunk in re.split(r"\n[ \t]*\n", text.strip("\n")):
        block: Fields = {}
        last: tuple[str, int] | None = None
        for line in chunk.split("\n"):
            match = FIELD.match(line)
            if match and not line[:1].isspace():
                name = match.group(1).lower()
                block.setdefault(name, []).append(match.group(2).strip())
                last = (name, len(block[name]) - 1)
            elif last is not None and line.strip():
                name, index = last
                block[name][index] = f"{block[name][index]} {line.strip()}"
        if block:
            blocks.append({k: [clean(v) for v in vs] for k, vs in block.items()})
    return blocks


def body_text(part: Message) -> str:
    """A non-multipart part's body as text (transfer encoding and charset undone)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # an enclosed message: its text as it was
        return "\n\n".join(as_text(sub) for sub in payload if isinstance(sub, Message))
    try:
        data = part.get_payload(decode=True)
    except (ValueError, LookupError, AssertionError, MessageError):
        data = None
    if not isinstance(data, bytes):
        data = str(payload).encode("utf-8", "surrogateescape")
    try:
        charset = part.get_content_charset()
    except (ValueError, LookupError, MessageError):
        charset = None
    return decode(data, charset)


def as_text(message: Message) -> str:
    """An enclosed message's header lines and body, as the parser read them."""
    lines = [repair(f"{name}: {value}") for name, value in message.raw_items()]
    if not message.is_multipart():
        body = body_text(message)
        if body.strip():
            lines += ["", body]
    return "\n".join(lines)


def is_text(part: Message) -> bool:
    """A part to read as text: a text part (but not a returned header block), or a multipart
    whose parts could not be told apart."""
    if part.get_content_maintype() == "multipart":
        return isinstance(part.get_payload(), str)
    return part.get_content_maintype() == "text" and \
        part.get_content_type() != "text/rfc822-headers"


def html_to_text(markup: str) -> str:
    markup = HIDDEN.sub(" ", markup)
    return html.unescape(ANY_TAG.sub(" ", TAG.sub("\n", markup)))


def parts(message: Message, *, into_returned: bool = False):
    """Every leaf part (and every enclosed-message part) in order; the returned original's
    insides only when ``into_returned``."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        content_type = part.get_content_type()
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, str):
            found = _mislabelled_parts(payload)
            if found:
                stack[:0] = found
                continue
        if part.is_multipart() and isinstance(payload, list) and \
                content_type not in FIELD_PARTS:
            if content_type in RETURNED_PARTS or content_type == "message/rfc822":
                yield part
                if not into_returned:
                    continue
            stack[:0] = [p for p in payload if isinstance(p, Message)]
            continue
        yield part


def _mislabelled_parts(body: str) -> list[Message]:
    """The parts of a multipart whose declared boundary is not the one its body uses (or is
    lost): split at the first ``--token`` line that comes back later."""
    lines = body.split("\n")
    for line in lines:
        token = line.rstrip()
        if token.startswith("--") and len(token) > 3 and " " not in token and \
                lines.count(token) + lines.count(token + "--") >= 2:
            pieces = re.split(rf"(?m)^{re.escape(token)}(?:--)?[ \t]*$", body)[1:]
            return [message_from_bytes(piece.lstrip("\n").encode("utf-8", "surrogateescape"),
                                       policy=compat32)
                    for piece in pieces if piece.strip()]
    return []


def returned_headers(message: Message) -> Fields:
    """The header fields of the returned original, whole or headers only; {} when absent."""
    for part in parts(message):
        if part.get_content_type() not in RETURNED_PARTS:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return fields(payload[0])
        text = body_text(part)
        if text.strip():
            return fields(message_from_bytes(text.encode("utf-8", "surrogateescape"),
                                             policy=compat32))
    return {}
