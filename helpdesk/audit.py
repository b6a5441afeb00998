"""The audit log: who fixed, resent, nudged, published, deleted, imported, created or revoked
what. The modules that make a change record it (``record``); the recipient's timeline and the
admin page read it."""
from __future__ import annotations

from typing import Iterable

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .models import AuditEntry, Credential, Recipient, db

# What an entry says happened, as the pages write it after the actor's name.
ACTIONS = {
    "created": "created",
    "imported": "imported",
    "edited": "edited",
    "fixed": "fixed the address of",
    "sent": "sent",
    "resent": "resent",
    "nudged": "nudged",
    "published": "published",
    "deleted": "deleted",
    "shared": "shared",
    "revoked": "revoked",
}


def current_actor() -> str | None:
    """The signed-in user (or token owner) making this request; None outside a request or
    without a user, meaning the system itself (scheduled publishing, automatic nudges)."""
    if has_request_context() and current_user.is_authenticated:
        return current_user.email
    return None


def describe(recipient: Recipient) -> str:
    who = recipient.name or "(no name)"
    return f"{who} <{recipient.email}>" if recipient.email else who


def record(action: str, summary: str, *, credential_id: int | None = None,
           recipient_id: int | None = None) -> AuditEntry:
    """Add an entry to the session (committed with the change it describes)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(actor=current_actor(), action=action, credential_id=credential_id,
                       recipient_id=recipient_id, summary=summary)
    db.session.add(entry)
    return entry


def record_recipients(action: str, recipients: Iterable[Recipient], detail: str = "") -> None:
    """One entry per recipient, so that each one's timeline shows it: one multi-row insert
    (added as objects, SQLite would get one INSERT … RETURNING per entry)."""
    actor = current_actor()
    rows = [{"actor": actor, "action": action, "credential_id": r.credential_id,
             "recipient_id": r.id, "summary": describe(r) + (f" {detail}" if detail else "")}
            for r in recipients]
    if rows:
        db.session.execute(insert(AuditEntry), rows)


def record_credential(action: str, credential: Credential, detail: str = "") -> AuditEntry:
    return record(action, f"“{credential.title}” (#{credential.id})"
                  + (f" {detail}" if detail else ""), credential_id=credential.id)


def for_recipient(session: Session, recipient: Recipient) -> list[AuditEntry]:
    """The recipient's own entries and its credential's, newest first."""
    return list(session.scalars(
        select(AuditEntry).where(
            (AuditEntry.recipient_id == recipient.id)
            | ((AuditEntry.credential_id == recipient.credential_id)
               & AuditEntry.recipient_id.is_(None)))
        .order_by(AuditEntry.id.desc()).limit(100)))


def latest(session: Session, *, action: str | None = None, before: int | None = None,
           limit: int = 50) -> list[AuditEntry]:
    """A page of the log, newest first, from before the entry id ``before`` (keyset paging)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if before:
        query = query.where(AuditEntry.id < before)
    return list(session.scalars(query))


def still_there(session: Session, entries: Iterable[AuditEntry]) -> tuple[set[int], set[int]]:
    """Which of the recipients and credentials these entries name still exist (two queries),
    so that a page links to those and says "deleted" of the others."""
    entries = list(entries)
    recipient_ids = {e.recipient_id for e in entries if e.recipient_id is not None}
    credential_ids = {e.credential_id for e in entries if e.credential_id is not None}
    recipients = set(session.scalars(select(Recipient.id).where(
        Recipient.id.in_(recipient_ids)))) if recipient_ids else set()
    credentials = set(session.scalars(select(Credential.id).where(
        Credential.id.in_(credential_ids)))) if credential_ids else set()
    return recipients, credentials
