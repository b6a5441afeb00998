"""Publishing credentials and deciding who is emailed: creating deliveries (a first send, a
resend, a nudge), recording them as queued and handing them to the queue."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from flask import current_app
from sqlalchemy import and_, exists, func, insert, select, update

from . import audit, ingest, plugins, queue
from .addresses import email_problem, set_email
from .contract import ProviderEvent
from .models import (Credential, CredentialState, Delivery, Recipient, db,
                     new_correlation_id, utcnow)
from .status import BOUNCED, NOT_OPENED, SENDING, STATUSES

# Deliveries go to the queue in chunks, so that one task reuses one provider connection.
BATCH_SIZE = 100
# Recipients are published and their deliveries created this many at a time: a constant number
# of statements per chunk and flat memory, however many recipients a credential has, and the
# first chunk's emails leave while the next chunk is being written.
CHUNK_SIZE = 1000


def sendable(recipient: Recipient) -> bool:
    return bool(recipient.email) and not recipient.email_error


def publish(credential: Credential) -> int:
    """Publish a credential; when it sends email, queue one delivery per recipient with a usable
    address that has none yet. Returns how many were queued."""
    credential.state = CredentialState.published
    credential.published_at = credential.published_at or utcnow()
    db.session.flush()
    credential_id, send_email = credential.id, credential.send_email
    queued, after = 0, 0
    has_delivery = exists().where(Delivery.recipient_id == Recipient.id)
    while True:
        chunk = db.session.execute(
            select(Recipient.id, Recipient.email,
                   and_(Recipient.email.is_not(None), Recipient.email_error.is_(None),
                        ~has_delivery).label("due"))
            .where(Recipient.credential_id == credential_id, Recipient.id > after)
            .order_by(Recipient.id).limit(CHUNK_SIZE)).all()
        if not chunk:
            break
        due = [(r.id, r.email) for r in chunk if r.due] if send_email else []
        queued += len(_queue(due, "send"))  # their statuses are refreshed with their events
        # The others' statuses follow the published state.
        sent_to = {recipient_id for recipient_id, _ in due}
        others = [r.id for r in chunk if r.id not in sent_to]
        if others:
            ingest.refresh_and_commit(others)
        after = chunk[-1].id
    audit.record_credential("published", credential,
                            f"with {queued} email{'s' if queued != 1 else ''}"
                            if send_email else "without email")
    db.session.commit()  # a credential with no recipients is published too
    return queued


def publish_due(now: datetime | None = None) -> int:
    """Publish every scheduled credential whose time has come. Returns how many."""
    now = now or utcnow()
    due = db.session.scalars(select(Credential.id).where(
        Credential.state == CredentialState.scheduled, Credential.scheduled_at <= now)).all()
    published = 0
    for credential_id in due:
        # Every worker runs this task: the one whose update takes the credential out of
        # ``scheduled`` publishes it, in the same transaction; the others find nothing to do.
        claimed = db.session.execute(
            update(Credential).where(Credential.id == credential_id,
                                     Credential.state == CredentialState.scheduled)
            .values(state=CredentialState.published, published_at=now),
            execution_options={"synchronize_session": False}).rowcount
        if claimed:
            publish(db.session.get(Credential, credential_id, populate_existing=True))
            published += 1
        else:
            db.session.rollback()
    return published


def queue_deliveries(recipients: Sequence[Recipient], kind: str = "send",
                     email: str | None = None) -> list[int]:
    """Create a delivery for each recipient (to ``email`` when given, else its own address),
    record it as queued and hand it to the queue once committed. Returns the deliveries' ids."""
    targets = [(r.id, email or r.email) for r in recipients]
    ids: list[int] = []
    for start in range(0, len(targets), CHUNK_SIZE):
        ids += _queue(targets[start:start + CHUNK_SIZE], kind)
    return ids


def _queue(targets: Sequence[tuple[int, str]], kind: str) -> list[int]:
    """Deliveries for (recipient id, address) pairs in one multi-row insert, their "queued"
    events in one batch, committed, then handed to the queue BATCH_SIZE at a time."""
    if not targets:
        return []
    provider = current_app.config["PROVIDER"]
    plugins.provider(provider)  # fail now, not in the worker, when the provider is unknown
    now = utcnow()
    rows = [{"recipient_id": recipient_id, "email": address, "provider": provider,
             "kind": kind, "correlation_id": new_correlation_id(), "status": SENDING,
             "attempts": 0, "created_at": now, "send_due_at": now}
            for recipient_id, address in targets]
    # One multi-row INSERT … RETURNING (insertmanyvalues); rows come back in any order.
    id_of = dict(db.session.execute(
        insert(Delivery).returning(Delivery.correlation_id, Delivery.id), rows).all())
    ids = [id_of[row["correlation_id"]] for row in rows]
    ingest.record_events([  # commits
        ProviderEvent(provider=provider, type="queued", event_id=f"{row['correlation_id']}:queued",
                      occurred_at=now, correlation_id=row["correlation_id"],
                      recipient=row["email"])
        for row in rows])
    for start in range(0, len(ids), BATCH_SIZE):
        queue.submit_send(ids[start:start + BATCH_SIZE])
    return ids


class NotPublished(ValueError):
    """A recipient's email goes out when its credential is published, not one by one before."""

    def __init__(self, credential: Credential):
        super().__init__(f"“{credential.title}” is a {credential.state.value}: publish it to "
                         "send its emails")


def resend(recipient: Recipient, email: str | None = None, kind: str = "resend") -> Delivery:
    """Send again (or for the first time, once published), optionally to a corrected address
    (which becomes the recipient's address). The earlier deliveries stay on the timeline.
    Raises ValueError, changing nothing, when the new address is malformed, there is no usable
    address, or the credential is not published (``NotPublished``)."""
    if not recipient.credential.published:
        raise NotPublished(recipient.credential)
    if email and email != recipient.email:
        problem = email_problem(email)[2]
        if problem:
            raise ValueError(problem)
        old = recipient.email
        set_email(recipient, email)
        audit.record_recipients("fixed", [recipient], f"(was {old or 'no address'})")
    if not sendable(recipient):
        raise ValueError(recipient.email_error or "the recipient has no email address")
    if kind == "resend" and not recipient.deliveries:
        kind = "send"
    audit.record_recipients(AUDIT_ACTION[kind], [recipient])
    [delivery_id] = queue_deliveries([recipient], kind=kind)
    return db.session.get(Delivery, delivery_id)


AUDIT_ACTION = {"send": "sent", "resend": "resent", "nudge": "nudged"}


def resend_many(recipients: Sequence[Recipient]) -> int:
    """Resend to each recipient of a published credential with a usable address; returns how
    many were queued."""
    usable = [r for r in recipients if sendable(r) and r.credential.published]
    if not usable:
        return 0
    audit.record_recipients("resent", usable)
    queue_deliveries(usable, kind="resend")
    return len(usable)


def resend_in_status(credential_id: int, status: str) -> int:
    """Resend to every recipient of a credential in one status (e.g. all ``bounced`` after the
    sender was allowlisted). Returns how many were queued."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return resend_many(db.session.scalars(select(Recipient).where(
        Recipient.credential_id == credential_id, Recipient.status == status)
        .order_by(Recipient.id)).all())


def resend_bounced_at_domain(domain: str) -> int:
    """Resend to every bounced recipient at a domain (once its IT allowlisted the sender).
    Returns how many were queued."""
    return resend_many(db.session.scalars(select(Recipient).where(
        Recipient.email_domain == domain.strip().lower(), Recipient.status == BOUNCED)
        .order_by(Recipient.id)).all())


def nudge_due(now: datetime | None = None) -> int:
    """Resend to recipients who have not opened for NUDGE_AFTER_DAYS since their last send, at
    most NUDGE_MAX times each. Returns how many were nudged."""
    now = now or utcnow()
    cfg = current_app.config
    cutoff = now - timedelta(days=float(cfg["NUDGE_AFTER_DAYS"]))
    last_send = (select(Delivery.recipient_id, func.max(Delivery.created_at).label("last"))
                 .group_by(Delivery.recipient_id).subquery())
    due = db.session.execute(
        select(Recipient.id, Recipient.nudges).join(last_send,
                                                    last_send.c.recipient_id == Recipient.id)
        .where(Recipient.status == NOT_OPENED, Recipient.nudges < int(cfg["NUDGE_MAX"]),
               last_send.c.last <= cutoff)).all()
    by_count: dict[int, list[int]] = {}
    for recipient_id, nudges in due:
        by_count.setdefault(nudges, []).append(recipient_id)
    # Every worker runs this task: a recipient is nudged by the one whose compare-and-set on
    # ``nudges`` lands (one statement per count seen, at most NUDGE_MAX).
    claimed = [recipient_id for nudges, ids in by_count.items()
               for recipient_id in db.session.execute(
                   update(Recipient).where(Recipient.id.in_(ids), Recipient.nudges == nudges)
                   .values(nudges=nudges + 1).returning(Recipient.id),
                   execution_options={"synchronize_session": False}).scalars()]
    if not claimed:
        db.session.rollback()
        return 0
    nudged = db.session.scalars(select(Recipient).where(Recipient.id.in_(claimed))
                                .order_by(Recipient.id)
                                .execution_options(populate_existing=True)).all()
    audit.record_recipients("nudged", nudged, "automatically")
    queue_deliveries(nudged, kind="nudge")
    return len(claimed)
