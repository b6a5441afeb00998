"""Recording delivery events and raising statuses: the one path every event takes, whether it
comes from a webhook, a send, the tracking pixel or a bounce report.

One transaction per batch: insert the events with "on conflict do nothing" on the dedupe key
(provider, provider event id), then recompute the joined status of the affected deliveries and
recipients in bulk. Because the status is a join, recomputing it from all stored events gives
the same answer whatever order the events came in and however often; a replayed batch inserts
nothing and changes nothing.

An event applies to a delivery only when it comes from the delivery's own provider and does not
name another address; one that does is stored, unmatched, and changes no status. Events read
from a message that came back to our sender address (a bounce mailbox, ``bounces ingest``) are
the exception: every provider sends from that address, so they apply to a delivery of any
provider (still only one to the address they name).

**Lock order** (one, everywhere, so that no two transactions can wait for each other in a
circle). A transaction that writes deliveries or recipients first locks the rows of the
recipients concerned, in id order (``lock_recipients``). A recipient's lock stands for the
recipient *and all its deliveries*: delivery rows are written only under it, so they never wait
on anyone. A credential being published or resent is written before its recipients are locked;
events are inserted in dedupe-key order. Recording events (webhooks, the pixel, bounces),
recording send answers, claiming sends, requeueing stalled ones, nudging and publishing all
follow it. The locks are ``FOR NO KEY UPDATE``, which inserting a delivery or an event that
refers to the row does not wait for. SQLite has one writer at a time and takes none. A conflict
that still happens (a serialization failure; SQLite refusing a stale snapshot) is retried by
``helpdesk.transactions.retried``, never reported as the database being down.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Sequence

import idna
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import diagnosis, plugins
from .contract import ProviderEvent, capabilities
from .models import Credential, CredentialState, Delivery, DeliveryEvent, Recipient, db, utcnow
from .status import DeliveryOutcome, email_status, event_level, join
from .transactions import retried


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0  # stored, but applied to no delivery (none of ours, or not theirs)
    changed: list[tuple[int, str, str]] = field(default_factory=list)  # (recipient, old, new)

    def as_dict(self) -> dict:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "unmatched": self.unmatched,
                "status_changes": len(self.changed)}


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
    """Insert these rows, "on conflict do nothing" on the dedupe key (a concurrent batch may
    store the same event first); returns how many were really inserted. SQLAlchemy's
    "insertmanyvalues" sends a thousand rows as one multi-row statement."""
    if not rows:
        return 0
    # Key order: two batches that share events wait for each other's in one direction only.
    rows = sorted(rows, key=lambda r: (r["provider"], r["provider_event_id"]))
    statement = _insert_events(db.engine.dialect.name).returning(DeliveryEvent.id)
    return len(db.session.execute(statement, rows).all())


# The statements of the per-event paths are built once: building one costs more than running
# it on a single row.
@functools.cache
def _insert_events(dialect_name: str):
    """INSERT of events, "on conflict do nothing" on the dedupe key."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(DeliveryEvent.__table__).on_conflict_do_nothing(
        index_elements=["provider", "provider_event_id"])


@functools.cache
def _update_by_id(table, names: tuple[str, ...]):
    return update(table).where(table.c.id == bindparam("v_id")).values(
        **{name: bindparam(f"v_{name}") for name in names})


def _update_rows(table, rows: list[dict], on: Connection | None = None) -> None:
    """One ``executemany`` of ``UPDATE … SET (the values given) WHERE id``; every row gives
    the same columns. ``on``: the connection to run it on (by default the session)."""
    (on or db.session).execute(
        _update_by_id(table, tuple(name for name in rows[0] if name != "id")),
        [{f"v_{name}": value for name, value in row.items()} for row in rows])


# How far back a bounce that names no delivery of ours is matched by its recipient alone.
MATCH_BY_ADDRESS_DAYS = 30


@dataclass(frozen=True)
class _Match:
    id: int
    provider: str
    email: str


ANY_PROVIDER = "*"  # in a match key: the latest delivery of whichever provider


def _match_deliveries(events: Sequence[ProviderEvent],
                      any_provider: bool) -> dict[tuple[str, ...], _Match]:
    """Deliveries by correlation id, by (provider, message id), and for an event that carries
    neither, by (provider, recipient address) among recent deliveries (the latest one to that
    address); with ``any_provider``, also by message id and address alone, whichever provider
    sent the latest. Three queries at most."""
    found: dict[tuple[str, ...], _Match] = {}
    columns = (Delivery.id, Delivery.provider, Delivery.email)
    correlations = {e.correlation_id for e in events if e.correlation_id}
    if correlations:
        rows = db.session.execute(select(Delivery.correlation_id, *columns)
                                  .where(Delivery.correlation_id.in_(correlations)))
        found.update({("c", c): _Match(*match) for c, *match in rows})
    message_ids = {e.message_id for e in events if e.message_id and not e.correlation_id}
    if message_ids:
        rows = db.session.execute(select(Delivery.provider_message_id, *columns)
                                  .where(Delivery.provider_message_id.in_(message_ids))
                                  .order_by(Delivery.id))
        for m, *row in rows:  # in id order: the latest is kept
            match = _Match(*row)
            found.update(dict.fromkeys(_keys("m", m, match, any_provider), match))
    addresses = {e.recipient.lower() for e in events if e.recipient and not e.correlation_id
                 and ("m", _scope(e, any_provider), e.message_id) not in found}
    if addresses:
        since = utcnow() - timedelta(days=MATCH_BY_ADDRESS_DAYS)
        rows = db.session.execute(select(func.lower(Delivery.email), *columns)
                                  .where(func.lower(Delivery.email).in_(addresses),
                                         Delivery.created_at >= since)
                                  .order_by(Delivery.id))
        for a, *row in rows:
            match = _Match(*row)
            found.update(dict.fromkeys(_keys("a", a, match, any_provider), match))
    return found


def _keys(kind: str, value: str, match: _Match, any_provider: bool) -> list[tuple[str, ...]]:
    """The keys a delivery is found by: under its own provider, and under any provider."""
    scopes = (match.provider, ANY_PROVIDER) if any_provider else (match.provider,)
    return [(kind, scope, value) for scope in scopes]


def _scope(event: ProviderEvent, any_provider: bool) -> str:
    return ANY_PROVIDER if any_provider else event.provider


def _comparable(address: str) -> str:
    """An address as two spellings of it compare equal: case, and a domain in Unicode or in
    its IDNA (punycode) form."""
    local, _, domain = address.strip().lower().rpartition("@")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            pass
    return f"{local}@{domain}"


def _delivery_for(event: ProviderEvent, matches: dict[tuple[str, ...], _Match],
                  any_provider: bool) -> int | None:
    """The delivery this event applies to: one of the event's own provider (of any provider
    with ``any_provider``), to the address the event names (when it names one)."""
    scope = _scope(event, any_provider)
    by_id = True  # our correlation id or the message id names the delivery
    if event.correlation_id:
        match = matches.get(("c", event.correlation_id))
    elif event.message_id and ("m", scope, event.message_id) in matches:
        match = matches[("m", scope, event.message_id)]
    elif event.recipient:
        match, by_id = matches.get(("a", scope, event.recipient.lower())), False
    else:
        return None
    if match is None or not (any_provider or match.provider == event.provider):
        return None
    if event.recipient and _comparable(event.recipient) != _comparable(match.email) and not (
            # Named by its local part alone, at a guessed domain: the delivery our id names
            # completes it, when that local part is its.
            event.recipient_guessed and by_id and
            event.recipient.rpartition("@")[0].lower() == match.email.rpartition("@")[0].lower()):
        return None
    return match.id


def _clip(text: str | None, length: int) -> str | None:
    """Within its column: a provider's oversized value is kept in ``raw`` whole."""
    return text[:length] if text else text


def reporting_providers() -> set[str]:
    """The providers that report deliveries (their acceptance is still "Sending")."""
    return {name for name, provider in plugins.providers().items()
            if capabilities(provider).reports_deliveries}


def _event_row(e: ProviderEvent, delivery_id: int | None, reporting: set[str],
               received_at) -> dict:
    return {
        "delivery_id": delivery_id, "provider": e.provider,
        "provider_event_id": e.event_id[:255], "type": e.type,
        "level": event_level(e.type, reports_deliveries=e.provider in reporting),
        "occurred_at": e.occurred_at,
        "received_at": received_at, "correlation_id": _clip(e.correlation_id, 64),
        "severity": _clip(e.severity, 20), "reason_code": e.reason_code,
        "reason": e.reason, "mta_response": e.mta_response,
        "raw": e.raw,
    }


def record_events(events: Iterable[ProviderEvent], deliveries: Sequence[dict] = (),
                  returned: bool = False) -> IngestResult:
    """Store a batch of events and raise the statuses they affect, in one transaction.
    ``deliveries``: column values to write on deliveries (each with its ``id``: the send
    path settling its answers), under the same locks and in the same transaction, their
    statuses refreshed too. ``returned``: the events were read from a message that came back
    to our sender address, so they may be about any provider's delivery."""
    return _record(list(events), list(deliveries), returned)


@retried
def _record(events: list[ProviderEvent], deliveries: list[dict],
            returned: bool) -> IngestResult:
    result = IngestResult(received=len(events))
    if not events and not deliveries:
        return result
    matches = _match_deliveries(events, returned)
    reporting = reporting_providers()
    received_at = utcnow()
    # A provider's retry often repeats events inside one batch: the first copy is enough.
    by_key: dict[tuple[str, str], dict] = {}
    for e in events:
        row = _event_row(e, _delivery_for(e, matches, returned), reporting, received_at)
        by_key.setdefault((row["provider"], row["provider_event_id"]), row)
    rows = list(by_key.values())
    try:
        lock_recipients({r["delivery_id"] for r in rows if r["delivery_id"] is not None}
                        | {d["id"] for d in deliveries})
        if deliveries:
            _update_rows(Delivery.__table__, deliveries)  # one executemany, by primary key
        # Known duplicates are skipped cheaply; what a concurrent batch stores meanwhile is
        # caught by "on conflict", and the counts come from what the inserts really did.
        stored = _stored_keys(rows)
        new_rows = [r for r in rows if (r["provider"], r["provider_event_id"]) not in stored]
        matched = [r for r in new_rows if r["delivery_id"] is not None]
        unmatched = [r for r in new_rows if r["delivery_id"] is None]
        result.unmatched = _insert_rows(unmatched)
        result.stored = result.unmatched + _insert_rows(matched)
        result.duplicates = len(events) - result.stored
        # Refreshing a delivery whose event a concurrent batch stored first changes nothing.
        result.changed = refresh_statuses(sorted({r["delivery_id"] for r in matched}
                                                 | {d["id"] for d in deliveries}))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    announce(result.changed)
    return result


def record_answer(on: Connection, event: ProviderEvent, recipient_id: int, delivery: dict,
                  reporting: set[str]) -> None:
    """The send path's answer for one delivery (``delivery``: its id and the column values to
    write), in as few statements as the lock order allows, in the transaction open on ``on``
    (the caller commits it): the recipient's row locked (PostgreSQL), the delivery updated, its
    event inserted. Its statuses are left to a later ``refresh_statuses`` (the send path
    refreshes a few answers at a time; a crash's are refreshed by the requeue that takes its
    deliveries over).

    Unlike ``record_events`` it matches nothing and checks no duplicate first: the delivery is
    known, and its event id is its own (a replay of the same answer inserts nothing). It runs on
    a connection of its own, not the session: the session's layers (autoflush, and a pool
    checkout with its ping and reset for every transaction) would cost more than the statements,
    once per message sent."""
    lock_recipients(recipient_ids=[recipient_id], on=on)
    _update_rows(Delivery.__table__, [delivery], on=on)
    on.execute(_insert_events(on.dialect.name),
               _event_row(event, delivery["id"], reporting, utcnow()))


def lock_recipients(delivery_ids: Iterable[int] = (), recipient_ids: Iterable[int] = (),
                    on: Connection | None = None) -> None:
    """Take the locks that guard these deliveries and recipients, as the lock order above
    says: the recipients' rows, in id order (PostgreSQL; SQLite has one writer at a time).
    ``on``: the connection whose transaction takes them (by default the session's)."""
    delivery_ids, recipient_ids = sorted(delivery_ids), sorted(recipient_ids)
    if not (delivery_ids or recipient_ids) or db.engine.dialect.name != "postgresql":
        return
    # The deliveries' recipients are looked up first: an OR of two IN lists would make the
    # planner read the whole recipient table.
    wanted, run = set(recipient_ids), on or db.session
    if delivery_ids:
        wanted.update(run.scalars(
            select(Delivery.recipient_id).where(Delivery.id.in_(delivery_ids))))
    run.execute(select(Recipient.id).where(Recipient.id.in_(sorted(wanted)))
                .order_by(Recipient.id).with_for_update(key_share=True))


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
        _update_rows(Delivery.__table__, delivery_updates)
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
    changes = []
    for r in recipients:
        new = email_status(email=r.email, published=r.state == CredentialState.published,
                           deliveries=outcomes.get(r.id, []))
        if new != r.status:
            changes.append((r.id, r.status, new))
    if changes:
        now = utcnow()
        _update_rows(Recipient.__table__, [{"id": i, "status": new, "updated_at": now}
                                            for i, _, new in changes])
    # After the statuses: a recipient's own earlier delivery is no evidence that its domain
    # takes mail once it bounced (``addresses.domain_history``).
    causes = diagnosis.changed_causes([r.id for r in recipients])
    if causes:
        _update_rows(Recipient.__table__, causes)
    return changes


def announce(changes: list[tuple[int, str, str]]) -> None:
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
    recipient_ids = list(recipient_ids)
    lock_recipients(recipient_ids=recipient_ids)
    changes = refresh_recipients(recipient_ids)
    db.session.commit()
    announce(changes)
    return changes
