"""What the database holds now, read afresh for a test's assertions (never the session's copy
of a row loaded before the request under test changed it)."""
from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.models import Delivery, DeliveryEvent, Recipient, db


def delivery_of(recipient: Recipient) -> Delivery:
    return db.session.scalars(select(Delivery).where(Delivery.recipient_id == recipient.id)).one()


def status_of(recipient: Recipient) -> str:
    return db.session.scalar(select(Recipient.status).where(Recipient.id == recipient.id))


def stored_events() -> int:
    return db.session.scalar(select(func.count()).select_from(DeliveryEvent))
