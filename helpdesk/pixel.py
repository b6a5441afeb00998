"""Opens through the tracking pixel: a signed, unguessable URL per delivery, and the open it
records when a mail app loads it."""
from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from . import ingest
from .contract import ProviderEvent
from .models import Delivery, db, utcnow
from .transactions import retried


def _pixel_signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="helpdesk.open-pixel")


def pixel_url(delivery: Delivery) -> str:
    token = _pixel_signer().dumps(delivery.correlation_id)
    return f"{current_app.config['BASE_URL'].rstrip('/')}/t/{token}.gif"


@retried
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
    ingest.record_events([ProviderEvent(
        provider=delivery.provider, type="opened",
        event_id=f"{correlation_id}:pixel:{now:%Y%m%d%H%M}", occurred_at=now,
        correlation_id=correlation_id, recipient=delivery.email, reason="tracking pixel")])
    return True
