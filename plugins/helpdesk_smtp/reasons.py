"""Why a bounce happened, and whether it is for good: a server's status codes and words → one
of ``helpdesk.contract.REASON_CODES`` and a severity.

Pure functions over text. The words a server uses say more than its codes (``550 5.7.1`` is
said for a blocked sender and for a full mailbox alike), so the diagnostic's phrases are read
first, then the enhanced status code (RFC 3463), then the bare SMTP reply code.

Whether a reason is for good follows what it says about the address:
- the address does not exist (unknown mailbox, unknown domain): hard;
- the receiving server refused us (a block list, its policy, spam): hard when it said so with a
  5.x.x code (the address may be right, but resending unchanged will not help), soft with 4.x.x;
- anything transient by nature (a full mailbox, a timeout, greylisting, a suspended account, a
  size limit, an unexplained failure): soft, whatever the report's Action field says.
"""
from __future__ import annotations

import re
from typing import NamedTuple

# How a reason decides hard or soft.
HARD = "hard"  # for good, unless the report is only a delay warning
HARD_UNLESS_4XX = "hard unless 4xx"  # for good, but a 4.x.x says the lookup may succeed later
HARD_IF_PERMANENT = "hard if permanent"  # hard with a 5.x.x / 5xx answer, soft with 4.x.x
SOFT = "soft"


class Reason(NamedTuple):
    code: str  # a key of helpdesk.contract.REASON_CODES
    rule: str  # HARD | HARD_IF_PERMANENT | SOFT
    kind: str = ""  # tells apart reasons of one code and rule that are read differently


USER_UNKNOWN = Reason("user_unknown", HARD)
HOST_UNKNOWN = Reason("host_unknown", HARD_UNLESS_4XX)
NO_MAIL_TAKEN = Reason("host_unknown", HARD_IF_PERMANENT)  # a null MX, "does not accept mail"
MAILBOX_FULL = Reason("mailbox_full", SOFT)
SUSPENDED = Reason("suspended", SOFT)
TOO_LARGE = Reason("too_large", SOFT)
POLICY = Reason("policy", HARD_IF_PERMANENT)
SPAM = Reason("spam", HARD_IF_PERMANENT)
CONTENT = Reason("spam", SOFT)  # a content rule, not a verdict on the sender
# The message breaks the format rules (RFC 5322: two From addresses, a repeated Subject): the
# address is right and the same message fixed goes through, so soft even under a 5.7.x status.
FORMAT = Reason("spam", SOFT, "format")
EXPIRED = Reason("expired", SOFT)
TEMPORARY = Reason("temporary", SOFT)
OTHER = Reason("other", SOFT)


def _phrases(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Phrases, most specific first: the first family with a match wins. Generic refusals
# ("rejected", "denied") come last, because servers add them to specific reasons.
PHRASES: tuple[tuple[Reason, re.Pattern], ...] = (
    (POLICY, _phrases(  # our sender address refused: never a word about the recipient
        r"sender (?:address|domain)", r"domain of sender", r"(?:unroutable|invalid|unknown|"
        r"unverified|bad) sender", r"sender verif", r"not accepting (?:e-?)?mail from",
        r"from:? (?:header )?(?:domain|address) "
        r"(?:is )?invalid", r"insecure mail relay",
    )),
    (Reason("suppressed", HARD), _phrases(r"suppression list", r"\bsuppressed\b")),
    (TEMPORARY, _phrases(  # a sending quota is a rate limit, not a full mailbox
        r"(?:relay|sending|send|daily|hourly|rate|message|connection|recipient) (?:quota|limit)",
        r"frequency limit|too frequent|rate limited|limit exceeded for (?:sending|messages)",
        r"\bon hold\b",
    )),
    (MAILBOX_FULL, _phrases(
        r"mail ?box (?:is |was )?(?:full|over ?quota)", r"over ?quota", r"quota (?:exceeded|full)",
        r"exceed(?:ed|s)? (?:the |their |its |his |her )?(?:storage|quota|mailbox)",
        r"storage (?:allocation|quota|limit)", r"disk quota", r"insufficient (?:disk )?space",
        r"(?:mailbox|mail ?folder|account|inbox) (?:is )?(?:full|over)", r"full mailbox",
        r"mailbox size limit", r"out of (?:storage|space)", r"too much mail",
        r"not enough (?:storage|space)", r"user is over", r"maildir (?:over|full)",
        r"(?:disk|storage|mailbox) space (?:limit|quota|exceeded)",
        r"bo[iî]te (?:aux lettres )?(?:pleine|satur)", r"postfach (?:ist )?voll", r"speicher.*voll",
        r"casella (?:di posta )?piena", r"buz[oó]n (?:lleno|est[aá] lleno)",
        r"caixa (?:postal )?(?:cheia|lotada)", r"переполнен", r"容量", r"quota",
    )),
    (SUSPENDED, _phrases(
        r"(?:account|mailbox|user|address|recipient)[^.\n]{0,30}(?:disabled|suspended|inactive|"
        r"deactivated|locked|frozen|expired|closed|blocked by the administrator)",
        r"(?:disabled|suspended|inactive|deactivated|closed) (?:account|mailbox|user|recipient)",
        r"not an active (?:account|mailbox|user)", r"no longer (?:active|available)",
        r"is not active", r"has been (?:disabled|suspended|deactivated)",
    )),
    (Reason("user_unknown", HARD), _phrases(  # moved: the address no longer exists
        r"has moved", r"address (?:has )?changed", r"no longer (?:valid|in use|exists)",
        r"user (?:has )?moved", r"moved permanently",
    )),
    (USER_UNKNOWN, _phrases(
        r"(?:user|recipient|mailbox|address|account|addressee|local[- ]part|alias|destination"
        r"|e-?mail(?: address)?)s?(?: name)? (?:is )?(?:unknown|not (?:found|known|exist|listed|"
        r"valid)|does ?n[o']t exist|doesnt exist|unavailable|invalid|not recognized|"
        r"non[- ]?existent|not registered|not in (?:the |our )?(?:database|directory|list))",
        r"unknown (?:or illegal )?(?:user|recipient|mailbox|address|local|account|alias|"
        r"addressee|e-?mail)", r"no such (?:user|recipient|mailbox|account|address|person|"
        r"local user|e-?mail)", r"invalid (?:recipient|mailbox|user|address|account|e-?mail)",
        r"(?:account|mailbox|address|user) (?:that you tried to reach )?does not exist",
        r"no mailbox (?:here )?by that name", r"no mail ?box (?:is )?available",
        r"\bbad[_ ]recipient", r"not listed in (?:domino|the public|public)",
        r"recipnotfound|recipientnotfound|resolver\.adr\.", r"bad destination mailbox",
        r"not an? (?:valid|known|registered)(?: [\w-]+)? (?:user|recipient|mailbox|account)",
        r"undeliverable address",
        r"no valid recipients?", r"not our customer", r"no (?:account|user) (?:by that|with)",
        r"(?:recipient|user|mailbox|address) rejected(?!\s*:|\s+(?:by|due|because|for|as))",
        r"invalid[\w ]{0,20} (?:recipient|mailbox|user ?id|user|address|account)",
        r"(?:user|mailbox|recipient)\s*(?:name)?\s*(?:is )?not (?:here|local)",
        r"does not have an? (?:account|mailbox)", r"may not exist",
        r"doesn't have an? [^ ]+ account",
        r"destination addresses? (?:were|was) unknown", r"address lookup failed",
        r"utilisateur inconnu", r"destinataire inconnu", r"adresse (?:inexistante|inconnue)",
        r"(?:usuario|destinatario|direcci[oó]n) (?:desconocid|no existe|inexistente)",
        r"(?:benutzer|empf[aä]nger|adresse|postfach) (?:ist )?(?:unbekannt|nicht vorhanden|"
        r"existiert nicht)", r"unbekannte?r? (?:benutzer|empf[aä]nger)",
        r"(?:utente|destinatario|indirizzo) (?:sconosciuto|inesistente|non esiste)",
        r"(?:usu[aá]rio|destinat[aá]rio) (?:desconhecido|inexistente|n[aã]o existe)",
        r"не существует", r"нет такого", r"не найден", r"неизвестн",
        r"存在しない", r"存在しません", r"見つかりません", r"リストにありません",
        r"登録されていません", r"宛先不明", r"不存在",
        r"존재하지 않", r"غير موجود", r"n'existe pas", r"no existe", r"n[aã]o existe",
        r"existiert nicht", r"non esiste", r"bestaat niet", r"nie istnieje", r"bulunamad",
        r"neexistuje", r"не існує", r"δεν υπάρχει", r"nem létezik", r"nu există",
        r"finns inte", r"eksisterer ikke", r"ei ole olemassa", r"không tồn tại", r"tidak ada",
        r"mevcut değil", r"לא קיים|אינה קיימת", r"no exista", r"nicht vorhanden",
        r"μην υπάρχει", r"موجود نباشد|وجود ندارد", r"मौजूद न(?:हीं| हो)",
    )),
    (NO_MAIL_TAKEN, _phrases(
        r"does not accept (?:e-?)?mail(?! with)", r"null mx",
        r"not accepting (?:any )?mail(?! with)",
        r"accepts no mail", r"no mail (?:is )?accepted", r"no smtp service",
    )),
    (TEMPORARY, _phrases(  # the name servers failed: the domain may well exist
        r"(?:malformed|unexpected)[\w ]{0,20}name ?server", r"servfail",
        r"dns (?:server )?(?:timeout|timed out|temporary|try again)",
        r"temporary (?:dns|lookup|name) (?:failure|error)",
        r"not\s+found,?\s+try\s+again",  # a resolver's TRY_AGAIN, not NXDOMAIN
    )),
    (HOST_UNKNOWN, _phrases(
        r"(?:host|domain) \S+ (?:not found|does not exist|unknown)", r"dns lookup fail",
        r"domain[^.\n]{0,20}not reachable",
        r"(?:host|domain)(?: name)? (?:is )?(?:unknown|not found|does not exist|not exist|"
        r"lookup failed|not resolv)", r"unknown (?:host|domain)", r"no such (?:host|domain)",
        r"host or domain name not found", r"nxdomain", r"invalid domain",
        r"name or service not known",  # the resolver's words for a name that does not exist
        r"unrouteable (?:mail )?(?:address|domain)", r"no (?:mx|mail exchanger|dns)",
        r"mx (?:record|lookup)", r"illegal host", r"domain (?:is )?not (?:configured|valid|"
        r"registered)", r"could not be resolved",
        r"unable to (?:resolve|find) (?:the )?(?:host|domain|mx)", r"dns (?:error|failure)",
        r"domaine? (?:inexistant|inconnu)", r"dominio (?:inexistente|desconocido)",
    )),
    (TOO_LARGE, _phrases(
        r"(?:message|mail|e-?mail)[^.\n]{0,20}(?:too (?:large|big|long)|size exceed|exceeds|"
        r"length exceed|is larger)", r"size limit", r"too (?:large|big)",
        r"maximum (?:message )?size", r"exceeds? (?:the )?(?:fixed )?maximum",
        r"message size", r"size (?:of the message|exceeded)",
    )),
    (EXPIRED, _phrases(
        r"retry (?:timeout|time) (?:exceeded|expired)", r"(?:delivery|message|queue)[^.\n]{0,40}"
        r"(?:expired|too long)", r"expired", r"gave up after", r"could not be delivered "
        r"(?:with)?in \d+", r"not (?:been )?delivered (?:for|in|within) \d+",
        r"lifetime exceeded", r"time ?out (?:exceeded|reached)", r"in the queue for",
        r"has been (?:delayed|in the queue)", r"been undeliverable for",
    )),
    (FORMAT, _phrases(  # before spam: servers say they check the format to keep spam out
        r"not (?:rfc ?(?:5322|2822|822)?|rfc[- ]?) ?compliant|non-?compliant with rfc",
        r"multiple (?:addresses in (?:the )?(?:from|sender)|(?:from|sender|subject|date|to|"
        r"message-id)(?::? header)?s? (?:headers?|fields?))",
        r"duplicate (?:[\w-]+:? )?header", r"(?:missing|malformed|invalid) (?:[\w-]+:? )?header",
        r"header (?:syntax|field)[^.\n]{0,20}(?:invalid|error|malformed)", r"bare lf|bare line ?feed",
        r"(?:header|line) too long", r"message (?:is )?not compliant",
    )),
    (SPAM, _phrases(
        r"spam", r"junk ?mail", r"unsolicited", r"\bu[bc]e\b", r"bulk (?:mail|e-?mail)",
        r"virus", r"malware", r"infected", r"phishing", r"mail flood",
        r"classified as", r"scored (?:too high|as)", r"content filter",
    )),
    (CONTENT, _phrases(
        r"media (?:error|type)",
        r"(?:content|attachment|file type|header|body|mime|character set|encoding|format)s?"
        r"[^.\n]{0,30}(?:not allowed|rejected|refused|prohibited|error|invalid|illegal|"
        r"forbidden|blocked)", r"(?:rejected|refused|blocked) (?:due to|because of) "
        r"(?:its )?(?:content|attachment)", r"invalid message",
        r"(?:not accepting|does not accept|do not accept) (?:e-?)?mail with",
    )),
    (POLICY, _phrases(  # named lists and checks: these say who refused and why
        r"block ?list|black ?list|\brbl\b|dnsbl|spamhaus|spamcop|barracuda|sorbs",
        r"blocked using|listed (?:at|on|in|by)|reputation",
        r"\bspf\b|\bdkim\b|\bdmarc\b", r"invalid ip|(?:your|sending|the) ip\b",
        r"reverse (?:dns|lookup)|\bptr\b|\brdns\b", r"violation", r"mismatch",
    )),
    (TEMPORARY, _phrases(
        r"grey ?list|gray ?list", r"try (?:again )?later", r"temporar", r"rate ?limit",
        r"too many (?:connections|messages|recipients|concurrent|sessions|mails)",
        r"(?:connection|network)[^.\n]{0,20}(?:timed out|time ?out|refused|reset|lost|error|"
        r"failed|closed)", r"timed out", r"deferred", r"throttl", r"resources? "
        r"(?:unavailable|exhausted)", r"insufficient system (?:storage|resources)",
        r"system (?:error|failure|busy|not available|is full)", r"local error",
        r"server (?:busy|error|unavailable)", r"service (?:not available|temporarily)",
        r"queue", r"sending (?:too )?(?:fast|quickly)", r"delayed",
        r"mail system full", r"loop(?:s)? (?:back|detected)|routing loop|mail loop",
        r"loop alert|duplicated? message-?id",
    )),
    (OTHER, _phrases(
        r"mailer error", r"syntax error", r"command (?:unrecognized|not recognized)",
        r"unknown command", r"protocol error",
    )),
    (POLICY, _phrases(
        r"block ?list|black ?list|blocked|\brbl\b|dnsbl|spamhaus|spamcop|barracuda|sorbs",
        r"reputation", r"policy", r"relay(?:ing)? (?:denied|not permitted|access|prohibited)",
        r"not permitted to relay|relay not|unable to relay|we do not relay|relaying",
        r"\bspf\b|\bdkim\b|\bdmarc\b|authenticat|unauthenticated|not authorized",
        r"reverse (?:dns|lookup)|\bptr\b|\brdns\b|\bhelo\b|\behlo\b",
        r"(?:sender|client|host|ip|domain|connection|access)[^.\n]{0,30}(?:rejected|denied|"
        r"refused|blocked|not allowed|banned)", r"denied", r"refused", r"not allowed",
        r"prohibited", r"administrative", r"filtered|filter", r"tls|encryption|starttls",
        r"security", r"banned", r"forbidden", r"listed (?:at|on|in|by)", r"rejected",
        r"not (?:a )?member|members? only|(?:not (?:allowed|permitted)|no permission) to post",
        r"rejet[ée]|abgelehnt|rechazad|rifiutat|отклонен|拒否",
    )),
)

# RFC 3463 enhanced status codes: "class.subject.detail", by "subject.detail" (the class says
# only whether it was for good). The most specific known code wins.
STATUS_CODES: dict[str, Reason] = {
    "1.1": USER_UNKNOWN, "1.0": USER_UNKNOWN, "1.3": USER_UNKNOWN, "1.4": USER_UNKNOWN,
    "1.6": USER_UNKNOWN, "1.2": HOST_UNKNOWN,
    "1.10": USER_UNKNOWN,  # RFC 7505 says a null MX; Exchange Online says RecipientNotFound
    "1.5": POLICY, "1.7": POLICY, "1.8": POLICY,
    "2.0": OTHER, "2.1": SUSPENDED, "2.2": MAILBOX_FULL, "2.3": TOO_LARGE, "2.4": OTHER,
    "3.0": TEMPORARY, "3.1": TEMPORARY, "3.2": TEMPORARY, "3.3": CONTENT, "3.4": TOO_LARGE,
    "3.5": TEMPORARY,
    "4.0": TEMPORARY, "4.1": TEMPORARY, "4.2": TEMPORARY, "4.3": TEMPORARY,
    "4.4": HOST_UNKNOWN, "4.5": TEMPORARY, "4.6": OTHER, "4.7": EXPIRED,
    "5.0": OTHER, "5.1": OTHER, "5.2": OTHER, "5.3": TOO_LARGE, "5.4": OTHER, "5.5": OTHER,
    "5.6": OTHER,
    "6.0": CONTENT, "6.1": CONTENT, "6.2": CONTENT, "6.3": CONTENT, "6.4": CONTENT,
    "6.5": CONTENT,
    "7.0": POLICY, "7.1": POLICY, "7.2": POLICY, "7.3": POLICY, "7.4": POLICY, "7.5": POLICY,
    "7.6": POLICY, "7.7": POLICY, "7.8": POLICY, "7.9": POLICY, "7.10": POLICY,
    "7.11": POLICY, "7.12": POLICY, "7.13": SUSPENDED, "7.14": POLICY, "7.15": POLICY,
    "7.16": TOO_LARGE, "7.17": SUSPENDED, "7.18": SUSPENDED, "7.19": POLICY,
    "7.20": POLICY, "7.21": POLICY, "7.22": POLICY, "7.23": POLICY, "7.24": POLICY,
    "7.25": POLICY, "7.26": POLICY, "7.27": NO_MAIL_TAKEN, "7.28": SPAM, "7.29": POLICY,
    "7.30": POLICY,
}
# Codes too general to say why: the words decide, and failing words, they say "other".
VAGUE_CODES = {"0.0", "5.0", "7.0", "7.1", "1.0", "2.0"}

# The bare SMTP reply code, when no enhanced status code and no known words are given.
REPLY_CODES: dict[str, Reason] = {
    "421": TEMPORARY, "450": TEMPORARY, "451": TEMPORARY, "452": MAILBOX_FULL,
    "521": NO_MAIL_TAKEN, "550": OTHER, "551": USER_UNKNOWN, "552": MAILBOX_FULL,
    "553": USER_UNKNOWN, "554": OTHER, "556": NO_MAIL_TAKEN,
}

STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
REPLY = re.compile(r"(?<![\d.\-#])([245][0-5]\d)(?:[ -]|$)(?![\d.]*%)")


class Verdict(NamedTuple):
    """One recipient's outcome: ``hard`` (bounced for good) or ``soft`` (not, or not yet)."""

    hard: bool
    reason_code: str
    status: str  # the enhanced status code read or given, "" when none


def status_code(*texts: str) -> str:
    """The first RFC 3463 status code in some texts (``5.1.1``), "" when none."""
    for text in texts:
        found = STATUS.search(text or "")
        if found:
            return ".".join(found.groups())
    return ""


def reply_code(text: str) -> str:
    """The first SMTP reply code in a text (``550``), "" when none."""
    found = REPLY.search(text or "")
    return found.group(1) if found else ""


def reason_from_words(text: str) -> Reason | None:
    for reason, phrases in PHRASES:
        if phrases.search(text):
            return reason
    return None


def verdict(status: str, diagnostic: str, *, given_up: bool, context: str = "") -> Verdict:
    """Read one recipient's status code (may be "") and the server's words; ``context``, the
    report's other lines about the recipient, is read when those words say nothing known.

    ``given_up``: the report says the delivery failed for good (DSN ``Action: failed``, a
    "permanent error" text); False for a delay warning, which is never hard.
    """
    # The server's own code, quoted in its reply, says more than the reporting MTA's reading.
    status = status_code(diagnostic) or status_code(status)
    reply = reply_code(diagnostic)
    detail = status.split(".", 1)[1] if status else ""
    reason = None
    if detail and detail not in VAGUE_CODES:
        reason = STATUS_CODES.get(detail)
    words = reason_from_words(diagnostic) or reason_from_words(context)
    # The words win over a code, except where the code is specific about the address and the
    # words are only a generic refusal.
    if words is not None and not (
            reason is not None and reason.code in ("user_unknown", "host_unknown",
                                                   "mailbox_full")
            and words in (POLICY, SPAM, CONTENT, FORMAT, OTHER)):
        reason = words
    if reason is None and detail:
        reason = STATUS_CODES.get(detail)
    if reason is None:
        reason = REPLY_CODES.get(reply, OTHER)
    if detail.startswith("7.") and reason in (CONTENT, OTHER):
        # A security or policy status (RFC 3463 X.7.X) with no more specific words: the
        # server refused us by policy.
        reason = POLICY
    if status:
        permanent = status.startswith("5")
    elif reply:
        permanent = reply.startswith("5")
    else:
        permanent = given_up
    if reason.rule == HARD:
        hard = given_up
    elif reason.rule == HARD_UNLESS_4XX:
        hard = given_up and not (status.startswith("4") or reply.startswith("4"))
    elif reason.rule == HARD_IF_PERMANENT:
        hard = given_up and permanent
    else:
        hard = False
    return Verdict(hard, reason.code, status)
