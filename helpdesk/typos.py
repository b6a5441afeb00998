"""Fixing misspelled addresses: bounced recipients whose address has a likely correction.

The list is an indexed query: each recipient's diagnosis (``helpdesk.diagnosis``) stores the
typo cause and its correction when the bounce arrives. Accepting a suggestion resends to the
corrected address (the bounced delivery stays on the timeline); rejecting one remembers the
address it was made for, so it is not offered again unless the address changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select

from . import publishing
from .causes import TYPO
from .models import Delivery, Recipient, db
from .queries import Page
from .addresses import check_address, email_problem, set_email


class StaleSuggestion(ValueError):
    """The suggestion no longer applies (the address changed, or the recipient was fixed)."""


@dataclass(frozen=True)
class TypoFix:
    recipient: Recipient
    suggestion: str
    confidence: float | None  # None: the history changed since; refresh_typos will re-diagnose
    bounce_reason: str | None


def _listed():
    """The conditions of a listed typo: the stored diagnosis is a typo with a correction, and
    nobody rejected it for the current address (``ix_recipient_cause`` finds them)."""
    return (Recipient.cause == TYPO, Recipient.typo_suggestion.is_not(None),
            or_(Recipient.typo_dismissed_for.is_(None),
                Recipient.typo_dismissed_for != Recipient.email))


def typo_page(page: int = 1, per_page: int = 50) -> Page:
    """One page of the bounced recipients with a suggested correction."""
    total = db.session.scalar(select(func.count()).where(*_listed())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    recipients = db.session.scalars(select(Recipient).where(*_listed()).order_by(Recipient.id)
                                    .limit(per_page).offset((page - 1) * per_page)).all()
    fixes = [TypoFix(r, r.typo_suggestion, _confidence(r), r.evidence) for r in recipients]
    return Page(items=fixes, number=page, size=per_page, total=total)


def _confidence(recipient: Recipient) -> float | None:
    """How sure the suggester is of the stored suggestion now, or None when it no longer makes
    it (a domain delivered to since, say): the row stays until the stored cause is refreshed."""
    check = check_address(recipient.email)
    return check.confidence if check.suggestion == recipient.typo_suggestion else None


def accept(recipient: Recipient, suggestion: str) -> Delivery:
    """Resend to the suggested address, which becomes the recipient's. Raises StaleSuggestion
    when it is not the suggestion for the recipient's current bounced address."""
    if recipient.cause != TYPO or not recipient.email:
        raise StaleSuggestion(f"{recipient.email or 'the recipient'} is no longer bounced")
    if recipient.typo_suggestion != suggestion:
        raise StaleSuggestion(f"{suggestion} is not the suggestion for {recipient.email} "
                              "any more")
    return publishing.resend(recipient, email=suggestion)


def reject(recipient: Recipient) -> None:
    """Stop suggesting a correction for the recipient's current address."""
    recipient.typo_dismissed_for = recipient.email
    db.session.commit()


def accept_all() -> tuple[int, list[str]]:
    """Accept every listed suggestion and resend, in one batch. Returns how many were resent,
    and why any others were not."""
    fixes = dict(db.session.execute(select(Recipient.id, Recipient.typo_suggestion)
                                    .where(*_listed())).all())
    recipients = db.session.scalars(select(Recipient).where(Recipient.id.in_(list(fixes)))
                                    .order_by(Recipient.id)).all()
    fixed, problems = [], []
    for recipient in recipients:
        problem = email_problem(fixes[recipient.id])[2]
        if problem:
            problems.append(f"{fixes[recipient.id]}: {problem}")
        else:
            set_email(recipient, fixes[recipient.id])
            fixed.append(recipient)
    # Their addresses are corrected: what made resending them unchanged hopeless is gone.
    return publishing.resend_many(fixed, include_all=True).queued, problems
