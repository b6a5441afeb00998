"""Recipients' addresses: checked when set, a malformed one kept and reported, never sent to."""
from __future__ import annotations

from flask import current_app

from .models import Recipient


def email_problem(address: str | None) -> tuple[str | None, str | None, str | None]:
    """(address to store, its lower-cased domain, why it cannot be used or None)."""
    if address is None or not address.strip():
        return None, None, None
    from .validation import check_email

    check = check_email(address.strip(),
                        check_deliverability=current_app.config["CHECK_DELIVERABILITY"])
    if not check.valid:
        domain = address.rpartition("@")[2].strip().lower() or None
        return address.strip(), domain, check.error
    return check.normalized, check.normalized.rpartition("@")[2].lower(), None


def set_email(recipient: Recipient, address: str | None) -> None:
    recipient.email, recipient.email_domain, recipient.email_error = email_problem(address)
