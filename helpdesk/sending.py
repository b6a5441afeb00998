"""Sending from the queue: building each message, handing it to its provider, and turning what
the provider answered into events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from flask import current_app, render_template
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import selectinload

from . import ingest, plugins, queue
from .contract import CORRELATION_HEADER, Message, ProviderEvent, SendResult
from .models import Delivery, DeliveryEvent, Recipient, db, utcnow
from .pixel import pixel_url
from .status import SENDING


def header_safe(text: str) -> str:
    """One line of text: CR, LF and other control characters can never reach a mail header."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


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


def send_batch(delivery_ids: Iterable[int], now: datetime | None = None) -> dict[str, int]:
    """Hand each delivery still waiting to its provider; returns counts by outcome. ``now``
    (default: the clock) is when this happens.

    A delivery that already has an answer, or that another task holds, is skipped, so a batch
    run twice (a worker that died mid-send and was restarted, a requeued batch whose original
    was still queued) does not send it again.
    """
    claimed = _claim(list(delivery_ids), now or utcnow())
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
            _record_answers(answered, counts, now)
            answered = []
    _record_answers(answered, counts, now)
    return counts


def _claim(delivery_ids: list[int], now: datetime) -> set[int]:
    """Take the deliveries that are due and unanswered for this task, for SEND_STALL_SECONDS:
    their ``send_due_at`` moves past now, so a second task holding them (a requeued batch and
    its original) finds none due. A worker that dies holding them leaves them to
    ``requeue_stalled`` once that lease is long past."""
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


def retry_delay(attempts: int, first: float, longest: float) -> float:
    """Seconds to wait after the ``attempts``-th temporary refusal: doubling from ``first``,
    never more than ``longest``, as real MTAs back off."""
    return min(first * 2 ** min(attempts - 1, 60), longest)


def _span(elapsed: timedelta) -> str:
    hours = elapsed.total_seconds() / 3600
    if hours >= 48:
        return f"{round(hours / 24)} days"
    if hours >= 2:
        return f"{round(hours)} hours"
    minutes = round(hours * 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _refused_since(delivery_ids: list[int]) -> dict[int, datetime]:
    """When each delivery was first refused for now: its retry window starts there."""
    if not delivery_ids:
        return {}
    return dict(db.session.execute(
        select(DeliveryEvent.delivery_id, func.min(DeliveryEvent.occurred_at))
        .where(DeliveryEvent.delivery_id.in_(delivery_ids), DeliveryEvent.type == "deferred")
        .group_by(DeliveryEvent.delivery_id)).all())


def _record_answers(answered: list[tuple[_Pending, SendResult]], counts: dict[str, int],
                    now: datetime | None = None) -> None:
    """Turn the providers' answers into events, in one transaction, and schedule the retries.

    A temporary refusal is retried, backing off, until SEND_RETRY_WINDOW_HOURS after the first
    one; the last try falls on the window's end, and if it is refused for now too the delivery
    ends ``expired``: a soft failure, never a bounce."""
    if not answered:
        return
    cfg = current_app.config
    now = now or utcnow()
    window = timedelta(hours=float(cfg["SEND_RETRY_WINDOW_HOURS"]))
    since = _refused_since([item.id for item, result in answered
                            if result.outcome == "deferred" and item.attempts])
    updates, found, retry_after = [], [], {}
    for item, result in answered:
        attempts = item.attempts + 1
        outcome, reason, reason_code = result.outcome, result.reason or None, None
        if outcome == "deferred":
            first = since.get(item.id, now)
            left = (first + window - now).total_seconds()
            if left > 0:
                reason_code = "temporary"
                delay = retry_delay(attempts, float(cfg["SEND_RETRY_DELAY"]),
                                    float(cfg["SEND_RETRY_MAX_DELAY"]))
                retry_after.setdefault(min(delay, left), []).append(item.id)
            else:
                outcome, reason_code = "expired", "expired"
                reason = (f"gave up after {_span(now - first)} of temporary refusals; the last: "
                          f"{result.reason}")
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
            severity="temporary" if reason_code else None, reason_code=reason_code,
            reason=reason, mta_response=result.reason or None))
    db.session.execute(update(Delivery), updates)  # bulk, by primary key
    ingest.record_events(found)
    for delay, ids in retry_after.items():
        queue.enqueue_send(ids, delay=delay)
