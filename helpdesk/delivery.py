"""Publishing credentials and sending their emails: creating deliveries, handing them to the
provider from the queue, and turning what the provider answered into events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from flask import current_app, render_template
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import selectinload

from . import events, plugins, queue
from .mail import CORRELATION_HEADER, Message, ProviderEvent, SendResult
from .models import Credential, CredentialState, Delivery, Recipient, db, utcnow
from .recipients import email_problem, set_email
from .status import BOUNCED, NOT_OPENED, SENDING, STATUSES

# Deliveries go to the queue in chunks, so that one task reuses one provider connection.
BATCH_SIZE = 100


def header_safe(text: str) -> str:
    """One line of text: CR, LF and other control characters can never reach a mail header."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def sendable(recipient: Recipient) -> bool:
    return bool(recipient.email) and not recipient.email_error


def publish(credential: Credential) -> list[Delivery]:
    """Publish a credential; when it sends email, queue one delivery per recipient with a usable
    address that has none yet."""
    credential.state = CredentialState.published
    credential.published_at = credential.published_at or utcnow()
    db.session.flush()
    pending = [r for r in credential.recipients if sendable(r) and not r.deliveries]
    deliveries = queue_deliveries(pending) if credential.send_email else []
    events.refresh_and_commit([r.id for r in credential.recipients])
    return deliveries


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
                     email: str | None = None) -> list[Delivery]:
    """Create a delivery for each recipient (to ``email`` when given, else its own address),
    record it as queued and hand it to the queue once committed."""
    provider = current_app.config["PROVIDER"]
    plugins.provider(provider)  # fail now, not in the worker, when the provider is unknown
    now = utcnow()
    created = []
    for recipient in recipients:
        delivery = Delivery(recipient=recipient, email=email or recipient.email,
                            provider=provider, kind=kind, created_at=now)
        db.session.add(delivery)
        created.append(delivery)
    db.session.flush()
    events.record_events([
        ProviderEvent(provider=d.provider, type="queued", event_id=f"{d.correlation_id}:queued",
                      occurred_at=now, correlation_id=d.correlation_id, recipient=d.email)
        for d in created])
    ids = [d.id for d in created]
    for start in range(0, len(ids), BATCH_SIZE):
        queue.enqueue_send(ids[start:start + BATCH_SIZE])
    return created


def resend(recipient: Recipient, email: str | None = None, kind: str = "resend") -> Delivery:
    """Send again, optionally to a corrected address (which becomes the recipient's address).
    The earlier deliveries stay on the timeline. Raises ValueError, changing nothing, when the
    new address is malformed or there is no usable address."""
    if email and email != recipient.email:
        problem = email_problem(email)[2]
        if problem:
            raise ValueError(problem)
        set_email(recipient, email)
    if not sendable(recipient):
        raise ValueError(recipient.email_error or "the recipient has no email address")
    _publish_for_resend([recipient])
    return queue_deliveries([recipient], kind=kind)[0]


def _publish_for_resend(recipients: Sequence[Recipient]) -> None:
    """Sending a recipient of a draft or scheduled credential publishes the credential."""
    for credential in {r.credential for r in recipients}:
        if not credential.published:
            credential.state = CredentialState.published
            credential.published_at = utcnow()


def resend_many(recipients: Sequence[Recipient]) -> int:
    """Resend to each recipient with a usable address; returns how many were queued."""
    usable = [r for r in recipients if sendable(r)]
    if not usable:
        return 0
    _publish_for_resend(usable)
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
    queue_deliveries(db.session.scalars(select(Recipient).where(Recipient.id.in_(claimed))
                                        .order_by(Recipient.id)
                                        .execution_options(populate_existing=True)).all(),
                     kind="nudge")
    return len(claimed)


# --- the queue's side -------------------------------------------------------------------------

def build_message(delivery: Delivery) -> Message:
    cfg = current_app.config
    recipient = delivery.recipient
    context = {"recipient": recipient, "credential": recipient.credential,
               "organisation": cfg["ORGANISATION"], "pixel_url": pixel_url(delivery)}
    return Message(
        correlation_id=delivery.correlation_id,
        sender=cfg["SENDER"],
        to=delivery.email,
        to_name=header_safe(recipient.name or ""),
        subject=header_safe(f"Your credential: {recipient.credential.title}"),
        text=render_template("email/credential.txt", **context),
        html=render_template("email/credential.html", **context),
        headers={CORRELATION_HEADER: delivery.correlation_id},
    )


# The events of a batch's answers are recorded together, this many sends at a time: few enough
# that a worker dying mid-batch leaves little to resend, enough to keep the database off the
# critical path of sending.
RECORD_EVERY = 10


@dataclass(frozen=True)
class _Pending:
    """What sending needs of a delivery, copied out so that no transaction stays open and no
    row is reloaded while providers answer."""

    id: int
    provider: str
    correlation_id: str
    email: str
    attempts: int
    message: Message


def send_batch(delivery_ids: Iterable[int]) -> dict[str, int]:
    """Hand each delivery still waiting to its provider; returns counts by outcome.

    A delivery that already has an answer, or that another task holds, is skipped, so a batch
    run twice (a worker that died mid-send and was restarted, a requeued batch whose original
    was still queued) does not send it again.
    """
    claimed = _claim(list(delivery_ids))
    deliveries = db.session.scalars(
        select(Delivery).where(Delivery.id.in_(list(delivery_ids))).order_by(Delivery.id)
        # the messages need each recipient and credential: one query, not one per delivery
        .options(selectinload(Delivery.recipient).selectinload(Recipient.credential))
        .execution_options(populate_existing=True)).all()  # what is stored, not what is cached
    waiting = [d for d in deliveries
               if d.id in claimed and d.status == SENDING and d.sent_at is None]
    counts = {"skipped": len(deliveries) - len(waiting)} if len(waiting) < len(deliveries) else {}
    pending = [_Pending(d.id, d.provider, d.correlation_id, d.email, d.attempts, build_message(d))
               for d in waiting]
    db.session.commit()  # hold no transaction open while the providers answer
    answered: list[tuple[_Pending, SendResult]] = []
    for item in pending:
        answered.append((item, plugins.provider(item.provider).send(item.message)))
        if len(answered) == RECORD_EVERY:
            _record_answers(answered, counts)
            answered = []
    _record_answers(answered, counts)
    return counts


def _claim(delivery_ids: list[int]) -> set[int]:
    """Take the deliveries that are due and unanswered for this task, for SEND_STALL_SECONDS:
    their ``send_due_at`` moves past now, so a second task holding them (a requeued batch and
    its original) finds none due. A worker that dies holding them leaves them to
    ``requeue_stalled`` once that lease is long past."""
    now = utcnow()
    lease = now + timedelta(seconds=float(current_app.config["SEND_STALL_SECONDS"]))
    taken = db.session.execute(
        update(Delivery).where(
            Delivery.id.in_(delivery_ids), Delivery.status == SENDING,
            Delivery.sent_at.is_(None),
            or_(Delivery.send_due_at.is_(None), Delivery.send_due_at <= now))
        .values(send_due_at=lease).returning(Delivery.id),
        execution_options={"synchronize_session": False}).scalars().all()
    db.session.commit()
    return set(taken)


def _record_answers(answered: list[tuple[_Pending, SendResult]], counts: dict[str, int]) -> None:
    """Turn the providers' answers into events, in one transaction, and schedule the retries."""
    if not answered:
        return
    retries = int(current_app.config["SEND_RETRIES"])
    now = utcnow()
    updates, found, retry_after = [], [], {}
    for item, result in answered:
        attempts = item.attempts + 1
        outcome = result.outcome
        if outcome == "deferred" and attempts > retries:
            outcome = result.give_up_as
        counts[outcome] = counts.get(outcome, 0) + 1
        update_row = {"id": item.id, "attempts": attempts}
        if outcome != "deferred":
            update_row["sent_at"] = now
        if result.message_id:
            update_row["provider_message_id"] = result.message_id
        updates.append(update_row)
        suffix = f":{attempts}" if outcome == "deferred" else ""
        found.append(ProviderEvent(
            provider=item.provider, type=outcome,
            event_id=f"{item.correlation_id}:{outcome}{suffix}", occurred_at=now,
            correlation_id=item.correlation_id, recipient=item.email,
            severity="temporary" if outcome == "deferred" else None,
            reason=result.reason or None, mta_response=result.reason or None))
        if outcome == "deferred":
            delay = float(current_app.config["SEND_RETRY_DELAY"]) * 2 ** (attempts - 1)
            retry_after.setdefault(delay, []).append(item.id)
    db.session.execute(update(Delivery), updates)  # bulk, by primary key
    events.record_events(found)
    for delay, ids in retry_after.items():
        queue.enqueue_send(ids, delay=delay)


# --- opens through the tracking pixel -------------------------------------------------------

def _pixel_signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="helpdesk.open-pixel")


def pixel_url(delivery: Delivery) -> str:
    token = _pixel_signer().dumps(delivery.correlation_id)
    return f"{current_app.config['BASE_URL'].rstrip('/')}/t/{token}.gif"


def record_open(token: str) -> bool:
    """Record an open for a valid pixel token; a bad token records nothing."""
    try:
        correlation_id = _pixel_signer().loads(token)
    except BadSignature:
        return False
    delivery = db.session.scalar(select(Delivery).where(Delivery.correlation_id == correlation_id))
    if delivery is None:
        return False
    now = utcnow()
    # One open a minute is plenty for the timeline; a mail app reloading the image is not news.
    events.record_events([ProviderEvent(
        provider=delivery.provider, type="opened",
        event_id=f"{correlation_id}:pixel:{now:%Y%m%d%H%M}", occurred_at=now,
        correlation_id=correlation_id, recipient=delivery.email, reason="tracking pixel")])
    return True

