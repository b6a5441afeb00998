"""Transactions that lose a conflict are run again: a PostgreSQL deadlock or serialization
failure rolls the whole transaction back, so running it again from the start is safe; nothing
of it was written. (SQLite, as Python's driver runs it, begins a transaction at its first write
and takes the one write lock there, waiting out its busy timeout: it has no such conflict.)

Only the scope that began the transaction retries it: a retried function called while a
transaction is already open (its caller's work not yet committed) lets the conflict rise to
the caller, whose own retry reruns the whole transaction. ``helpdesk.ingest`` explains the lock
order that keeps deadlocks from happening in the first place."""
from __future__ import annotations

import functools
import logging
import random
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError

from .models import db

log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL: serialization_failure, deadlock_detected.
CONFLICT_SQLSTATES = {"40001", "40P01"}
ATTEMPTS = 8
FIRST_DELAY = 0.02  # seconds, doubling, with jitter so that the losers do not meet again
GIVE_UP_AFTER = 10.0  # seconds: past that, the caller hears of it


def is_conflict(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and \
        getattr(error.orig, "sqlstate", None) in CONFLICT_SQLSTATES


def retried(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` (which commits its own transaction) again when it loses a conflict."""

    @functools.wraps(fn)
    def run(*args, **kwargs) -> T:
        if db.session().in_transaction():
            return fn(*args, **kwargs)  # the caller began it: the caller retries it
        started, attempt = time.monotonic(), 1
        while True:
            try:
                return fn(*args, **kwargs)
            except DBAPIError as error:
                db.session.rollback()
                if (not is_conflict(error) or attempt == ATTEMPTS
                        or time.monotonic() - started > GIVE_UP_AFTER):
                    raise
                log.info("%s lost a database conflict (%s); running it again",
                         fn.__qualname__, type(error.orig).__name__)
                time.sleep(FIRST_DELAY * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
                attempt += 1

    return run
