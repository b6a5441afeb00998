"""Stored causes: each recipient's diagnosis (``helpdesk.causes``) recomputed from its stored
events wherever its status is, and written beside it, so lists, filters and the typos page read
a column instead of re-reading every event."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from sqlalchemy import select, update

from . import plugins
from .addresses import DomainHistory, check_address
from .causes import (BOUNCE_CAUSES, DOMAIN_UNKNOWN, RETRYING, TYPO, TYPO_REASONS, DeliveryFacts,
                     Diagnosis, EventFacts, diagnose)
from .contract import capabilities
from .models import Credential, CredentialState, Delivery, DeliveryEvent, Recipient, db
from .validation import suggest_domain

EVIDENCE_LENGTH = 500  # the column's; the whole reply stays on the event


def _suggestion(email: str, domain_unknown: bool) -> str | None:
    return check_address(email, domain_unknown=domain_unknown).suggestion


def diagnoses(recipient_ids: Sequence[int]) -> dict[int, Diagnosis]:
    """The diagnosis of each of these recipients, from what is stored: three queries."""
    if not recipient_ids:
        return {}
    recipients = db.session.execute(
        select(Recipient.id, Recipient.email, Recipient.email_error, Credential.state)
        .join(Credential).where(Recipient.id.in_(recipient_ids))).all()
    reporting = {name for name, provider in plugins.providers().items()
                 if capabilities(provider).reports_deliveries}
    deliveries: dict[int, list[tuple[int, str, bool]]] = defaultdict(list)
    for delivery_id, recipient_id, email, provider in db.session.execute(
            select(Delivery.id, Delivery.recipient_id, Delivery.email, Delivery.provider)
            .where(Delivery.recipient_id.in_(recipient_ids)).order_by(Delivery.id)):
        deliveries[recipient_id].append((delivery_id, email, provider in reporting))
    events: dict[int, list[EventFacts]] = defaultdict(list)
    for row in db.session.execute(
            select(DeliveryEvent.delivery_id, DeliveryEvent.type, DeliveryEvent.occurred_at,
                   DeliveryEvent.severity, DeliveryEvent.reason_code, DeliveryEvent.reason,
                   DeliveryEvent.mta_response)
            .join(Delivery).where(Delivery.recipient_id.in_(recipient_ids))):
        events[row.delivery_id].append(EventFacts.of(row))
    return {r.id: diagnose(
        email=r.email, email_error=r.email_error, published=r.state == CredentialState.published,
        deliveries=[DeliveryFacts(email, tuple(events[d]), reports)
                    for d, email, reports in deliveries[r.id]],
        suggest=_suggestion) for r in recipients}


def changed_causes(recipient_ids: Sequence[int]) -> list[dict]:
    """Rows ``{id, cause, evidence, typo_suggestion}`` for the recipients whose stored
    diagnosis is not what their events now say."""
    found = diagnoses(recipient_ids)
    stored = db.session.execute(
        select(Recipient.id, Recipient.cause, Recipient.evidence, Recipient.typo_suggestion)
        .where(Recipient.id.in_(list(found)))).all()
    rows = []
    for recipient_id, cause, evidence, suggestion in stored:
        new = found[recipient_id]
        row = {"id": recipient_id, "cause": new.cause,
               "evidence": new.evidence[:EVIDENCE_LENGTH] or None,
               "typo_suggestion": new.suggestion}
        if (cause, evidence, suggestion) != (row["cause"], row["evidence"],
                                             row["typo_suggestion"]):
            rows.append(row)
    return rows


# The causes that the domain history can turn into a typo (a bounce the suggester is asked
# about), and the typo itself.
TYPO_SENSITIVE = frozenset({TYPO, RETRYING, *(BOUNCE_CAUSES[r] for r in TYPO_REASONS)})


def stale_typos(history: DomainHistory) -> list[int]:
    """The recipients whose stored cause ``history`` may now contradict: a typo whose
    correction the suggester no longer makes, or a bounce at a domain it would now correct.
    Each domain is judged once, as the diagnosis would ask about it."""
    stored = db.session.execute(
        select(Recipient.email_domain, Recipient.cause, Recipient.typo_suggestion).distinct()
        .where(Recipient.cause.in_(TYPO_SENSITIVE), Recipient.email_domain.is_not(None))).all()
    answers: dict[tuple[str, bool], str | None] = {}

    def suggested(domain: str, bounced_unknown: bool) -> str | None:
        if (domain, bounced_unknown) not in answers:
            found = suggest_domain(domain, history.known, domain_unknown=bounced_unknown
                                   or domain in history.unknown)
            answers[domain, bounced_unknown] = found.domain if found else None
        return answers[domain, bounced_unknown]

    stale = set()
    for domain, cause, suggestion in stored:
        if cause == TYPO:
            now = {suggested(domain, False), suggested(domain, True)}
            if (suggestion or "").rpartition("@")[2].lower() not in now:
                stale.add(domain)
        elif suggested(domain, cause == DOMAIN_UNKNOWN):
            stale.add(domain)
    if not stale:
        return []
    return list(db.session.scalars(
        select(Recipient.id).where(Recipient.email_domain.in_(sorted(stale)),
                                   Recipient.cause.in_(TYPO_SENSITIVE)).order_by(Recipient.id)))


def refresh_all(chunk: int = 500) -> int:
    """Diagnose every recipient again from its events (after an upgrade, or when the rules
    that read servers' replies improved), a chunk per transaction. Returns how many changed."""
    changed, last = 0, 0
    while True:
        ids = db.session.scalars(select(Recipient.id).where(Recipient.id > last)
                                 .order_by(Recipient.id).limit(chunk)).all()
        if not ids:
            return changed
        rows = changed_causes(ids)
        if rows:
            db.session.execute(update(Recipient), rows)  # bulk, by primary key
        db.session.commit()
        changed += len(rows)
        last = ids[-1]
