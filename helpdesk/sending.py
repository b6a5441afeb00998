"""Sending from the queue: building each message, handing it to its provider, and turning what
the provider answered into events.

Exactly once, as far as the wire allows. A task first *claims* its deliveries: a lease of
SEND_STALL_SECONDS that it renews while it works, so that no requeue takes them from a live
worker (and a worker so slow that its lease ran out before it renewed it, and was taken over,
sends no more of those deliveries). It then records each answer (its event, and the delivery marked answered) before the
next message goes out: a worker killed mid-batch leaves at most the one message it was sending
without its answer, and only that one can go out twice. Statuses follow every RECORD_EVERY
answers, when the batch *settles* them (and gives up their lease); after a crash,
``maintenance.requeue_stalled`` settles what the dead worker answered and queues the rest again.

One message that cannot be built or sent (an address no header can carry, a provider raising)
ends that delivery as refused, with the reason; the rest of the batch goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from flask import current_app, render_template
from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.orm import selectinload

from . import ingest, plugins, queue
from .contract import CORRELATION_HEADER, Message, ProviderEvent, SendResult
from .models import Delivery, DeliveryEvent, Recipient, db, utcnow
from .pixel import pixel_url
from .status import SENDING
from .transactions import retried

log = logging.getLogger(__name__)


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


# Statuses are refreshed this many answers at a time: each answer is recorded at once, but
# recomputing statuses (and causes) costs more than sending a message; what a crash leaves
# unrefreshed, the requeue that takes its deliveries over refreshes.
RECORD_EVERY = 50


@dataclass(frozen=True)
class _Pending:
    """What sending needs of a delivery, copied out so that no transaction stays open and no
    row is reloaded while providers answer. ``problem``: why no message could be built."""

    id: int
    recipient_id: int
    provider: str
    correlation_id: str
    email: str
    attempts: int
    message: Message | None
    problem: str = ""


@dataclass(frozen=True)
class _Answer:
    item: _Pending
    outcome: str
    retry_after: float | None  # seconds, for a deferred send


def send_batch(delivery_ids: Iterable[int], now: datetime | None = None) -> dict[str, int]:
    """Hand each delivery still waiting to its provider; returns counts by outcome. ``now``
    (default: the clock) is when this happens.

    A delivery that already has an answer, that is not due yet, or that another task holds,
    is skipped, so a batch run twice (a requeued batch whose original was still queued) does
    not send it again.
    """
    clock: Callable[[], datetime] = (lambda: now) if now else utcnow
    ids = sorted(set(delivery_ids))
    seconds, started = float(current_app.config["SEND_STALL_SECONDS"]), clock()
    claimed = _claim(ids, seconds, started)
    lease = _Lease(seconds, clock, started + timedelta(seconds=seconds))
    pending = [_prepare(d) for d in db.session.scalars(
        select(Delivery).where(Delivery.id.in_(claimed)).order_by(Delivery.id)
        # the messages need each recipient and credential: one query, not one per delivery
        .options(selectinload(Delivery.recipient).selectinload(Recipient.credential))
        .execution_options(populate_existing=True))]  # what is stored, not what is cached
    db.session.commit()  # hold no transaction open while the providers answer
    counts = {"skipped": len(ids) - len(pending)} if len(pending) < len(ids) else {}
    reporting = ingest.reporting_providers()
    unsettled: list[_Answer] = []
    # The answers go through one connection held for the batch (see ingest.record_answer).
    with db.engine.connect() as answers:
        for index, item in enumerate(pending):
            lease.keep(lambda: [a.item.id for a in unsettled] + [p.id for p in pending[index:]])
            if item.id in lease.lost:  # taken over while this task was slow: the taker sends it
                counts["skipped"] = counts.get("skipped", 0) + 1
                continue
            answer = _record_answer(answers, item, _send(item), clock(), reporting)
            counts[answer.outcome] = counts.get(answer.outcome, 0) + 1
            unsettled.append(answer)
            if len(unsettled) == RECORD_EVERY:
                _settle(unsettled)
                unsettled = []
    _settle(unsettled)
    return counts


@retried
def _claim(delivery_ids: list[int], seconds: float, now: datetime) -> list[int]:
    """Take the deliveries that are due, unanswered and held by no live task, for ``seconds``
    (the lease, renewed while the task works)."""
    ingest.lock_recipients(delivery_ids)
    taken = db.session.execute(
        update(Delivery).where(
            Delivery.id.in_(delivery_ids), Delivery.status == SENDING,
            Delivery.sent_at.is_(None),
            or_(Delivery.send_due_at.is_(None), Delivery.send_due_at <= now),
            or_(Delivery.leased_until.is_(None), Delivery.leased_until < now))
        .values(leased_until=now + timedelta(seconds=seconds)).returning(Delivery.id),
        execution_options={"synchronize_session": False}).scalars().all()
    db.session.commit()
    return sorted(taken)


class _Lease:
    """A batch's hold on its deliveries (until ``until``), renewed once half of it has run
    out. A renewal that finds a delivery no longer held as this batch left it (its lease ran
    out before the renewal came, and another task took it over) puts it in ``lost``."""

    def __init__(self, seconds: float, clock: Callable[[], datetime], until: datetime):
        self.seconds, self.clock, self.until = seconds, clock, until
        self.renewed = time.monotonic()
        self.lost: set[int] = set()

    def due(self) -> bool:
        return time.monotonic() - self.renewed > self.seconds / 2

    def keep(self, delivery_ids: Callable[[], list[int]]) -> None:
        if self.due():
            ids, until = delivery_ids(), self.clock() + timedelta(seconds=self.seconds)
            self.lost |= set(ids) - _renew(ids, self.until, until)
            self.until, self.renewed = until, time.monotonic()


@retried
def _renew(delivery_ids: list[int], held_until: datetime, until: datetime) -> set[int]:
    """Extend the lease of those of these deliveries still held until ``held_until``; returns
    their ids."""
    ingest.lock_recipients(delivery_ids)
    held = db.session.execute(
        update(Delivery).where(Delivery.id.in_(delivery_ids),
                               Delivery.leased_until == held_until)
        .values(leased_until=until).returning(Delivery.id),
        execution_options={"synchronize_session": False}).scalars().all()
    db.session.commit()
    return set(held)


def _prepare(delivery: Delivery) -> _Pending:
    try:
        message, problem = build_message(delivery), ""
    except Exception as error:  # one message that cannot be built is that delivery's failure
        log.exception("the message of delivery %s could not be built", delivery.id)
        message, problem = None, f"the message could not be built: {error}"
    return _Pending(delivery.id, delivery.recipient_id, delivery.provider,
                    delivery.correlation_id, delivery.email, delivery.attempts, message, problem)


def _send(item: _Pending) -> SendResult:
    if item.message is None:
        return SendResult.refused(item.problem)
    try:
        return plugins.provider(item.provider).send(item.message)
    except Exception as error:  # a provider's failure on one message stays with that message
        log.exception("provider %s failed on delivery %s", item.provider, item.id)
        return SendResult.refused(f"the {item.provider} provider failed on this message: "
                                  f"{type(error).__name__}: {error}")


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


def _refused_since(on: Connection, delivery_ids: list[int]) -> dict[int, datetime]:
    """When each delivery was first refused for now: its retry window starts there."""
    if not delivery_ids:
        return {}
    return dict(on.execute(
        select(DeliveryEvent.delivery_id, func.min(DeliveryEvent.occurred_at))
        .where(DeliveryEvent.delivery_id.in_(delivery_ids), DeliveryEvent.type == "deferred")
        .group_by(DeliveryEvent.delivery_id)).all())


@retried
def _record_answer(on: Connection, item: _Pending, result: SendResult, now: datetime,
                   reporting: set[str] | None = None) -> _Answer:
    """Record one provider answer (its event, and the delivery marked answered or due for a
    retry) on the connection ``on``, committed before the next message goes out.

    A temporary refusal is retried, backing off, until SEND_RETRY_WINDOW_HOURS after the first
    one; the last try falls on the window's end, and if it is refused for now too the delivery
    ends ``expired``: a soft failure, never a bounce."""
    with on.begin():  # committed at the end, rolled back on any error
        cfg = current_app.config
        attempts = item.attempts + 1
        outcome, reason, reason_code = result.outcome, result.reason or None, None
        values: dict = {"id": item.id, "attempts": attempts}
        retry_after = None
        if outcome == "deferred":
            first = _refused_since(on, [item.id]).get(item.id, now) if item.attempts else now
            left = (first + timedelta(hours=float(cfg["SEND_RETRY_WINDOW_HOURS"])) - now
                    ).total_seconds()
            if left > 0:
                reason_code = "temporary"
                retry_after = min(left, retry_delay(attempts, float(cfg["SEND_RETRY_DELAY"]),
                                                    float(cfg["SEND_RETRY_MAX_DELAY"])))
                # By the queue's clock, which schedules the retry.
                values["send_due_at"] = utcnow() + timedelta(seconds=retry_after)
            else:
                outcome, reason_code = "expired", "expired"
                reason = (f"gave up after {_span(now - first)} of temporary refusals; the last: "
                          f"{result.reason}")
        if outcome != "deferred":
            values["sent_at"] = now
        if result.message_id:
            values["provider_message_id"] = result.message_id
        suffix = f":{attempts}" if outcome == "deferred" else ""
        event = ProviderEvent(
            provider=item.provider, type=outcome,
            event_id=f"{item.correlation_id}:{outcome}{suffix}", occurred_at=now,
            correlation_id=item.correlation_id, recipient=item.email,
            severity="temporary" if reason_code else None, reason_code=reason_code,
            reason=reason, mta_response=result.reason or None)
        ingest.record_answer(on, event, item.recipient_id, values,
                             ingest.reporting_providers() if reporting is None else reporting)
        return _Answer(item, outcome, retry_after)


def _settle(answers: list[_Answer]) -> None:
    """Refresh the statuses the answers raise, give up the lease on their deliveries and
    queue the retries of the deferred ones."""
    if not answers:
        return
    ingest.record_events([], deliveries=[{"id": a.item.id, "leased_until": None}
                                         for a in answers])
    retries: dict[float, list[int]] = {}
    for answer in answers:
        if answer.retry_after is not None:
            retries.setdefault(answer.retry_after, []).append(answer.item.id)
    for delay, ids in retries.items():
        queue.submit_send(ids, delay=delay)
