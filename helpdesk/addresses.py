"""Recipients' addresses: checked when set, a malformed one kept and reported, never sent to."""
from __future__ import annotations

import time
from typing import NamedTuple

from flask import current_app
from sqlalchemy import func, select

from . import plugins
from .causes import DOMAIN_UNKNOWN, TYPO, reply_reason
from .models import DomainTally, Recipient, db
from .status import NOT_OPENED, OPENED
from .validation import EmailCheck, check_email

# The installation's history is read again at most this often: it matters for typo
# suggestions only, and the stored ones are brought up to date by ``diagnosis.refresh_typos``.
KNOWN_DOMAINS_MAX_AGE_SECONDS = 60


class DomainHistory(NamedTuple):
    """What this installation's mail says about domains, for the typo suggester: ``known``
    ones are real (delivered to, or declared by a plugin), ``unknown`` ones do not exist (mail
    to them bounced as "host unknown" and none was delivered)."""

    known: frozenset[str]
    unknown: frozenset[str]


def read_domain_history() -> DomainHistory:
    """The history as the database has it now (uncached)."""
    # From the domain tally (``helpdesk.tallies``): a row or so per domain, not every recipient.
    delivered = db.session.scalars(
        select(DomainTally.email_domain).where(DomainTally.status.in_((NOT_OPENED, OPENED)))
        .group_by(DomainTally.email_domain).having(func.sum(DomainTally.n) > 0))
    known = frozenset(d.strip().lower() for d in delivered if d and d.strip()) | offered_domains()
    # The stored diagnosis holds the bounce that decided it; a typo's is read again to tell
    # "no such domain" from "no such mailbox" (ix_recipient_cause finds both kinds).
    bounced = db.session.execute(
        select(Recipient.email_domain, Recipient.cause, Recipient.evidence).distinct()
        .where(Recipient.cause.in_((DOMAIN_UNKNOWN, TYPO)), Recipient.email_domain.is_not(None)))
    unknown = frozenset(
        domain.strip().lower() for domain, cause, evidence in bounced
        if cause == DOMAIN_UNKNOWN or reply_reason(evidence or "")[0] == "host_unknown")
    return DomainHistory(known, unknown - known)


def domain_history(*, fresh: bool = False) -> DomainHistory:
    """``read_domain_history``, cached per app for a minute (``fresh``: read it now)."""
    app = current_app._get_current_object()
    cached = app.extensions.get("helpdesk_known_domains")
    now = time.monotonic()
    if not fresh and cached is not None and now - cached[0] < KNOWN_DOMAINS_MAX_AGE_SECONDS:
        return cached[1]
    # The same frozensets for a minute: the suggester is cached by them.
    history = read_domain_history()
    app.extensions["helpdesk_known_domains"] = (now, history)
    return history


def offered_domains() -> frozenset[str]:
    """The domains plugins declare real (``helpdesk_known_domains``)."""
    return frozenset(d.strip().lower() for domains in plugins.hook().helpdesk_known_domains()
                     for d in domains or () if d and d.strip())


def check_address(address: str, *, check_deliverability: bool = False,
                  domain_unknown: bool = False) -> EmailCheck:
    """The one "did you mean …?": ``check_email`` with this installation's history, so that a
    domain a plugin declares real or one delivered to before is never "corrected", and one that
    bounced as "host unknown" is corrected on the strength of that evidence. Every page, the API,
    the command line and the diagnosis ask here; ``domain_unknown`` says the caller has such a
    bounce for this address."""
    history = domain_history()
    unknown = history.unknown
    if domain_unknown:
        unknown = unknown | {address.rpartition("@")[2].strip().lower()}
    return check_email(address, known_domains=history.known, unknown_domains=unknown,
                       check_deliverability=check_deliverability)


def email_problem(address: str | None) -> tuple[str | None, str | None, str | None]:
    """(address to store, its lower-cased domain, why it cannot be used or None)."""
    if address is None or not address.strip():
        return None, None, None
    check = check_email(address.strip(),
                        check_deliverability=current_app.config["CHECK_DELIVERABILITY"])
    if not check.valid:
        domain = address.rpartition("@")[2].strip().lower() or None
        return address.strip(), domain, check.error
    return check.normalized, check.normalized.rpartition("@")[2].lower(), None


def set_email(recipient: Recipient, address: str | None) -> None:
    recipient.email, recipient.email_domain, recipient.email_error = email_problem(address)
