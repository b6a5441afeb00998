"""Why an email failed: the one registry of causes, and the pure diagnosis that picks a
recipient's cause and the one line of evidence that decided it.

A status says *what* happened (``helpdesk.status``); a cause says *why*, and the quick tips,
buttons, bulk actions and nudges follow the cause. Nothing else in helpdesk decides which tip
comes first: pages, the API, exports, the share page and the help center read ``CAUSES`` (a
status's tips are its causes' primary actions: ``status_tips``).

The diagnosis reads, for each event, the closed ``reason_code`` a parser set when it could;
otherwise it reads the server's own words, as a bounce reader would: enhanced status codes
(RFC 3463), SMTP reply codes, the phrases mail servers and email services use, and the
provider's bounce classification kept in the text. It is a function of the *set* of events:
any order, any repeats, the same cause and the same evidence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, NamedTuple, Sequence

from .status import (BOUNCED, NOT_OPENED, NOT_PROVIDED, NOT_SENT, OPENED, SENDING,
                     DeliveryOutcome, delivery_status, email_status, event_level, same_address)


@dataclass(frozen=True)
class Tip:
    """A quick tip; ``action`` names the button that carries it out (None: advice only)."""

    title: str
    text: str
    action: str | None = None


@dataclass(frozen=True)
class Cause:
    key: str
    label: str
    explanation: str
    primary: Tip | None  # what helps most, first on every page
    secondary: tuple[Tip, ...]
    # Whether sending the same email to the same address again can succeed: bulk resends
    # skip the causes where it cannot, and a manual resend asks first.
    resend_helps: bool

    @property
    def actions(self) -> tuple[Tip, ...]:
        return ((self.primary,) if self.primary else ()) + self.secondary


# The actions, once each: ``action`` names the button a page shows (None: advice only).
FIX_TYPO = Tip("Correct the typo and resend", "Use the suggested address (or type the right "
               "one): the email goes to the corrected address at once.", "fix_address")
FIX_ADDRESS = Tip("Fix the address and resend", "Ask the recipient or the issuer for the right "
                  "address, correct it and send again.", "fix_address")
ADD_ADDRESS = Tip("Add the address", "Ask the issuer for the recipient's address, add it and "
                  "send.", "fix_address")
ALLOWLIST = Tip("Ask their IT to allowlist the sender", "Their mail server refuses our sender: "
                "send their IT the allowlist request with a status link, then resend everyone "
                "it refused.", "allowlist")
RESEND = Tip("Resend", "Send the same email again to the same address.", "resend")
RESEND_LATER = Tip("Resend in a day or two", "Once the recipient has made room, the same "
                   "email can go through.", "resend")
NUDGE = Tip("Nudge the recipient", "Send the email again so that it comes back to the top of "
            "their inbox.", "nudge")
SEND_NOW = Tip("Send it now", "Publishing with email sends it at once.", "send_now")
UNSUPPRESS = Tip("Remove from the suppression list and resend", "The email service will send "
                 "to the address again once it is off its list. Only do this when you know the "
                 "address now works.", "unsuppress")
WAIT = Tip("Give it some time", "Temporary refusals are retried automatically with growing "
           "pauses; nothing to do unless it gives up.")
ASK_ANOTHER_WAY = Tip("Reach them another way", "If you can contact the recipient by phone or "
                      "another address, ask them to check the address or their spam folder.")
LOOK_IN_SPAM = Tip("Ask them to look in spam", "If you can reach the recipient another way, ask "
                   "them to search their spam and promotions folders for the sender.")
FIX_REASON = Tip("Fix what the service said", "The email service gave its reason on the "
                 "timeline (a setting, an account limit, a bad request): fix that, then send "
                 "again.", "resend")
CHECK_CONTENT = Tip("Review the email and the sender", "Their filter judged the email itself: "
                    "ask their IT whether it was the content, a link or the sender's "
                    "reputation.", "allowlist")
DO_NOT_SEND = Tip("Do not send again unasked", "Sending again to someone who did not want the "
                  "email harms the sender's reputation; only resend if they ask for it.")

NO_ADDRESS = "no_address"
INVALID_ADDRESS = "invalid_address"
NOT_SENT_YET = "not_sent"
REFUSED_BY_SERVICE = "refused_by_service"
ON_ITS_WAY = "sending"
RETRYING = "retrying"
GAVE_UP = "gave_up"
TYPO = "typo"
MAILBOX_UNKNOWN = "mailbox_unknown"
DOMAIN_UNKNOWN = "domain_unknown"
POLICY = "policy"
SPAM_CONTENT = "spam_content"
MAILBOX_FULL = "mailbox_full"
MAILBOX_DISABLED = "mailbox_disabled"
BOUNCED_OTHER = "bounced_other"
SUPPRESSED = "suppressed"
COMPLAINED = "complained"
UNSUBSCRIBED = "unsubscribed"
DELIVERED_NOT_OPENED = "not_opened"
OPENED_BY_PERSON = "opened"
OPENED_BY_MACHINE = "machine_opened"

CAUSES: dict[str, Cause] = {c.key: c for c in (
    Cause(NO_ADDRESS, "No address",
          "The recipient has no email address, so nothing can be sent.",
          ADD_ADDRESS, (), False),
    Cause(INVALID_ADDRESS, "Invalid address",
          "The address as written cannot receive email (it is not an address, or its domain "
          "cannot exist). Nothing is sent to it until it is corrected.",
          FIX_ADDRESS, (ASK_ANOTHER_WAY,), False),
    Cause(NOT_SENT_YET, "Not sent yet",
          "No email has gone out: the credential is a draft or scheduled, or it was published "
          "without email.",
          SEND_NOW, (), True),
    Cause(REFUSED_BY_SERVICE, "Refused by the email service",
          "Our email service would not send it; its reason is on the timeline. The recipient's "
          "address may be fine.",
          FIX_REASON, (), True),
    Cause(ON_ITS_WAY, "On its way",
          "The email is queued, with us or with the email service; this usually takes seconds "
          "to minutes.",
          WAIT, (), True),
    Cause(RETRYING, "Temporarily refused, still retrying",
          "The recipient's mail server said \"not now\" (greylisting, a rate limit, a busy "
          "server). It is retried automatically; most such emails arrive within the hour.",
          WAIT, (ASK_ANOTHER_WAY,), True),
    Cause(GAVE_UP, "Gave up after temporary refusals",
          "The recipient's server kept saying \"not now\" until the retries ran out. The "
          "address may well be right: send again later.",
          RESEND, (ASK_ANOTHER_WAY, ALLOWLIST), True),
    Cause(TYPO, "Likely typo in the domain",
          "The domain looks like a slip for a well-known one, and mail to it did not go "
          "through. Correct it and the email goes to the right inbox.",
          FIX_TYPO, (ASK_ANOTHER_WAY,), False),
    Cause(MAILBOX_UNKNOWN, "Mailbox does not exist",
          "The recipient's mail server says there is no such mailbox: the part before the @ "
          "is misspelled, or the person has left.",
          FIX_ADDRESS, (ASK_ANOTHER_WAY,), False),
    Cause(DOMAIN_UNKNOWN, "Domain does not exist or takes no mail",
          "The part after the @ has no mail server: it is misspelled, or the domain is gone.",
          FIX_ADDRESS, (ASK_ANOTHER_WAY,), False),
    Cause(POLICY, "Blocked by the company's mail policy",
          "The recipient's mail server refused our sender by policy (an allowlist, a block "
          "list, an authentication rule). The address is probably right: their IT can let "
          "the sender through, then resend.",
          ALLOWLIST, (RESEND,), True),
    Cause(SPAM_CONTENT, "Refused as spam",
          "The recipient's mail server judged the email to be spam, or refused something in "
          "its content. Sending the same email again is refused the same way.",
          CHECK_CONTENT, (ASK_ANOTHER_WAY,), False),
    Cause(MAILBOX_FULL, "Mailbox is full",
          "The address is right but the mailbox has no room. It works again once the "
          "recipient deletes some mail.",
          RESEND_LATER, (ASK_ANOTHER_WAY,), True),
    Cause(MAILBOX_DISABLED, "Mailbox is disabled",
          "The mailbox exists but is suspended or closed: the recipient needs to give another "
          "address.",
          FIX_ADDRESS, (ASK_ANOTHER_WAY,), False),
    Cause(BOUNCED_OTHER, "Refused by the recipient's server",
          "The recipient's mail server refused the email for good; its reply is on the "
          "timeline.",
          FIX_ADDRESS, (ALLOWLIST, ASK_ANOTHER_WAY), False),
    Cause(SUPPRESSED, "Suppressed by the email service",
          "Our email service did not even try: the address is on its suppression list after "
          "an earlier bounce, spam report or unsubscribe.",
          UNSUPPRESS, (FIX_ADDRESS,), False),
    Cause(COMPLAINED, "Marked as spam by the recipient",
          "The recipient reported the email as spam. Sending again harms the sender's "
          "reputation; no nudge goes to them.",
          DO_NOT_SEND, (ASK_ANOTHER_WAY,), False),
    Cause(UNSUBSCRIBED, "Unsubscribed",
          "The recipient asked to receive no more email from us; no nudge goes to them.",
          DO_NOT_SEND, (ASK_ANOTHER_WAY,), False),
    Cause(DELIVERED_NOT_OPENED, "Delivered, not opened",
          "The recipient's mail server accepted the email, but no one has opened it yet. It "
          "may sit in a spam or promotions folder, or their mail app blocks images.",
          NUDGE, (LOOK_IN_SPAM,), True),
    Cause(OPENED_BY_PERSON, "Opened",
          "The recipient opened the email or clicked a link in it. Nothing more to do.",
          None, (), True),
    Cause(OPENED_BY_MACHINE, "Opened by a machine",
          "Only a mail-privacy proxy or a security scanner opened it: it reached an inbox, but "
          "a person may not have read it. It is nudged like an email nobody opened.",
          NUDGE, (ASK_ANOTHER_WAY,), True),
)}

# The causes a recipient can have under each status (the property tests hold ``diagnose`` to
# it), most common first: the help center's quick tips for a status are theirs.
# A complaint or an unsubscribe can come whatever became of the email.
_LISTED = (COMPLAINED, UNSUBSCRIBED)
STATUS_CAUSES: dict[str, tuple[str, ...]] = {
    NOT_SENT: (NOT_SENT_YET, INVALID_ADDRESS, REFUSED_BY_SERVICE, SUPPRESSED, GAVE_UP, *_LISTED),
    NOT_PROVIDED: (NO_ADDRESS,),
    SENDING: (ON_ITS_WAY, RETRYING, MAILBOX_FULL, TYPO, *_LISTED),
    NOT_OPENED: (DELIVERED_NOT_OPENED, RETRYING, MAILBOX_FULL, *_LISTED),
    BOUNCED: (TYPO, MAILBOX_UNKNOWN, DOMAIN_UNKNOWN, POLICY, SPAM_CONTENT, MAILBOX_FULL,
              MAILBOX_DISABLED, GAVE_UP, BOUNCED_OTHER, SUPPRESSED, REFUSED_BY_SERVICE, *_LISTED),
    OPENED: (OPENED_BY_PERSON, OPENED_BY_MACHINE, *_LISTED),
}


def status_tips(status: str) -> tuple[Tip, ...]:
    """A status's quick tips: the primary actions of the causes it can have, each once."""
    tips = (CAUSES[key].primary for key in STATUS_CAUSES[status])
    return tuple(dict.fromkeys(tip for tip in tips if tip))


# Causes at which no automatic nudge goes out, whatever the status says.
NO_NUDGE = frozenset({COMPLAINED, UNSUBSCRIBED, SUPPRESSED})
# The causes automatic nudges go to: delivered, and no person is known to have opened it.
NUDGED_CAUSES = frozenset({DELIVERED_NOT_OPENED, OPENED_BY_MACHINE})
# Causes at which sending the same email to the same address again cannot help.
RESEND_CANNOT_HELP = frozenset(key for key, cause in CAUSES.items() if not cause.resend_helps)


# --- what the diagnosis reads ----------------------------------------------------------------

@dataclass(frozen=True)
class EventFacts:
    """What the diagnosis needs of one delivery event."""

    type: str
    occurred_at: datetime
    severity: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    mta_response: str | None = None

    @classmethod
    def of(cls, event) -> "EventFacts":
        """The facts of a stored ``DeliveryEvent`` or a parsed ``ProviderEvent``."""
        return cls(event.type, event.occurred_at, event.severity, event.reason_code,
                   event.reason, event.mta_response)


@dataclass(frozen=True)
class DeliveryFacts:
    """One delivery: the address it went to, its events (in any order, with repeats), and
    whether its provider reports deliveries (then its acceptance is still "sending")."""

    email: str
    events: tuple[EventFacts, ...] = ()
    reports_deliveries: bool = False


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    evidence: str  # the one line that decided it, in the server's or the service's words
    suggestion: str | None = None  # the corrected address, for a typo

    @property
    def info(self) -> Cause:
        return CAUSES[self.cause]


# --- reading a server's words -----------------------------------------------------------------

ENHANCED_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
REPLY_CODE = re.compile(r"(?<![\d.])([2456]\d\d)(?=[ -]|$)")
# Addresses and host names in a reply say nothing about why (``spam@x``, ``blocked.example``).
ADDRESS_OR_HOST = re.compile(r"<[^>]*>|\S+@\S+|\b[\w-]+(?:\.[\w-]+)+\.[a-z]{2,}\b")

# RFC 3463 status codes: subject.detail, then the subject alone.
ENHANCED_REASONS: dict[str, str] = {
    "1.1": "user_unknown", "1.2": "host_unknown", "1.3": "user_unknown",
    "1.6": "user_unknown", "1.10": "host_unknown",
    "2.1": "suspended", "2.2": "mailbox_full", "2.3": "too_large",
    "3.4": "too_large", "4.4": "host_unknown", "4.7": "expired",
    "6.0": "spam", "7.1": "policy", "7.7": "spam",
    "1": "user_unknown", "7": "policy",
}

# The phrases, most telling first: a block list is named before the word "spam" in it is read,
# a missing domain before the missing mailbox its reply also mentions.
PHRASES: tuple[tuple[str, re.Pattern], ...] = tuple(
    (code, re.compile(pattern, re.IGNORECASE)) for code, pattern in (
        ("suppressed", r"suppress|not delivering to|previously bounced|bounced address|"
                       r"unsubscribed address|spam reporting address|do.not.send list"),
        ("temporary", r"grey ?list|gray ?list|try (?:again )?later|temporar|rate limit|"
                      r"too many (?:connections|messages|recipients)|throttl"),
        ("host_unknown", r"host (?:or domain name )?(?:not found|unknown)|unknown host|no mx|"
                         r"no such domain|domain (?:name )?(?:not found|does ?n[o']t exist|"
                         r"is not valid)|unrout(?:e)?able|nxdomain|null mx|"
                         r"does not accept mail|name or service not known|no valid (?:mx|host)"),
        ("mailbox_full", r"mailbox (?:is )?full|(?:over|exceeded?) (?:its |the )?(?:storage |disk )?"
                         r"quota|quota exceeded|insufficient (?:storage|disk)|inbox is full|"
                         r"out of storage|mailbox size limit"),
        ("expired", r"expired|too old|retry time|gave up|giving up|could not be delivered "
                    r"(?:for|within|after)"),
        ("policy", r"spamhaus|spamcop|barracuda|black ?list|block ?list|blocked using|"
                   r"listed (?:at|on|in|by)|\b(?:rbl|dnsbl)\b|reputation"),
        ("spam", r"spam|junk|unsolicited|phish|virus|malware|suspicious|content"),
        ("policy", r"allow ?list|white ?list|not authori[sz]ed|not (?:permitted|allowed)|"
                   r"policy|blocked|denied|\bspf\b|dmarc|dkim|authenticat|relay"),
        ("suspended", r"disabled|suspended|inactive|deactivated|no longer (?:active|in use)|"
                      r"account (?:is )?locked"),
        ("user_unknown", r"user unknown|unknown (?:user|recipient)|no such (?:user|mailbox|"
                         r"recipient|address|person|account)|(?:user|mailbox|account|address|"
                         r"recipient)\b[^.;]{0,40}(?:does ?n[o']t exist|not found|unknown|"
                         r"invalid|unavailable|rejected)|invalid (?:recipient|address|"
                         r"mailbox)|not a valid (?:mailbox|recipient|address)|"
                         r"bad destination|undeliverable address"),
        ("too_large", r"too (?:large|big)|exceeds? (?:the )?(?:maximum )?(?:message )?size|"
                      r"size limit|message length"),
    ))


class Reading(NamedTuple):
    """What one event says: the reason (a key of ``contract.REASON_CODES``, or None when
    nothing tells), whether it is for now only, and the line that says so."""

    reason_code: str | None
    temporary: bool
    text: str


def reply_reason(text: str) -> tuple[str | None, bool | None]:
    """The reason a server's reply gives, and whether its code says "for now" (None: no code).

    Phrases decide first (they are what a person reads); the enhanced status code, then the
    reply code, decide when no phrase is known."""
    codes = REPLY_CODE.findall(text)
    enhanced = ENHANCED_CODE.search(text)
    klass = enhanced.group(1) if enhanced else (codes[0][0] if codes else None)
    temporary = None if klass is None else klass == "4"
    words = ADDRESS_OR_HOST.sub(" ", text)
    for code, pattern in PHRASES:
        if pattern.search(words):
            if code == "temporary":
                return "temporary", True if temporary is None else temporary
            return code, temporary
    if enhanced:
        subject, detail = enhanced.group(2), enhanced.group(3)
        code = ENHANCED_REASONS.get(f"{subject}.{detail}") or ENHANCED_REASONS.get(subject)
        if code:
            return code, temporary
    return None, temporary


def read_event(event: EventFacts) -> Reading:
    """What one event says: a parser's reason code wins over the words; its severity over the
    codes in them."""
    text = " ".join((event.mta_response or event.reason or "").split())
    found, temporary = reply_reason(text) if text else (None, None)
    if event.reason and event.mta_response and found is None:
        found, temporary_too = reply_reason(" ".join(event.reason.split()))
        temporary = temporary if temporary is not None else temporary_too
    if event.severity in ("permanent", "temporary"):
        temporary = event.severity == "temporary"
    elif temporary is None:
        temporary = event.type == "deferred"
    reason_code = event.reason_code or found
    if reason_code == "temporary" and not temporary:
        reason_code = None
    return Reading(reason_code, temporary, text)


def _reason_line(event: EventFacts) -> str:
    return " ".join((event.reason or "").split())


# --- the diagnosis --------------------------------------------------------------------------

# A bounce's reason, to its cause; the order says which of several bounces decides.
BOUNCE_CAUSES: dict[str | None, str] = {
    "suppressed": SUPPRESSED,
    "host_unknown": DOMAIN_UNKNOWN,
    "user_unknown": MAILBOX_UNKNOWN,
    "mailbox_full": MAILBOX_FULL,
    "policy": POLICY,
    "spam": SPAM_CONTENT,
    "suspended": MAILBOX_DISABLED,
    "expired": GAVE_UP,
    "temporary": GAVE_UP,
    "too_large": BOUNCED_OTHER,
    "other": BOUNCED_OTHER,
    None: BOUNCED_OTHER,
}
_BOUNCE_RANK = {reason: rank for rank, reason in enumerate(BOUNCE_CAUSES)}
# Reasons that leave a misspelled domain the likeliest explanation.
TYPO_REASONS = frozenset({"host_unknown", "user_unknown", "expired", "temporary", "other", None})
# A click this soon after the delivery is a link scanner's, not a person's.
SCANNER_SECONDS = 10


def _one(events: Iterable[EventFacts]) -> EventFacts | None:
    """The latest of some events; ties broken by their words, so the order they came in never
    matters."""
    return max(events, key=lambda e: (e.occurred_at, e.type, e.reason or "",
                                      e.mta_response or "", e.reason_code or "",
                                      e.severity or ""), default=None)


def _machine_open(event: EventFacts, delivered_at: datetime | None) -> bool:
    """Said so by the event (the service's flag, our pixel's proxy fetch: ``machine_open``), or
    a click too soon after the delivery for a person."""
    if event.reason_code == "machine_open":
        return True
    return (event.type == "clicked" and delivered_at is not None
            and 0 <= (event.occurred_at - delivered_at).total_seconds() <= SCANNER_SECONDS)


def _opened(deliveries: Sequence[DeliveryFacts]) -> Diagnosis:
    """A person's open, else a machine's (the earliest one seen says so)."""
    person, machine = [], []
    for delivery in deliveries:
        delivered_at = min((e.occurred_at for e in delivery.events
                            if e.type in ("accepted", "delivered")), default=None)
        for e in delivery.events:
            if e.type in ("opened", "clicked"):
                (machine if _machine_open(e, delivered_at) else person).append(e)
    if person or not machine:
        first = min(person, key=lambda e: (e.occurred_at, e.type, e.reason or ""), default=None)
        what = "clicked a link" if first and first.type == "clicked" else "opened the email"
        return Diagnosis(OPENED_BY_PERSON, f"The recipient {what}"
                         + (f" ({first.reason})" if first and first.reason else "") + ".")
    first = min(machine, key=lambda e: (e.occurred_at, e.type, e.reason or ""))
    if first.reason_code == "machine_open":
        return Diagnosis(OPENED_BY_MACHINE, _reason_line(first)
                         or "The email service says a machine opened it.")
    return Diagnosis(OPENED_BY_MACHINE, f"A link was followed within {SCANNER_SECONDS} seconds "
                     "of delivery, as link scanners do.")


Suggest = Callable[[bool], "str | None"]  # given whether a bounce said the domain does not exist


def _bounce(delivery: DeliveryFacts, suggest: Suggest) -> Diagnosis:
    bounces = [(read_event(e), e) for e in delivery.events if event_level(e.type) == BOUNCED]
    deferred = any(e.type == "deferred" for e in delivery.events)
    if all(e.type == "rejected" for _, e in bounces):
        # The service dropped it without trying: its own list, or its own reason.
        suppressed = [r for r, _ in bounces if r.reason_code == "suppressed"]
        if suppressed:
            return Diagnosis(SUPPRESSED, min(r.text for r in suppressed))
        return Diagnosis(REFUSED_BY_SERVICE, min(r.text for r, _ in bounces)
                         or "The email service refused to send it.")
    reading, _ = min(bounces, key=lambda b: (_BOUNCE_RANK.get(b[0].reason_code, len(_BOUNCE_RANK)),
                                             b[0].text, b[1].occurred_at))
    reason_code = reading.reason_code
    if reading.temporary and deferred and reason_code not in ("suppressed", "expired"):
        # A refusal "for now" that outlasted the retries was given up on, whatever it was.
        reason_code = "temporary"
    suggestion = suggest(reason_code == "host_unknown") if reason_code in TYPO_REASONS else None
    if suggestion:
        return Diagnosis(TYPO, reading.text or f"Mail to {delivery.email} did not go through.",
                         suggestion)
    return Diagnosis(BOUNCE_CAUSES.get(reason_code, BOUNCED_OTHER),
                     reading.text or "The recipient's server refused the email for good.")


def _not_sent(delivery: DeliveryFacts) -> Diagnosis:
    expired = _one(e for e in delivery.events if e.type == "expired")
    if expired:  # refused for now through the whole retry window: its reason says how long
        return Diagnosis(GAVE_UP, _reason_line(expired)
                         or "The receiving server kept refusing the email for now.")
    refused = _one(e for e in delivery.events if e.type == "refused")
    reading = read_event(refused) if refused else None
    if reading and reading.reason_code == "suppressed":
        return Diagnosis(SUPPRESSED, reading.text)
    return Diagnosis(REFUSED_BY_SERVICE, (reading.text if reading else "")
                     or "The email service refused to send it.")


def _still_sending(delivery: DeliveryFacts, suggest: Suggest) -> Diagnosis:
    deferral = _one(e for e in delivery.events if e.type == "deferred")
    if deferral is None:
        return Diagnosis(ON_ITS_WAY, "Queued; the email service has not answered yet.")
    reading = read_event(deferral)
    suggestion = suggest(True) if reading.reason_code == "host_unknown" else None
    if suggestion:
        return Diagnosis(TYPO, reading.text, suggestion)
    return _deferred(reading)


def _deferred(reading: Reading) -> Diagnosis:
    """A refusal for now: a full mailbox says why (many servers retry it), anything else is
    the server asking us to come back later."""
    if reading.reason_code == "mailbox_full":
        return Diagnosis(MAILBOX_FULL, reading.text)
    return Diagnosis(RETRYING, reading.text or "The receiving server asked us to try later.")


def _listed_by_recipient(deliveries: Sequence[DeliveryFacts]) -> Diagnosis | None:
    """A complaint, or an unsubscribe no later resubscribe undid, on any delivery to the
    recipient's current address."""
    events = [e for d in deliveries for e in d.events]
    complaint = _one(e for e in events if e.type == "complained")
    if complaint:
        return Diagnosis(COMPLAINED, _reason_line(complaint)
                         or "The recipient marked the email as spam.")
    unsubscribe = _one(e for e in events if e.type == "unsubscribed")
    resubscribe = _one(e for e in events if e.type == "resubscribed")
    if unsubscribe and not (resubscribe and resubscribe.occurred_at > unsubscribe.occurred_at):
        return Diagnosis(UNSUBSCRIBED, _reason_line(unsubscribe)
                         or "The recipient unsubscribed.")
    return None


def diagnose(
    *,
    email: str | None,
    email_error: str | None,
    published: bool,
    deliveries: Sequence[DeliveryFacts],
    suggest: Callable[[str, bool], str | None] | None = None,
) -> Diagnosis:
    """A recipient's cause and its evidence.

    :param email: the recipient's address; ``email_error`` why it cannot be used, if so.
    :param published: whether its credential is published.
    :param deliveries: its deliveries, oldest first; each one's events in any order.
    :param suggest: the typo suggester: ``suggest(address, domain_unknown)``, the address's
        likely correction or None, where ``domain_unknown`` says the bounce found no such
        domain, strong evidence of a typo (it knows the installation's delivered domains, which
        it never corrects, and those that bounced so before). Asked only about a failed
        delivery to the recipient's current address.
    """
    if not email:
        return Diagnosis(NO_ADDRESS, "No email address was given.")
    if email_error:
        return Diagnosis(INVALID_ADDRESS, email_error)
    if not published or not deliveries:
        return Diagnosis(NOT_SENT_YET, "The credential is not published yet." if not published
                         else "The credential was published without sending email.")
    latest = deliveries[-1]

    def suggestion(domain_unknown: bool) -> str | None:
        if suggest and same_address(email, latest.email):
            return suggest(email, domain_unknown)
        return None

    listed = _listed_by_recipient([d for d in deliveries if same_address(d.email, email)])
    if listed:
        return listed
    outcomes = [DeliveryOutcome(d.email, delivery_status(
        (e.type for e in d.events), reports_deliveries=d.reports_deliveries)) for d in deliveries]
    status = email_status(email=email, published=published, deliveries=outcomes)
    if status == OPENED:
        return _opened([d for d in deliveries if same_address(d.email, latest.email)])
    if status == BOUNCED:
        return _bounce(latest, suggestion)
    if status == NOT_SENT:
        return _not_sent(latest)
    if status == SENDING:
        return _still_sending(latest, suggestion)
    assert status == NOT_OPENED
    return _accepted(latest)


def _accepted(delivery: DeliveryFacts) -> Diagnosis:
    """Accepted by the service or the next hop: a deferral reported after that acceptance,
    with no delivery since, means the receiving server is still saying "not now"."""
    accepted = _one(e for e in delivery.events if e.type == "accepted")
    deferral = _one(e for e in delivery.events if e.type == "deferred")
    if (accepted and deferral and deferral.occurred_at > accepted.occurred_at
            and not any(e.type == "delivered" for e in delivery.events)):
        return _deferred(read_event(deferral))
    delivered = _one(e for e in delivery.events if e.type in ("delivered", "accepted"))
    words = (delivered.mta_response or delivered.reason) if delivered else None
    return Diagnosis(DELIVERED_NOT_OPENED, " ".join((words or "").split())
                     or "The recipient's server accepted the email.")
