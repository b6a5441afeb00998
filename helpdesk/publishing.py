"""Publishing credentials and deciding who is emailed: creating deliveries (a first send, a
resend, a nudge), recording them as queued and handing them to the queue."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import NamedTuple, Sequence

from flask import current_app
from sqlalchemy import and_, exists, insert, literal, select, update
from sqlalchemy.orm import selectinload

from . import audit, ingest, plugins, queue
from .addresses import email_problem, set_email
from .causes import CAUSES, NUDGED_CAUSES, DeliveryFacts, EventFacts, diagnose
from .contract import ProviderEvent, ServiceError, capabilities
from .diagnosis import EVIDENCE_LENGTH
from .models import (Credential, CredentialState, Delivery, DeliveryEvent, Recipient, db,
                     database_correlation_id, new_correlation_id, utcnow)
from .status import (BOUNCED, SENDING, STATUSES, DeliveryOutcome,
                     delivery_status, email_status, event_level, same_address)
from .transactions import retried

# Deliveries go to the queue in chunks, so that one task reuses one provider connection.
BATCH_SIZE = 100
# Recipients are published and their deliveries created this many at a time: a constant number
# of statements per chunk and flat memory, however many recipients a credential has, and the
# first chunk's emails leave while the next chunk is being written (a chunk of 5,000 takes a
# fraction of a second; a chunk of 1,000 spent a third more per recipient in commits).
CHUNK_SIZE = 5000


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
    while (chunk := _publish_chunk(credential_id, after, send_email)) is not None:
        after, sent = chunk
        queued += sent
    audit.record_credential("published", credential,
                            f"with {queued} email{'s' if queued != 1 else ''}"
                            if send_email else "without email")
    db.session.commit()  # a credential with no recipients is published too
    return queued


@retried
def _publish_chunk(credential_id: int, after: int, send_email: bool) -> tuple[int, int] | None:
    """The next CHUNK_SIZE recipients after id ``after``, published in one transaction: their
    locks taken (the lock order of ``helpdesk.ingest``), then in set-based statements a
    delivery and its "queued" event for each one due a first email, and their statuses; the
    others' statuses follow the published state. Returns (the chunk's last id, how many were
    queued), or None past the last recipient."""
    r, d = Recipient.__table__, Delivery.__table__
    first_send = and_(r.c.email.is_not(None), r.c.email_error.is_(None),
                      ~exists().where(d.c.recipient_id == r.c.id))
    try:
        rows = db.session.execute(
            select(r.c.id, r.c.status, r.c.email, r.c.email_error)
            .where(r.c.credential_id == credential_id, r.c.id > after)
            .order_by(r.c.id).limit(CHUNK_SIZE).with_for_update(key_share=True)).all()
        if not rows:
            return None
        last = rows[-1].id
        in_chunk = (r.c.credential_id == credential_id, r.c.id > after, r.c.id <= last)
        address = next((row.email for row in rows if row.email and not row.email_error), None)
        ids, sent, status = (_insert_first_sends(in_chunk, first_send, address)
                             if send_email and address else ([], set(), None))
        changes = [(row.id, row.status, status) for row in rows
                   if row.id in sent and row.status != status]
        others = [row.id for row in rows if row.id not in sent]
        if others:
            changes += ingest.refresh_recipients(others)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    ingest.announce(changes)
    for start in range(0, len(ids), BATCH_SIZE):
        queue.submit_send(ids[start:start + BATCH_SIZE])
    return last, len(ids)


def _insert_first_sends(in_chunk, first_send,
                        address: str) -> tuple[list[int], set[int], str | None]:
    """For the recipients ``in_chunk`` due a ``first_send``: their status and cause (one
    UPDATE), their deliveries (INSERT … SELECT) and their "queued" events (INSERT … SELECT).
    Returns the deliveries' ids, their recipients' ids and the recipients' new status.

    The recipients are updated first, while ``first_send`` still picks them (no delivery yet),
    by the chunk's range of ids: an UPDATE by a list of a thousand ids cost SQLite several
    times as much. A first send's status and cause depend on no address (the typo suggester
    is asked only about a failed delivery), so one diagnosis, of ``address`` (one of the
    chunk's usable addresses), stands for them all."""
    r, d, e = Recipient.__table__, Delivery.__table__, DeliveryEvent.__table__
    provider_name = current_app.config["PROVIDER"]
    provider = plugins.provider(provider_name)  # fails now, not in the worker, when unknown
    now = literal(utcnow(), Delivery.created_at.type)
    queued = DeliveryFacts(address, (EventFacts("queued", utcnow()),),
                           capabilities(provider).reports_deliveries)
    status = email_status(email=address, published=True, deliveries=[
        DeliveryOutcome(address, delivery_status(["queued"]))])
    found = diagnose(email=address, email_error=None, published=True, deliveries=[queued])
    recipient_ids = set(db.session.execute(
        update(r).where(*in_chunk, first_send).values(
            status=status, cause=found.cause, evidence=found.evidence[:EVIDENCE_LENGTH] or None,
            typo_suggestion=found.suggestion, updated_at=now)
        .returning(r.c.id)).scalars())
    if not recipient_ids:
        return [], set(), None
    delivery_ids = sorted(db.session.execute(
        insert(d).from_select(
            ["recipient_id", "email", "provider", "kind", "correlation_id", "status",
             "attempts", "created_at", "send_due_at"],
            select(r.c.id, r.c.email, literal(provider_name), literal("send"),
                   database_correlation_id(), literal(SENDING), literal(0), now, now)
            .where(*in_chunk, first_send))
        .returning(d.c.id)).scalars())
    # By their ids: the planner's statistics do not know the rows just inserted.
    db.session.execute(insert(e).from_select(
        ["delivery_id", "provider", "provider_event_id", "type", "level", "occurred_at",
         "received_at", "correlation_id"],
        select(d.c.id, d.c.provider, d.c.correlation_id.concat(":queued"), literal("queued"),
               literal(event_level("queued")), now, now, d.c.correlation_id)
        .where(d.c.id.in_(delivery_ids))))
    return delivery_ids, recipient_ids, status


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


class NeedsConfirmation(ValueError):
    """A send that will most likely fail again, or that the recipient did not want (a complaint,
    an unsubscribe, the provider's suppression list): it goes out only when confirmed, since
    each such send costs the sender's reputation. The message says why."""

    def __init__(self, recipient: Recipient):
        cause = CAUSES[recipient.cause]
        super().__init__(f"{recipient.email} shows “{cause.label}”. {cause.explanation} Send "
                         "anyway only if you know that has changed")
        self.cause = cause.key


class TooSoon(ValueError):
    """A nudge within NUDGE_COOLDOWN_HOURS of the last one: to the recipient it looks like spam."""


def repeats_a_failure(recipient: Recipient) -> bool:
    """Whether sending to the recipient's address now is what its cause says cannot succeed
    unchanged: the same address as its latest delivery, and a cause like a bounced mailbox or
    a complaint."""
    latest = recipient.latest_delivery
    return (latest is not None and same_address(recipient.email, latest.email)
            and not CAUSES[recipient.cause].resend_helps)


def _check_cooldown(recipient: Recipient, now: datetime) -> None:
    hours = float(current_app.config["NUDGE_COOLDOWN_HOURS"])
    last = max((d.created_at for d in recipient.deliveries if d.kind == "nudge"), default=None)
    if last is not None and now - last < timedelta(hours=hours):
        raise TooSoon(f"{recipient.email} was nudged at {last:%Y-%m-%d %H:%M} UTC; the next nudge "
                      f"can go from {last + timedelta(hours=hours):%Y-%m-%d %H:%M} UTC "
                      "(NUDGE_COOLDOWN_HOURS)")


def resend(recipient: Recipient, email: str | None = None, kind: str = "resend", *,
           confirmed: bool = False, now: datetime | None = None) -> Delivery:
    """Send again (or for the first time, once published), optionally to a corrected address
    (which becomes the recipient's address). The earlier deliveries stay on the timeline.
    Raises ValueError, changing nothing, when the new address is malformed, there is no usable
    address, or the credential is not published (``NotPublished``); ``NeedsConfirmation``
    when, unconfirmed, it would repeat a failure (``repeats_a_failure``); ``TooSoon`` for a
    nudge within the cooldown."""
    if not recipient.credential.published:
        raise NotPublished(recipient.credential)
    if kind == "nudge":
        _check_cooldown(recipient, now or utcnow())
    if email and email != recipient.email:
        problem = email_problem(email)[2]
        if problem:
            raise ValueError(problem)
        old = recipient.email
        set_email(recipient, email)
        audit.record_recipients("fixed", [recipient], f"(was {old or 'no address'})")
    if not sendable(recipient):
        raise ValueError(recipient.email_error or "the recipient has no email address")
    if not confirmed and repeats_a_failure(recipient):
        raise NeedsConfirmation(recipient)
    if kind == "resend" and not recipient.deliveries:
        kind = "send"
    audit.record_recipients(AUDIT_ACTION[kind], [recipient])
    [delivery_id] = queue_deliveries([recipient], kind=kind)
    return db.session.get(Delivery, delivery_id)


def unsuppress_and_resend(recipient: Recipient) -> Delivery:
    """Take the recipient's address off the email service's suppression list, then send again:
    the action for the cause "suppressed". Raises ValueError when the provider keeps no such
    list or cannot be asked (``helpdesk.contract.ServiceError``), changing nothing."""
    provider = plugins.provider(current_app.config["PROVIDER"])
    if not capabilities(provider).suppression_list:
        raise ValueError(f"the email service {provider.name} keeps no suppression list helpdesk "
                         "can change")
    try:
        provider.suppression_remove(recipient.email)
    except ServiceError as error:
        raise ValueError(str(error)) from None
    audit.record_recipients("fixed", [recipient], "(removed from the suppression list)")
    return resend(recipient, confirmed=True)


AUDIT_ACTION = {"send": "sent", "resend": "resent", "nudge": "nudged"}


class BulkResend(NamedTuple):
    """What a bulk resend did: how many emails it queued, and how many recipients it skipped
    by cause because resending unchanged cannot help them."""

    queued: int
    skipped: dict[str, int]

    def skipped_text(self) -> str:
        """``2 likely typo in the domain, 1 marked as spam by the recipient``."""
        return ", ".join(f"{n} {CAUSES[cause].label.lower()}"
                         for cause, n in sorted(self.skipped.items()))


def resend_many(recipients: Sequence[Recipient], *, include_all: bool = False) -> BulkResend:
    """Resend to each recipient of a published credential with a usable address, skipping, unless
    ``include_all``, those for which it would repeat a failure (``repeats_a_failure``)."""
    usable = [r for r in recipients if sendable(r) and r.credential.published]
    skipped = [] if include_all else [r for r in usable if repeats_a_failure(r)]
    usable = [r for r in usable if r not in skipped]
    if usable:
        audit.record_recipients("resent", usable)
        queue_deliveries(usable, kind="resend")
    return BulkResend(len(usable), dict(Counter(r.cause for r in skipped)))


# What ``resend_many`` reads of each recipient (its credential, its latest delivery), loaded
# with the selection in two queries rather than two per recipient.
_WITH_HISTORY = (selectinload(Recipient.credential), selectinload(Recipient.deliveries))


def resend_in_status(credential_id: int, status: str, *, include_all: bool = False) -> BulkResend:
    """Resend to every recipient of a credential in one status (e.g. all ``bounced`` after the
    sender was allowlisted)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return resend_many(db.session.scalars(select(Recipient).where(
        Recipient.credential_id == credential_id, Recipient.status == status)
        .order_by(Recipient.id).options(*_WITH_HISTORY)).all(), include_all=include_all)


def resend_bounced_at_domain(domain: str, *, include_all: bool = False) -> BulkResend:
    """Resend to every bounced recipient at a domain (once its IT allowlisted the sender)."""
    return resend_many(db.session.scalars(select(Recipient).where(
        Recipient.email_domain == domain.strip().lower(), Recipient.status == BOUNCED)
        .order_by(Recipient.id).options(*_WITH_HISTORY)).all(), include_all=include_all)


def nudge_due(now: datetime | None = None) -> int:
    """Resend to recipients who have not opened for NUDGE_AFTER_DAYS since their last send (an
    open by a mail-privacy proxy or a scanner is no person's), at most NUDGE_MAX times each.
    Returns how many were nudged.

    CHUNK_SIZE recipients at a time, each chunk its own transaction of a constant number of
    statements (its emails leave while the next is chosen), in id order per cause: memory and
    each chunk's cost stay flat however many are due."""
    now = now or utcnow()
    cutoff = now - timedelta(days=float(current_app.config["NUDGE_AFTER_DAYS"]))
    nudged = 0
    # Only a delivered email no person opened is nudged: never someone who complained,
    # unsubscribed or is on the provider's suppression list.
    for cause in sorted(NUDGED_CAUSES):
        after = 0
        while (chunk := _nudge_chunk(cause, after, cutoff)) is not None:
            after, claimed = chunk
            nudged += claimed
    return nudged


@retried
def _nudge_chunk(cause: str, after: int, cutoff: datetime) -> tuple[int, int] | None:
    """Nudge the next CHUNK_SIZE recipients due one with this cause and an id past ``after``.
    Returns (the last id looked at, how many were nudged), or None past the last one."""
    r, d = Recipient.__table__, Delivery.__table__
    try:
        # The last send is before the cutoff: no delivery since (ix_recipient_cause walks the
        # cause in id order, ix_delivery_recipient_id answers the NOT EXISTS).
        due = db.session.execute(
            select(r.c.id, r.c.nudges).where(
                r.c.cause == cause, r.c.id > after,
                r.c.nudges < int(current_app.config["NUDGE_MAX"]),
                ~exists().where(d.c.recipient_id == r.c.id, d.c.created_at > cutoff))
            .order_by(r.c.id).limit(CHUNK_SIZE)).all()
        if not due:
            db.session.rollback()
            return None
        by_count: dict[int, list[int]] = {}
        for recipient_id, nudges in due:
            by_count.setdefault(nudges, []).append(recipient_id)
        # Every worker runs this task: a recipient is nudged by the one whose compare-and-set
        # on ``nudges`` lands (one statement per count seen, at most NUDGE_MAX), under the locks
        # that every writer of recipients takes first (``ingest.lock_recipients``).
        ingest.lock_recipients(recipient_ids=[recipient_id for recipient_id, _ in due])
        claimed = [recipient_id for nudges, ids in by_count.items()
                   for recipient_id in db.session.execute(
                       update(r).where(r.c.id.in_(ids), r.c.nudges == nudges, r.c.cause == cause)
                       .values(nudges=nudges + 1).returning(r.c.id)).scalars()]
        if not claimed:
            db.session.rollback()
            return due[-1].id, 0
        nudged = db.session.execute(
            select(r.c.id, r.c.credential_id, r.c.name, r.c.email)
            .where(r.c.id.in_(claimed)).order_by(r.c.id)).all()
        audit.record_recipients("nudged", nudged, "automatically")
        _queue([(row.id, row.email) for row in nudged], "nudge")  # commits
    except BaseException:
        db.session.rollback()
        raise
    return due[-1].id, len(claimed)
