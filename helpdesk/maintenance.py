"""Periodic upkeep the worker runs: reading bounce reports from the bounce mailboxes (a
Maildir, IMAP, POP3: ``helpdesk.mailboxes``), taking over the sends whose task was lost (a
dead worker's, or one the queue never got), and keeping stored typo causes true to the
installation's domain history."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import diagnosis, plugins, queue
from .addresses import domain_history
from .contract import NotABounce, ProviderEvent
from .ingest import IngestResult, announce, lock_recipients, record_events, refresh_statuses
from .mailboxes import Mailbox, MailboxError, Maildir, UnreadableMessage, from_url
from .models import Delivery, Recipient, SkippedMessage, WebhookNonce, db, utcnow
from .publishing import BATCH_SIZE
from .status import SENDING

log = logging.getLogger(__name__)


def read_bounce(raw: bytes) -> list[ProviderEvent] | NotABounce:
    """The events of one returned message, or the readers' verdict on what it is when it is not
    a bounce report. A report that cannot be read raises ValueError."""
    found = plugins.hook().helpdesk_parse_bounce(raw_message=raw)
    if found is None:
        return NotABounce("not a bounce report: no bounce reader recognised it")
    return found


def ingest_bounce(raw: bytes) -> IngestResult | NotABounce:
    """Read one returned message and record its events; what it is when it is not a bounce
    report. A report that cannot be read raises ValueError and records nothing."""
    found = read_bounce(raw)
    if isinstance(found, NotABounce):
        return found
    return record_events(found, returned=True)


# At most this many messages are read in one poll, so that a poll ends well before the next
# one starts; a backlog is read over the following minutes.
READ_PER_POLL = 200


@dataclass
class MailboxPoll:
    """What one poll of one bounce mailbox did: counts by outcome, or why it could not read."""

    mailbox: str  # the mailbox's name, or the setting naming it when it could not be opened
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def poll_bounces() -> list[MailboxPoll]:
    """The worker's task, every minute: read each bounce mailbox configured, BOUNCE_MAILDIR
    and BOUNCE_MAILBOX_URL. A mailbox that cannot be read is logged and tried again next
    time; it never stops the other."""
    cfg = current_app.config
    polls = []
    if cfg.get("BOUNCE_MAILDIR"):
        polls.append(_poll("BOUNCE_MAILDIR", lambda: Maildir(cfg["BOUNCE_MAILDIR"])))
    if cfg.get("BOUNCE_MAILBOX_URL"):
        polls.append(_poll("BOUNCE_MAILBOX_URL", lambda: from_url(
            cfg["BOUNCE_MAILBOX_URL"], cfg.get("BOUNCE_MAILBOX_PASSWORD"),
            cfg.get("BOUNCE_MAILBOX_MOVE_TO"))))
    return polls


def _poll(setting: str, open_mailbox: Callable[[], Mailbox]) -> MailboxPoll:
    name = setting
    try:
        mailbox = open_mailbox()
        name = mailbox.name
        with mailbox:
            return MailboxPoll(name, read_mailbox(mailbox))
    except MailboxError as error:
        log.error("cannot read the bounce mailbox %s: %s", name, error)
        return MailboxPoll(name, error=str(error))


def read_mailbox(mailbox: Mailbox) -> dict[str, int]:
    """Ingest the reports of an open mailbox, oldest first, removing each once its events are
    committed. A message that is not a report (logged as the reader's verdict says), a report
    that cannot be read, or one whose reading failed, is logged, left there for a person and
    remembered, so that it is not read again while it stays; one whose events could not be
    recorded (the database failed) is left for the next poll. None stops the messages after
    it."""
    counts = dict.fromkeys(("ingested", "not_reports", "unreadable", "failed"), 0)
    keys = mailbox.keys()
    skipped = _still_skipped(mailbox.name, keys)
    for key in [k for k in keys if k not in skipped][:READ_PER_POLL]:
        try:
            raw = mailbox.read(key)
        except UnreadableMessage as error:
            counts["unreadable"] += 1
            _skip(mailbox.name, key, f"cannot be read ({error})")
            break  # the session is in doubt: the next poll goes on after this message
        if raw is None:  # another worker took it
            continue
        try:
            found = read_bounce(raw)
        except ValueError as error:
            counts["unreadable"] += 1
            _skip(mailbox.name, key, f"is a report that cannot be read ({error})")
            continue
        except Exception:  # a fault of a reader: reading it again would fail again
            counts["unreadable"] += 1
            log.exception("reading message %s in the bounce mailbox %s failed", key,
                          mailbox.name)
            _skip(mailbox.name, key, "could not be read by the bounce reader (its error is "
                  "logged above)")
            continue
        if isinstance(found, NotABounce):
            counts["not_reports"] += 1
            _skip(mailbox.name, key, f"is {found.what}")
            continue
        try:
            record_events(found, returned=True)
        except Exception:  # whatever went wrong with one message, the others are still read
            db.session.rollback()
            counts["failed"] += 1
            log.exception("message %s in the bounce mailbox %s could not be recorded; left "
                          "there for the next poll", key, mailbox.name)
            continue
        mailbox.remove(key)
        counts["ingested"] += 1
    return counts


def _still_skipped(mailbox: str, keys: list[str]) -> set[str]:
    """The messages of this mailbox remembered as left; those gone from it are forgotten."""
    remembered = set(db.session.scalars(
        select(SkippedMessage.key).where(SkippedMessage.mailbox == mailbox)))
    gone = sorted(remembered - set(keys))
    for start in range(0, len(gone), 500):
        db.session.execute(delete(SkippedMessage).where(
            SkippedMessage.mailbox == mailbox, SkippedMessage.key.in_(gone[start:start + 500])))
    db.session.commit()
    return remembered - set(gone)


def _skip(mailbox: str, key: str, why: str) -> None:
    log.warning("message %s in the bounce mailbox %s %s; left there", key, mailbox, why)
    db.session.add(SkippedMessage(mailbox=mailbox, key=key))
    try:
        db.session.commit()
    except IntegrityError:  # another worker remembered it first
        db.session.rollback()


def requeue_stalled(now: datetime | None = None) -> int:
    """Take over the sends whose task was lost: a lease run out (its worker died mid-batch) or
    a delivery due SEND_STALL_SECONDS ago that no worker took (its task was lost, or the queue
    was down when it was queued). What the dead worker answered is settled (its statuses
    refreshed); the rest is queued again, unless a task waiting in the queue already names it
    (a slow queue is not a lost task: checking again and again adds no task). Returns how many
    were taken over.

    One conditional update takes them, so two workers looking at once take each delivery
    once, and a lease that a live worker renews is never taken from it."""
    now = now or utcnow()
    stall = timedelta(seconds=float(current_app.config["SEND_STALL_SECONDS"]))
    lost = or_(Delivery.leased_until < now,
               and_(Delivery.leased_until.is_(None), Delivery.sent_at.is_(None),
                    Delivery.status == SENDING, Delivery.send_due_at < now - stall))
    found = db.session.execute(select(Delivery.id, Delivery.leased_until).where(lost)).all()
    waiting: set[int] = set()
    if found:
        try:
            waiting = queue.waiting_sends()
        except queue.QUEUE_ERRORS as error:  # nothing could be queued again: look next time
            db.session.rollback()
            log.warning("%d deliveries wait for the queue, which is not answering (%s: %s)",
                        len(found), type(error).__name__, error)
            return 0
    # Never taken by a worker, and a task waits for them: slow, not lost.
    candidates = [i for i, leased in found if leased is not None or i not in waiting]
    if not candidates:
        db.session.rollback()
        return 0
    lock_recipients(candidates)
    taken = db.session.execute(
        update(Delivery).where(Delivery.id.in_(candidates), lost)
        .values(leased_until=None,
                send_due_at=case((Delivery.leased_until.is_(None), now),
                                 else_=Delivery.send_due_at))
        .returning(Delivery.id, Delivery.sent_at, Delivery.status, Delivery.send_due_at),
        execution_options={"synchronize_session": False}).all()
    changes = refresh_statuses(sorted(d.id for d in taken))
    db.session.commit()
    announce(changes)
    unanswered: dict[float, list[int]] = {}
    for d in taken:
        if d.sent_at is None and d.status == SENDING and d.id not in waiting:
            delay = max(0.0, (d.send_due_at - now).total_seconds()) if d.send_due_at else 0.0
            unanswered.setdefault(delay, []).append(d.id)
    for delay, ids in unanswered.items():
        ids.sort()
        for start in range(0, len(ids), BATCH_SIZE):
            queue.submit_send(ids[start:start + BATCH_SIZE], delay=delay or None)
    if taken:
        log.warning("took over %d stalled deliveries (%d queued again)", len(taken),
                    sum(len(ids) for ids in unanswered.values()))
    return len(taken)


def forget_old_nonces() -> int:
    """Drop one-time webhook tokens older than twice the signature tolerance: a request that
    old is refused as stale before its token is looked at."""
    tolerance = float(current_app.config["WEBHOOK_TOLERANCE_SECONDS"])
    cutoff = utcnow() - timedelta(seconds=2 * tolerance)
    removed = db.session.execute(
        delete(WebhookNonce).where(WebhookNonce.seen_at < cutoff)).rowcount
    db.session.commit()
    return removed


def refresh_typos(chunk: int = 500) -> int:
    """The worker's task, every minute: when the installation's domain history changed since
    this process last looked (a domain delivered to for the first time, a domain a plugin adds,
    a bounce saying a domain does not exist), diagnose again the recipients whose typo cause it
    may change, so that no stale correction is offered or missed. Returns how many changed."""
    history = domain_history(fresh=True)
    app = current_app._get_current_object()
    if app.extensions.get("helpdesk_typos_history") == history:
        return 0
    ids = diagnosis.stale_typos(history)
    changed = 0
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        lock_recipients(recipient_ids=part)
        rows = diagnosis.changed_causes(part)
        if rows:
            db.session.execute(update(Recipient), sorted(rows, key=lambda r: r["id"]))
        db.session.commit()
        changed += len(rows)
    app.extensions["helpdesk_typos_history"] = history
    return changed
