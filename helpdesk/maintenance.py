"""Periodic upkeep the worker runs: reading bounce reports from a Maildir, and putting back on
the queue deliveries that a dead worker left half-done."""
from __future__ import annotations

import logging
import mailbox
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from . import plugins, queue
from .events import IngestResult, record_events
from .models import Delivery, db, utcnow
from .status import SENDING

log = logging.getLogger(__name__)

# A delivery this long past its due time and still unanswered lost its worker.
STALL_AFTER = timedelta(minutes=10)


def ingest_bounce(raw: bytes) -> IngestResult | None:
    """Read one returned message; None when no plugin recognises it as a bounce report."""
    found = plugins.hook().helpdesk_parse_bounce(raw_message=raw)
    if found is None:
        return None
    return record_events(found)


def poll_bounce_maildir() -> dict[str, int]:
    """Ingest the new messages of BOUNCE_MAILDIR; a report read is moved to ``cur``, anything
    else is logged and left untouched for a person to look at."""
    path = current_app.config.get("BOUNCE_MAILDIR")
    counts = {"ingested": 0, "not_reports": 0}
    if not path:
        return counts
    box = mailbox.Maildir(path, create=False)
    for key in list(box.iterkeys()):
        msg = box[key]
        if msg.get_subdir() != "new":
            continue
        raw = box.get_bytes(key)
        if ingest_bounce(raw) is None:
            counts["not_reports"] += 1
            log.warning("%s in the bounce Maildir is not a delivery status report; left there",
                        key)
            continue
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[key] = msg
        counts["ingested"] += 1
    return counts


def requeue_stalled() -> int:
    """Queue again deliveries still unanswered long after they were due (their worker died)."""
    cutoff = utcnow() - STALL_AFTER
    ids = db.session.scalars(select(Delivery.id).where(
        Delivery.status == SENDING, Delivery.sent_at.is_(None),
        Delivery.send_due_at < cutoff)).all()
    if ids:
        for start in range(0, len(ids), 100):
            queue.enqueue_send(list(ids[start:start + 100]))
        log.warning("requeued %d stalled deliveries", len(ids))
    return len(ids)
