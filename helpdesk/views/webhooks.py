"""``POST /webhooks/<provider>``: verify first and fail closed, then parse, then store the batch
in one transaction (see ``helpdesk.ingest``)."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, request
from sqlalchemy.dialects import postgresql, sqlite

from .. import plugins
from ..auth import public
from ..contract import ProviderEvent, SignatureError, WebhookError, capabilities
from ..ingest import IngestResult, record_events
from ..models import WebhookNonce, db
from ..transactions import retried

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


def _refuse_replayed_nonce(provider: str, nonce: str) -> None:
    """Store a signed one-time token; a token seen before is a replayed request."""
    module = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    stmt = module.insert(WebhookNonce).values(provider=provider, nonce=nonce[:255]) \
        .on_conflict_do_nothing().returning(WebhookNonce.nonce)
    if db.session.execute(stmt).first() is None:  # rowcount is -1 on some drivers
        db.session.rollback()
        raise WebhookError("this signature token was used before (a replayed request)", 406)


@bp.route("/webhooks/<name>", methods=["POST"])
@public
def receive(name: str):
    provider = plugins.providers().get(name)
    if provider is None or not capabilities(provider).webhooks:
        abort(404, f"no provider {name!r} takes webhooks here")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before any work
    headers = request.headers
    try:
        nonce = provider.verify_webhook(headers, raw)
        if capabilities(provider).signs_one_time_tokens and not nonce:
            raise SignatureError("the request carries no signed one-time token")
        events = provider.parse_webhook(headers, raw)
        result = _store(name, nonce, events)
    except WebhookError as error:
        log.info("webhook %s refused (%s): %s", name, error.status, error)
        return jsonify(error=str(error)), error.status
    return jsonify(result.as_dict()), 200


@retried
def _store(provider: str, nonce: str | None, events: list[ProviderEvent]) -> IngestResult:
    """The signed token and the events in one transaction, run again whole if it loses a
    database conflict."""
    if nonce:
        _refuse_replayed_nonce(provider, nonce)
    return record_events(events)
