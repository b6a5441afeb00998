"""Periodic upkeep: one-time webhook tokens are forgotten once a request carrying them would be
refused as stale anyway."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from helpdesk.maintenance import forget_old_nonces
from helpdesk.models import WebhookNonce, db, utcnow


def test_tokens_older_than_twice_the_tolerance_are_forgotten(app):
    tolerance = app.config["WEBHOOK_TOLERANCE_SECONDS"]
    now = utcnow()
    db.session.add_all([
        WebhookNonce(provider="mailgun", nonce="fresh", seen_at=now),
        WebhookNonce(provider="mailgun", nonce="recent",
                     seen_at=now - timedelta(seconds=2 * tolerance - 60)),
        WebhookNonce(provider="mailgun", nonce="ancient",
                     seen_at=now - timedelta(seconds=2 * tolerance + 60))])
    db.session.commit()
    assert forget_old_nonces() == 1
    assert set(db.session.scalars(select(WebhookNonce.nonce))) == {"fresh", "recent"}
