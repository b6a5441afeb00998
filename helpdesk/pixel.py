"""Opens through the tracking pixel: a signed, unguessable URL per delivery, and the open it
records when a mail app loads it, said to be a machine's when a mail-privacy proxy fetched it."""
from __future__ import annotations

import ipaddress

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


# Apple's Mail Privacy Protection fetches every image of a message as it arrives, from Apple's
# own network, naming itself by the bare "Mozilla/5.0" (a mail app a person reads with names its
# engine and system too). Either says the open is the proxy's.
PRIVACY_PROXY_USER_AGENT = "Mozilla/5.0"
PRIVACY_PROXY_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
PRIVACY_PROXY_REASON = "tracking pixel, fetched by a mail-privacy proxy (Apple Mail Privacy " \
                       "Protection)"


def fetched_by_privacy_proxy(user_agent: str | None, address: str | None) -> bool:
    """Whether a request for the pixel came from a mail-privacy proxy rather than a mail app."""
    if (user_agent or "").strip() == PRIVACY_PROXY_USER_AGENT:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in PRIVACY_PROXY_NETWORKS)


@retried
def record_open(token: str, user_agent: str | None = None, address: str | None = None) -> bool:
    """Record an open for a valid pixel token; a bad token records nothing. The request's
    ``user_agent`` and ``address`` tell a mail-privacy proxy's fetch from a person's open."""
    try:
        correlation_id = _pixel_signer().loads(token)
    except BadSignature:
        return False
    delivery = db.session.scalar(select(Delivery).where(Delivery.correlation_id == correlation_id))
    if delivery is None:
        return False
    now = utcnow()
    machine = fetched_by_privacy_proxy(user_agent, address)
    # One open a minute is plenty for the timeline; a mail app reloading the image is not news.
    ingest.record_events([ProviderEvent(
        provider=delivery.provider, type="opened",
        event_id=f"{correlation_id}:pixel{':proxy' if machine else ''}:{now:%Y%m%d%H%M}",
        occurred_at=now, correlation_id=correlation_id, recipient=delivery.email,
        reason=PRIVACY_PROXY_REASON if machine else "tracking pixel",
        reason_code="machine_open" if machine else None)])
    return True
