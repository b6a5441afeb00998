"""Periodic upkeep the worker runs: reading bounce reports from a Maildir, and putting back on
the queue deliveries that a dead worker left half-done."""
from __future__ import annotations

import logging
import os
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, update

from . import plugins, queue
from .ingest import IngestResult, record_events
from .models import Delivery, WebhookNonce, db, utcnow
from .status import SENDING

log = logging.getLogger(__name__)


def ingest_bounce(raw: bytes) -> IngestResult | None:
    """Read one returned message; None when no plugin recognises it as a bounce report.
    A report that cannot be read raises ValueError and records nothing."""
    found = plugins.hook().helpdesk_parse_bounce(raw_message=raw)
    if found is None:
        return None
    return record_events(found)


def poll_bounce_maildir() -> dict[str, int]:
    """Ingest the new messages of BOUNCE_MAILDIR; a report read is moved to ``cur`` (marked
    seen), anything else is logged and left in ``new`` for a person to look at.

    Only ``new`` is listed, so a Maildir full of old reports costs nothing; a report is moved
    by renaming its file, as the Maildir format prescribes, so its bytes stay as they came.
    Two workers polling at once are harmless: the loser of a rename skips the file, and a
    report ingested twice is stored once.
    """
    path = current_app.config.get("BOUNCE_MAILDIR")
    counts = {"ingested": 0, "not_reports": 0, "malformed": 0}
    if not path:
        return counts
    new, cur = os.path.join(path, "new"), os.path.join(path, "cur")
    if not (os.path.isdir(new) and os.path.isdir(cur)):
        log.error("BOUNCE_MAILDIR %s is not a Maildir (it needs new/ and cur/)", path)
        return counts
    for name in sorted(os.listdir(new)):
        if name.startswith("."):
            continue
        try:
            with open(os.path.join(new, name), "rb") as file:
                raw = file.read()
        except FileNotFoundError:  # another worker took it
            continue
        except OSError as error:
            log.error("cannot read %s in the bounce Maildir: %s", name, error)
            continue
        try:
            result = ingest_bounce(raw)
        except ValueError as error:
            counts["malformed"] += 1
            log.warning("%s in the bounce Maildir is a report that cannot be read (%s); "
                        "left there", name, error)
            continue
        if result is None:
            counts["not_reports"] += 1
            log.warning("%s in the bounce Maildir is not a delivery status report; left there",
                        name)
            continue
        try:
            os.rename(os.path.join(new, name), os.path.join(cur, f"{name}:2,S"))
        except FileNotFoundError:
            continue
        counts["ingested"] += 1
    return counts


def requeue_stalled() -> int:
    """Queue again deliveries still unanswered SEND_STALL_SECONDS after they were due (their
    worker died). One conditional update takes them, so a delivery a live task has just
    claimed (its due time moved ahead) is never taken from it; a requeued delivery that was in
    fact sent is skipped by ``send_batch``."""
    now = utcnow()
    cutoff = now - timedelta(seconds=float(current_app.config["SEND_STALL_SECONDS"]))
    ids = db.session.execute(
        update(Delivery).where(Delivery.status == SENDING, Delivery.sent_at.is_(None),
                               Delivery.send_due_at < cutoff)
        .values(send_due_at=now).returning(Delivery.id),
        execution_options={"synchronize_session": False}).scalars().all()
    db.session.commit()
    for start in range(0, len(ids), 100):
        queue.submit_send(sorted(ids)[start:start + 100])
    if ids:
        log.warning("requeued %d stalled deliveries", len(ids))
    return len(ids)


def forget_old_nonces() -> int:
    """Drop one-time webhook tokens older than twice the signature tolerance: a request that
    old is refused as stale before its token is looked at."""
    tolerance = float(current_app.config["WEBHOOK_TOLERANCE_SECONDS"])
    cutoff = utcnow() - timedelta(seconds=2 * tolerance)
    removed = db.session.execute(
        delete(WebhookNonce).where(WebhookNonce.seen_at < cutoff)).rowcount
    db.session.commit()
    return removed
