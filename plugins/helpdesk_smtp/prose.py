"""Reading bounces written as prose, for people (qmail, Exim, Postfix and Sendmail texts,
Exchange and Office 365, Gmail, Yahoo, Domino, gateways, in many languages): which addresses
failed and what the server said about each.

No table of vendors: every such text names the failed address on a line of its own or after a
word like "to" or "recipient", followed (or preceded) by the server's reply with its SMTP code.
Addresses that are ours (the report's own From and To, the returned original's sender) and the
mail system's (postmaster, MAILER-DAEMON) are never taken for a recipient.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from email.message import Message

from . import mime

# The top-level domain is ASCII (or an A-label): text in other scripts often follows an
# address with no space between.
ADDR = r"[\w.!#$%&'*+/=?^`{|}~-]+@(?:[\w-]+\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]+)"
# Not inside a longer token (a URL's query, a VERP-encoded sender), except after an X.400
# report's "SMTP=" (old Exchange: "c=US;a= ;p=ORG;dda:SMTP=ada@example.com;").
ADDRESS = re.compile(
    rf"(?:(?<=[Ss][Mm][Tt][Pp]=)|(?<![\w.+=/%-])(?![Ss][Mm][Tt][Pp]=))({ADDR})(?![A-Za-z0-9-])")
SYSTEM_MAILBOX = re.compile(
    r"^(?:mailer[-_]?daemon|postmaster|mail[-_]?daemon|mailerdaemon|mail[-_]?delivery|"
    r"mdaemon|mail[-_]?admin|mailadmin|abuse|noreply|no-reply|do-?not-?reply|root|"
    r"bounces?|double-bounce|nobody)$", re.I)
# Where the copy of the original message starts in a report's text: a line that says so.
ORIGINAL_STARTS = re.compile(
    r"^[ \t]*(?:[-=_*]{2,}[ \t]*)?(?:"
    r"below this line is a copy of the message|this is a copy of the message|"
    r"(?:the )?(?:header|headers|text|copy) of (?:the )?original message|"
    r"(?:the )?original message(?: headers?)?(?: (?:follows|is attached|below))?"
    r"[ \t]*[:.-]*[ \t]*$|"
    r"(?:un)?sent message (?:follows|below)|undelivered message headers?|"
    r"(?:message )?headers? (?:of the \w+ message )?follows?|returned message|"
    r"original[- ]message|original e?mail(?: headers?)?[ \t]*[:.-]*[ \t]*$|"
    r"original (?:e-?)?mail (?:as follows|follows)|"
    r"ursprüngliche nachricht|message d'origine|mensaje original|messaggio originale|"
    r"content-type: message/rfc822"
    r")", re.I | re.M)
# The fields an original message's header starts with, when it is pasted into the text.
ORIGINAL_FIELDS = {"return-path", "received", "message-id", "from", "to", "cc", "subject",
                   "date", "mime-version", "content-type", "content-transfer-encoding",
                   "dkim-signature", "reply-to", "sender", "x-mailer", "delivered-to",
                   "in-reply-to", "references", "user-agent", "authentication-results"}
# Fields a report lists to say which message it is about, not a pasted header on their own.
SUMMARY_FIELDS = {"from", "to", "cc", "subject", "date", "sent"}
VERP = re.compile(r"\+[0-9a-f]{32}@", re.I)  # our envelope sender, quoted back
HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
# An address named as the failed one: on a line of its own, as "<address>:", or after a word
# that says so.
NAMED = re.compile((
    r"(?:^[ \t>*-]*(?:[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?)?"
    r"(?:(?:to|rcpt to|recipient|intended recipient|original-recipient|final-recipient|address|"
    r"e-?mail|destinataire|empfänger|destinatario|адресат|宛先)[ \t]*[:=]?[ \t]*)?"
    r"(?:rfc822;[ \t]*)?<?$ADDR>?[ \t]*(?:[:.,;]|\.\.\.|\s*$|\s+on\s|\s+[(\[]|\s+-)|"
    r"rcpt to:?\s*<$ADDR>|dda:smtp=$ADDR|(?:delivered|deliver|delivery|sent|send|reach|reached|"
    r"addressed|failed|recipients?|to)\s+(?:to\s+)?(?:the\s+following\s+\w+:?\s*)?<?$ADDR)"
).replace("$ADDR", f"({ADDR})"), re.I | re.M)
SENDER_CONTEXT = re.compile(
    r"(?:mail from|from|sender|envelope-from|return-path|reply-to|sent by|by)[ \t]*:?[ \t]*<?$",
    re.I)
NOT_A_RECIPIENT = re.compile(r"message-id:?\s*<?$|mailto:$|/$", re.I)
SMTP_LINE = re.compile(r"(?<![\d.:])(?:[245]\d\d(?:[ -]|: )|[245]\.\d{1,3}\.\d{1,3}\b|#[245]\.\d)")
DELAYED = re.compile(
    r"delivery (?:is |has been )?delayed|still (?:being )?(?:tried|trying|retried|attempting)|"
    r"will (?:continue|keep)? ?(?:to )?(?:try|retry|attempt)|not yet been delivered|"
    r"no action is required on your part|warning: (?:message|could not)|"
    r"delivery (?:status notification )?\(delay\)|delayed mail|has been delayed|"
    r"will be retried|will retry|(?:temporarily|temporary) (?:deferred|failure|error|problem)|"
    r"is still trying", re.I)
GIVEN_UP = re.compile(
    r"permanent(?:ly)? (?:fatal )?(?:error|failure)|i'?ve given up|giving up|gave up|"
    r"will not (?:be )?(?:retried|try again)|not going to try again|fatal errors?", re.I)
BOUNCE_SENDER = re.compile(
    r"mailer[-_ ]?daemon|post_?master|mail[-_ ]?delivery|delivery[-_ ]?(?:status|subsystem|"
    r"system)|mail ?administrator|system administrator|mdaemon|mail system|mailerdaemon|"
    r"mail[-_]?daemon|bounce", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|non[- ]?deliver|not (?:be )?delivered|delivery (?:status|failure|"
    r"fail|report|problem|notification|error|incomplete)|failure notice|failed delivery|"
    r"returned mail|return(?:ed|ing) to sender|mail delivery|mail failed|\bfail(?:ed|ure)\b|"
    r"mail system error|delivery has failed|"
    r"could not (?:be )?deliver|deliver(?:y)? (?:failed|failure)|bounce|rejected|"
    r"warning: message|delayed mail|nicht zustellbar|unzustellbar|non remis|échec|"
    r"no entregado|no se puede entregar|non recapitato|não entregue|не доставлено|"
    r"mail could not|message (?:not|could not)|error sending|sending failed|failure|"
    r"notification|\bNDN\b|\bDSN\b|permanent error|undeliverable|エラー|不達|未達|退信|"
    r"系统退信", re.I)
# A notice that the message arrived (Exchange's "Delivered:", Gmail's "(Success)").
DELIVERED = re.compile(
    r"^\s*delivered\s*:|delivery status notification \(success\)|\bsuccessful(?:ly)? "
    r"delivered|delivery (?:receipt|confirmation|succeeded)|relayed\s*:|zugestellt\s*:", re.I)
# A mailing list's software answering a post it refused (RFC 2369 list headers, or its own):
# a members-only list, a loop. The list's address is then the recipient that refused.
LIST_SERVER_HEADERS = ("list-id", "list-post", "list-help", "list-subscribe", "list-unsubscribe",
                       "list-owner", "mailing-list", "x-mlserver", "x-ml-name")
# Its control addresses (subscribe, help, owner), which are never the recipient.
LIST_CONTROL_HEADERS = ("list-help", "list-subscribe", "list-unsubscribe", "list-owner")
# The addresses a list's software writes from (never a person posting to the list).
LIST_SOFTWARE = re.compile(r"^(?:owner-.+|.+-(?:admin|owner|request|ctl|bounces?)|mailman|"
                           r"majordomo|listserv|ezmlm|sympa|fml)@", re.I)
LIST_REFUSAL = re.compile(
    r"not (?:a )?member|non-?members?\b|members? only|only (?:list )?members|"
    r"(?:not (?:allowed|permitted)|no permission|not authori[sz]ed) to post|"
    r"post(?:ing)? (?:was |is )?(?:rejected|refused|denied|not allowed)|"
    r"loop alert|mail loop|duplicated? message-?id", re.I)
PERSONAL_SUBJECT = re.compile(r"\s*(?:re|fwd?|aw|wg|tr|rv|sv|vs|antw)\s*:", re.I)
BOUNCE_WORDS = re.compile(
    r"could ?n[o']t be delivered|could not deliver|was not delivered|wasn't delivered|"
    r"undeliverable|delivery (?:has )?failed|permanent(?:ly)? (?:fatal )?error|"
    r"failed to deliver|not (?:be )?delivered to|delivery to the following|"
    r"following (?:address|recipient)|returned to you|unable to deliver|"
    r"did not reach|couldn't be delivered|message could not|delivery problem|"
    r"(?:mail|message) (?:has been |was )?returned|no such user|user unknown|unknown user|"
    r"rejected your message|has been rejected|mail delivery failed|delivery failure|"
    r"no se pudo entregar|nicht zugestellt|n'a pas pu être|non è stato|не удалось доставить|"
    r"не может быть доставлено|送信できませんでした|配信できませんでした|届きませんでした|"
    r"无法投递|退信|无法(?:发送|送达|传送)|(?:发送|传输|投递)失败|無法(?:傳送|送達|投遞)|"
    r"(?:傳送|投遞)失敗", re.I)


# Recipients named by their local part alone, one a line under "… the following …:" (AOL's
# screen names, a university directory's "userx    No matches to nameserver query"): the name
# alone on its line, or before a column gap.
FOLLOWING = re.compile(r"\bthe following\b[^\n]*:[ \t]*\n", re.I)
BARE_NAME = re.compile(r"[ \t]+([A-Za-z0-9][\w.+-]{0,63})(?:[ \t]*$|[ \t]{2,}|\t)")


@dataclass
class Failed:
    address: str
    text: str  # the lines of the report about this address
    server_words: str  # of those, what the server said (see ``server_words``)
    guessed: bool = False  # the report named the local part alone; the domain is a guess


def split_original(text: str) -> tuple[str, str]:
    """A report's text cut where the copy of the original message starts: (report, copy)."""
    found = ORIGINAL_STARTS.search(text)
    header_run = _header_run(text)
    cut = min(x for x in (found.start() if found else None, header_run, len(text))
              if x is not None)
    return text[:cut], text[cut:]


def _header_run(text: str) -> int | None:
    """Where three header lines of an email in a row start (a pasted-in copy of the
    original)."""
    names = [_field_name(line) for line in text.split("\n")]
    offset = 0
    for index, line in enumerate(text.split("\n")):
        run = names[index:index + 3]
        if len(run) == 3 and all(name in ORIGINAL_FIELDS for name in run) and \
                not set(run) <= SUMMARY_FIELDS:
            return offset
        offset += len(line) + 1
    return None


def _field_name(line: str) -> str:
    return line.split(":", 1)[0].lower() if HEADER_LINE.match(line) else ""


def report_text(message: Message) -> str:
    """The readable text of a report, without the returned original: its plain-text parts, or
    its HTML parts as text when it has no plain text."""
    plain, markup = [], []
    for part in mime.parts(message):
        content_type = part.get_content_type()
        if not mime.is_text(part):
            continue
        disposition = str(part.get("content-disposition", "")).lower()
        if disposition.startswith("attachment") and content_type != "text/plain":
            continue
        text = mime.body_text(part)
        (markup if content_type == "text/html" else plain).append(text)
    if not plain and markup:
        plain = [mime.html_to_text(text) for text in markup]
    return "\n\n".join(plain)


def looks_like_bounce(headers: mime.Fields, text: str, returns_original: bool) -> bool:
    """Whether a message without a delivery-status part reads as a failure report."""
    sender = mime.first(headers, "from") + " " + mime.first(headers, "return-path")
    subject = mime.first(headers, "subject")
    if "x-failed-recipients" in headers:
        return True
    if _from_list_software(headers) and (
            LIST_REFUSAL.search(subject) or LIST_REFUSAL.search(text.lstrip()[:300])):
        return True
    # The original returned with words of failure, unless a person is replying or forwarding.
    if returns_original and BOUNCE_WORDS.search(text) and not PERSONAL_SUBJECT.match(subject):
        return True
    if BOUNCE_SENDER.search(sender) and (BOUNCE_SUBJECT.search(subject)
                                         or BOUNCE_WORDS.search(text)):
        return True
    return bool(BOUNCE_SUBJECT.search(subject) and BOUNCE_WORDS.search(text)) or \
        bool(BOUNCE_SENDER.search(sender) and SMTP_LINE.search(text))


def _from_list_software(headers: mime.Fields) -> bool:
    if not any(name in headers for name in LIST_SERVER_HEADERS):
        return False
    sender = mime.first(headers, "from")
    return any(LIST_SOFTWARE.match(a) for a in ADDRESS.findall(sender))


def delayed(text: str, subject: str) -> bool:
    """Whether the report only warns of a delay (the server is still trying): it says so, and
    does not also say it has given up."""
    return bool(DELAYED.search(subject) or DELAYED.search(text)) and \
        not GIVEN_UP.search(text)


def failed_addresses(text: str, ours: set[str]) -> list[Failed]:
    """The addresses a report's text names as failed, each with the lines about it: those
    named as failed where some are, else every address that is not ours."""
    candidates = list(_candidates(text, ours))
    strong = {m.start(m.lastindex) for m in NAMED.finditer(text) if m.lastindex}
    named: list[tuple[int, str]] = []
    seen: set[str] = set()
    for position, found in [c for c in candidates if c[0] in strong] or candidates:
        if found.lower() not in seen:
            seen.add(found.lower())
            named.append((position, found))
    if len(named) == 1:
        return [Failed(named[0][1], text, server_words(text))]
    # Several: each gets the lines from its own to the next one's.
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(position: int) -> int:
        return starts[bisect.bisect_right(starts, position) - 1]

    failed = []
    for position, found in named:
        start = line_of(position)
        # Up to where the text next names another of them.
        following = min((p for p, other in candidates if p > position
                         and other.lower() != found.lower() and other.lower() in seen),
                        default=len(text))
        end = line_of(following) if line_of(following) > start else following
        segment = text[start:end]
        failed.append(Failed(found, segment, server_words(segment, found)))
    return failed


def bare_names(text: str) -> list[str]:
    """The local names listed under the first "the following …:" line that lists any (the
    report then names no full address)."""
    for heading in FOLLOWING.finditer(text):
        lines = text[heading.end():].split("\n")
        while lines and not lines[0].strip():
            lines.pop(0)
        names = []
        for line in lines:
            found = BARE_NAME.match(line)
            if not found:
                break
            names.append(found.group(1))
        if names:
            return names
    return []


def _candidates(text: str, ours: set[str]):
    """(position, address) of every address in a text that may be a recipient: not ours, not
    the mail system's, not a sender's or a Message-ID's."""
    for match in ADDRESS.finditer(text):
        found = match.group(1).strip(".")
        if found.startswith("'") and text[match.end():match.end() + 1] == "'":
            found = found[1:]  # 'ada@example.org', quoted: the quotes are not the address's
        lower = found.lower()
        if lower in ours or SYSTEM_MAILBOX.match(lower.split("@")[0]) or VERP.search(found):
            continue
        before = text[max(0, match.start() - 40):match.start()]
        if SENDER_CONTEXT.search(before) or NOT_A_RECIPIENT.search(before):
            continue
        yield match.start(), found


def server_words(segment: str, about: str = "") -> str:
    """What the server said in a segment, as one line: each paragraph from its first line that
    quotes the server (with an SMTP reply or status code) on; only those that name ``about``
    when some do (a report's lines about several recipients run together)."""
    paragraphs: list[list[str]] = []
    inside = False
    for line in (line.strip() for line in segment.split("\n")):
        if SMTP_LINE.search(line):
            if not inside:
                paragraphs.append([])
            inside = True
        elif not line:
            inside = False
        if inside:
            paragraphs[-1].append(line)
    naming = [p for p in paragraphs if about and about.lower() in " ".join(p).lower()]
    return mime.clean(" ".join(line for p in naming or paragraphs for line in p))
