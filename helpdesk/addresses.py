"""Recipients' addresses: checked when set, a malformed one kept and reported, never sent to."""
from __future__ import annotations

import time

from flask import current_app
from sqlalchemy import select

from . import plugins
from .models import Recipient, db
from .status import NOT_OPENED, OPENED
from .validation import EmailCheck, check_email

# Known domains are read again at most this often: new ones matter for typo suggestions only.
KNOWN_DOMAINS_MAX_AGE_SECONDS = 60


def known_domains() -> frozenset[str]:
    """Domains the typo suggester treats as real besides the built-in mailbox providers: those
    this installation has delivered to (a recipient there is not opened or opened) and those
    plugins add (``helpdesk_known_domains``). Cached per app for a minute."""
    app = current_app._get_current_object()
    cached = app.extensions.get("helpdesk_known_domains")
    now = time.monotonic()
    if cached is not None and now - cached[0] < KNOWN_DOMAINS_MAX_AGE_SECONDS:
        return cached[1]
    delivered = db.session.scalars(
        select(Recipient.email_domain).distinct()
        .where(Recipient.status.in_((NOT_OPENED, OPENED)), Recipient.email_domain.is_not(None)))
    # One frozenset object per minute: the suggester is cached by it.
    domains = frozenset(d.strip().lower() for d in delivered if d and d.strip()) | offered_domains()
    app.extensions["helpdesk_known_domains"] = (now, domains)
    return domains


def offered_domains() -> frozenset[str]:
    """The domains plugins declare real (``helpdesk_known_domains``)."""
    return frozenset(d.strip().lower() for domains in plugins.hook().helpdesk_known_domains()
                     for d in domains or () if d and d.strip())


def check_address(address: str, *, check_deliverability: bool = False) -> EmailCheck:
    """The one "did you mean …?": ``check_email`` with this installation's known domains, so that
    a domain a plugin declares real or one delivered to before is never "corrected". Every page,
    the API and the command line ask here."""
    return check_email(address, known_domains=known_domains(),
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
