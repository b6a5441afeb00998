"""Recording delivery events and raising statuses: the one path every event takes, whether it
comes from a webhook, a send, the tracking pixel or a bounce report.

One transaction per batch: insert the events with "on conflict do nothing" on the dedupe key
(provider, provider event id), then recompute the joined status of the affected deliveries and
recipients in bulk. Because the status is a join, recomputing it from all stored events gives
the same answer whatever order the events came in and however often; a replayed batch inserts
nothing and changes nothing.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import plugins
from .mail import ProviderEvent
from .models import Credential, CredentialState, Delivery, DeliveryEvent, Recipient, db, utcnow
from .status import DeliveryOutcome, email_status, event_level, join


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0  # stored, but no delivery of ours carries their correlation id
    changed: list[tuple[int, str, str]] = field(default_factory=list)  # (recipient, old, new)

    def as_dict(self) -> dict:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "unmatched": self.unmatched,
                "status_changes": len(self.changed)}


def _insert(dialect_name: str):
    # A Core insert of the table, not the ORM entity: the ORM's bulk path pairs each RETURNING
    # row with its parameters, which "on conflict do nothing" (fewer rows back) turns into one
    # statement per row and a quadratic merge. Core sends a page of VALUES per statement.
    module = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(DeliveryEvent.__table__).on_conflict_do_nothing(
        index_elements=["provider", "provider_event_id"])


def _match_deliveries(events: Sequence[ProviderEvent]) -> dict[str, int]:
    """Delivery ids by correlation id and by (provider, message id), in two queries at most."""
    found: dict[str, int] = {}
    correlations = {e.correlation_id for e in events if e.correlation_id}
    if correlations:
        rows = db.session.execute(select(Delivery.correlation_id, Delivery.id)
                                  .where(Delivery.correlation_id.in_(correlations)))
        found.update({f"c:{c}": i for c, i in rows})
    message_ids = {e.message_id for e in events if e.message_id and not e.correlation_id}
    if message_ids:
        rows = db.session.execute(select(Delivery.provider, Delivery.provider_message_id,
                                         Delivery.id)
                                  .where(Delivery.provider_message_id.in_(message_ids)))
        found.update({f"m:{p}:{m}": i for p, m, i in rows})
    return found


def _delivery_for(event: ProviderEvent, matches: dict[str, int]) -> int | None:
    if event.correlation_id:
        return matches.get(f"c:{event.correlation_id}")
    if event.message_id:
        return matches.get(f"m:{event.provider}:{event.message_id}")
    return None


def record_events(events: Iterable[ProviderEvent]) -> IngestResult:
    """Store a batch of events and raise the statuses they affect, in one transaction."""
    events = list(events)
    result = IngestResult(received=len(events))
    if not events:
        return result
    matches = _match_deliveries(events)
    received_at = utcnow()
    # A provider's retry often repeats events inside one batch: the first copy is enough.
    by_key: dict[tuple[str, str], dict] = {}
    for e in events:
        key = (e.provider, e.event_id[:255])
        if key in by_key:
            continue
        by_key[key] = {
            "delivery_id": _delivery_for(e, matches), "provider": e.provider,
            "provider_event_id": key[1], "type": e.type,
            "level": event_level(e.type), "occurred_at": e.occurred_at,
            "received_at": received_at, "correlation_id": e.correlation_id,
            "severity": e.severity, "reason": e.reason, "mta_response": e.mta_response,
            "raw": e.raw,
        }
    rows = list(by_key.values())
    delivery_ids = sorted({r["delivery_id"] for r in rows if r["delivery_id"] is not None})
    try:
        _lock_recipients(delivery_ids)
        inserted = db.session.connection().execute(
            _insert(db.engine.dialect.name).returning(DeliveryEvent.__table__.c.delivery_id),
            rows,
        ).all() if rows else []
        result.stored = len(inserted)
        result.duplicates = len(events) - len(inserted)
        result.unmatched = sum(1 for (d,) in inserted if d is None)
        affected = sorted({d for (d,) in inserted if d is not None})
        result.changed = refresh_statuses(affected)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    _announce(result.changed)
    return result


def _lock_recipients(delivery_ids: Sequence[int]) -> None:
    """Serialise concurrent batches that touch the same recipients (PostgreSQL row locks, in id
    order so that two batches cannot deadlock). SQLite serialises writers on its own."""
    if not delivery_ids or db.engine.dialect.name != "postgresql":
        return
    recipient_ids = select(Delivery.recipient_id).where(Delivery.id.in_(delivery_ids))
    db.session.execute(select(Recipient.id).where(Recipient.id.in_(recipient_ids))
                       .order_by(Recipient.id).with_for_update())


def refresh_statuses(delivery_ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """Recompute the joined status of these deliveries and of their recipients from the stored
    events; write only what changed. Returns (recipient id, old, new) for each change."""
    if not delivery_ids:
        return []
    levels: dict[int, list[str]] = defaultdict(list)
    for delivery_id, level in db.session.execute(
        select(DeliveryEvent.delivery_id, DeliveryEvent.level).distinct()
        .where(DeliveryEvent.delivery_id.in_(delivery_ids), DeliveryEvent.level.is_not(None))
    ):
        levels[delivery_id].append(level)
    current = dict(db.session.execute(
        select(Delivery.id, Delivery.status).where(Delivery.id.in_(delivery_ids))).all())
    delivery_updates = []
    for delivery_id, old in current.items():
        new = join(*levels.get(delivery_id, ()))
        if new != old:
            delivery_updates.append({"id": delivery_id, "status": new})
    if delivery_updates:
        db.session.execute(update(Delivery), delivery_updates)  # bulk, by primary key
    recipient_ids = select(Delivery.recipient_id).where(Delivery.id.in_(delivery_ids))
    return refresh_recipients(recipient_ids)


def refresh_recipients(recipient_ids) -> list[tuple[int, str, str]]:
    """Recompute recipients' statuses from their deliveries (a list of ids or a subquery)."""
    recipients = db.session.execute(
        select(Recipient.id, Recipient.email, Recipient.status, Credential.state)
        .join(Credential).where(Recipient.id.in_(recipient_ids))).all()
    if not recipients:
        return []
    outcomes: dict[int, list[DeliveryOutcome]] = defaultdict(list)
    for recipient_id, email, status in db.session.execute(
        select(Delivery.recipient_id, Delivery.email, Delivery.status)
        .where(Delivery.recipient_id.in_([r.id for r in recipients])).order_by(Delivery.id)
    ):
        outcomes[recipient_id].append(DeliveryOutcome(email, status))
    changes = []
    for r in recipients:
        new = email_status(email=r.email, published=r.state == CredentialState.published,
                           deliveries=outcomes.get(r.id, []))
        if new != r.status:
            changes.append((r.id, r.status, new))
    if changes:
        now = utcnow()
        db.session.execute(update(Recipient), [{"id": i, "status": new, "updated_at": now}
                                               for i, _, new in changes])
    return changes


def _announce(changes: list[tuple[int, str, str]]) -> None:
    """Fire ``helpdesk_status_changed`` once per committed change."""
    if not changes:
        return
    hook = plugins.hook()
    if not hook.helpdesk_status_changed.get_hookimpls():
        return
    recipients = {r.id: r for r in db.session.scalars(
        select(Recipient).where(Recipient.id.in_([i for i, _, _ in changes])))}
    for recipient_id, old, new in changes:
        hook.helpdesk_status_changed(recipient=recipients[recipient_id], old=old, new=new)


def refresh_and_commit(recipient_ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """For changes that are not events (an address edited, a credential published): recompute,
    commit and announce."""
    changes = refresh_recipients(list(recipient_ids))
    db.session.commit()
    _announce(changes)
    return changes
