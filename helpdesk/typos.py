"""Fixing misspelled addresses: bounced recipients whose address has a likely correction.

Only bounced recipients are scanned (a small set), and the suggestions are computed in Python by
the same check as everywhere else. Accepting a suggestion resends to the corrected address (the
bounced delivery stays on the timeline); rejecting one remembers the address it was made for, so
it is not offered again unless the address changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select

from . import publishing
from .models import Delivery, DeliveryEvent, Recipient, db
from .queries import Page
from .addresses import check_address, email_problem, set_email
from .status import BOUNCED


class StaleSuggestion(ValueError):
    """The suggestion no longer applies (the address changed, or the recipient was fixed)."""


@dataclass(frozen=True)
class TypoFix:
    recipient: Recipient
    suggestion: str
    confidence: float
    bounce_reason: str | None


def _suggestions() -> list[tuple[int, str, float]]:
    """(recipient id, suggested address, confidence) for every bounced recipient whose address
    has a suggestion nobody rejected, by recipient id."""
    rows = db.session.execute(
        select(Recipient.id, Recipient.email)
        .where(Recipient.status == BOUNCED, Recipient.email.is_not(None),
               or_(Recipient.typo_dismissed_for.is_(None),
                   Recipient.typo_dismissed_for != Recipient.email))
        .order_by(Recipient.id))
    found = []
    for recipient_id, email in rows:
        check = check_address(email)
        if check.suggestion:
            found.append((recipient_id, check.suggestion, check.confidence))
    return found


def _bounce_reasons(recipient_ids: list[int]) -> dict[int, str]:
    """The latest bounce reason of each recipient."""
    reasons: dict[int, str] = {}
    rows = db.session.execute(
        select(Delivery.recipient_id, DeliveryEvent.reason, DeliveryEvent.mta_response)
        .join(DeliveryEvent.delivery)
        .where(Delivery.recipient_id.in_(recipient_ids), DeliveryEvent.level == BOUNCED)
        .order_by(DeliveryEvent.occurred_at, DeliveryEvent.id))
    for recipient_id, reason, mta_response in rows:
        reasons[recipient_id] = reason or mta_response or ""
    return reasons


def typo_page(page: int = 1, per_page: int = 50) -> Page:
    """One page of the bounced recipients with a suggested correction."""
    found = _suggestions()
    pages = max(1, -(-len(found) // per_page))
    page = min(max(page, 1), pages)
    chosen = found[(page - 1) * per_page: page * per_page]
    recipients = {r.id: r for r in db.session.scalars(
        select(Recipient).where(Recipient.id.in_([i for i, _, _ in chosen])))}
    reasons = _bounce_reasons(list(recipients))
    fixes = [TypoFix(recipients[i], suggestion, confidence, reasons.get(i))
             for i, suggestion, confidence in chosen]
    return Page(items=fixes, number=page, size=per_page, total=len(found))


def accept(recipient: Recipient, suggestion: str) -> Delivery:
    """Resend to the suggested address, which becomes the recipient's. Raises StaleSuggestion
    when it is not the suggestion for the recipient's current bounced address."""
    if recipient.status != BOUNCED or not recipient.email:
        raise StaleSuggestion(f"{recipient.email or 'the recipient'} is no longer bounced")
    current = check_address(recipient.email).suggestion
    if current != suggestion:
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
    fixes = {i: s for i, s, _ in _suggestions()}
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
    return publishing.resend_many(fixed), problems
