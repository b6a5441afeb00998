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
from datetime import timedelta
from typing import Iterable, Sequence

from sqlalchemy import bindparam, func, select, update

from . import diagnosis, plugins
from .contract import ProviderEvent, capabilities
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


_EVENT_COLUMNS = ("delivery_id", "provider", "provider_event_id", "type", "level", "occurred_at",
                  "received_at", "correlation_id", "severity", "reason_code", "reason",
                  "mta_response", "raw")


def _stored_keys(rows: Sequence[dict]) -> set[tuple[str, str]]:
    """The (provider, event id) pairs of these rows that are already stored."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        wanted[row["provider"]].append(row["provider_event_id"])
    found = set()
    for provider, ids in wanted.items():
        for start in range(0, len(ids), 900):  # within every database's parameter limit
            found.update(db.session.execute(
                select(DeliveryEvent.provider, DeliveryEvent.provider_event_id).where(
                    DeliveryEvent.provider == provider,
                    DeliveryEvent.provider_event_id.in_(ids[start:start + 900]))).all())
    return found


def _insert_rows(rows: Sequence[dict]) -> int:
    """One ``executemany`` at the driver, "on conflict do nothing" on the dedupe key (a
    concurrent batch may store the same event first). The columns' own bind processors turn
    values into what the driver takes: SQLAlchemy's per-row statement machinery would cost
    more than the insert itself for a thousand events."""
    connection = db.session.connection()
    dialect = connection.dialect
    columns = DeliveryEvent.__table__.c
    processed = [(index, process) for index, process in enumerate(
        columns[name].type._cached_bind_processor(dialect) for name in _EVENT_COLUMNS) if process]
    values = []
    for row in rows:
        value = [row[name] for name in _EVENT_COLUMNS]
        for index, process in processed:
            value[index] = process(value[index])
        values.append(tuple(value))
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO delivery_event ({', '.join(_EVENT_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(_EVENT_COLUMNS))}) "
           "ON CONFLICT (provider, provider_event_id) DO NOTHING")
    # The rows really inserted, on both drivers.
    return connection.exec_driver_sql(sql, values).rowcount


def _set_statuses(table, rows: list[dict]) -> None:
    """One ``executemany`` of ``UPDATE … SET status (and any other value given) WHERE id``."""
    values = {name: bindparam(f"v_{name}") for name in rows[0] if name != "id"}
    db.session.execute(
        update(table).where(table.c.id == bindparam("v_id")).values(**values),
        [{f"v_{name}": value for name, value in row.items()} for row in rows])


# How far back a bounce that names no delivery of ours is matched by its recipient alone.
MATCH_BY_ADDRESS_DAYS = 30


def _match_deliveries(events: Sequence[ProviderEvent]) -> dict[tuple[str, ...], int]:
    """Delivery ids by correlation id, by (provider, message id), and for an event that
    carries neither, by (provider, recipient address) among recent deliveries (the latest one
    to that address); three queries at most."""
    found: dict[tuple[str, ...], int] = {}
    correlations = {e.correlation_id for e in events if e.correlation_id}
    if correlations:
        rows = db.session.execute(select(Delivery.correlation_id, Delivery.id)
                                  .where(Delivery.correlation_id.in_(correlations)))
        found.update({("c", c): i for c, i in rows})
    message_ids = {e.message_id for e in events if e.message_id and not e.correlation_id}
    if message_ids:
        rows = db.session.execute(select(Delivery.provider, Delivery.provider_message_id,
                                         Delivery.id)
                                  .where(Delivery.provider_message_id.in_(message_ids)))
        found.update({(p, m): i for p, m, i in rows})
    addresses = {e.recipient.lower() for e in events if e.recipient and not e.correlation_id
                 and (e.provider, e.message_id) not in found}
    if addresses:
        since = utcnow() - timedelta(days=MATCH_BY_ADDRESS_DAYS)
        rows = db.session.execute(select(Delivery.provider, func.lower(Delivery.email),
                                         Delivery.id)
                                  .where(func.lower(Delivery.email).in_(addresses),
                                         Delivery.created_at >= since)
                                  .order_by(Delivery.id))
        found.update({("a", p, a): i for p, a, i in rows})
    return found


def _delivery_for(event: ProviderEvent, matches: dict[tuple[str, ...], int]) -> int | None:
    if event.correlation_id:
        return matches.get(("c", event.correlation_id))
    if event.message_id and (event.provider, event.message_id) in matches:
        return matches[(event.provider, event.message_id)]
    if event.recipient:
        return matches.get(("a", event.provider, event.recipient.lower()))
    return None


def _clip(text: str | None, length: int) -> str | None:
    """Within its column: a provider's oversized value is kept in ``raw`` whole."""
    return text[:length] if text else text


def record_events(events: Iterable[ProviderEvent]) -> IngestResult:
    """Store a batch of events and raise the statuses they affect, in one transaction."""
    events = list(events)
    result = IngestResult(received=len(events))
    if not events:
        return result
    matches = _match_deliveries(events)
    reporting = {name for name, provider in plugins.providers().items()
                 if capabilities(provider).reports_deliveries}
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
            "level": event_level(e.type, reports_deliveries=e.provider in reporting),
            "occurred_at": e.occurred_at,
            "received_at": received_at, "correlation_id": _clip(e.correlation_id, 64),
            "severity": _clip(e.severity, 20), "reason_code": e.reason_code,
            "reason": e.reason, "mta_response": e.mta_response,
            "raw": e.raw,
        }
    rows = list(by_key.values())
    delivery_ids = sorted({r["delivery_id"] for r in rows if r["delivery_id"] is not None})
    try:
        _lock_recipients(delivery_ids)
        # Known duplicates are skipped cheaply; what a concurrent batch stores meanwhile is
        # caught by "on conflict", and the counts come from what the inserts really did.
        stored = _stored_keys(rows)
        new_rows = [r for r in rows if (r["provider"], r["provider_event_id"]) not in stored]
        matched = [r for r in new_rows if r["delivery_id"] is not None]
        unmatched = [r for r in new_rows if r["delivery_id"] is None]
        result.unmatched = _insert_rows(unmatched) if unmatched else 0
        result.stored = result.unmatched + (_insert_rows(matched) if matched else 0)
        result.duplicates = len(events) - result.stored
        # Refreshing a delivery whose event a concurrent batch stored first changes nothing.
        affected = sorted({r["delivery_id"] for r in matched})
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
        _set_statuses(Delivery.__table__, delivery_updates)
    recipient_ids = select(Delivery.recipient_id).where(Delivery.id.in_(delivery_ids))
    return refresh_recipients(recipient_ids)


def refresh_recipients(recipient_ids) -> list[tuple[int, str, str]]:
    """Recompute recipients' statuses from their deliveries (a list of ids or a subquery), and
    their causes from the events (``helpdesk.diagnosis``)."""
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
    causes = diagnosis.changed_causes([r.id for r in recipients])
    if causes:
        _set_statuses(Recipient.__table__, causes)
    changes = []
    for r in recipients:
        new = email_status(email=r.email, published=r.state == CredentialState.published,
                           deliveries=outcomes.get(r.id, []))
        if new != r.status:
            changes.append((r.id, r.status, new))
    if changes:
        now = utcnow()
        _set_statuses(Recipient.__table__, [{"id": i, "status": new, "updated_at": now}
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
