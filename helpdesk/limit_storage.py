"""A storage for the rate limiter (the ``limits`` package) in the app's own database, for
installations without Redis: the sign-in limits then hold across every web process, as they
do in Redis, instead of each process counting on its own.

``database://`` names it: it counts in the database of the app in context. Each acquired entry
is one row (``RateLimitHit``) inserted and committed *before* the window is counted, and taken
back when the count is over the limit: two processes acquiring at once both see both rows, so
at worst both are refused, never both let through over the limit."""
from __future__ import annotations

import time
from typing import Callable

from limits.storage import MovingWindowSupport, Storage
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from .models import RateLimitHit, db

hits = RateLimitHit.__table__


class DatabaseStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = ["database"]
    clock: Callable[[], float] = time.time  # tests set their own

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def _add(self, key: str, expiry: float, amount: int) -> tuple[int, float]:
        now = self.clock()
        with db.engine.begin() as connection:
            # Expired rows go as new ones come: an index seek, so the table stays small.
            connection.execute(delete(hits).where(hits.c.expires_at <= now))
            row = connection.execute(insert(hits).values(
                key=key, at=now, expires_at=now + expiry, n=amount).returning(hits.c.id))
            return row.scalar_one(), now

    def _window(self, key: str, since: float) -> tuple[float | None, int]:
        with db.engine.connect() as connection:
            oldest, count = connection.execute(
                select(func.min(hits.c.at), func.coalesce(func.sum(hits.c.n), 0))
                .where(hits.c.key == key, hits.c.at > since)).one()
        return oldest, int(count)

    # -- the moving window (what helpdesk's limits use) --

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        row_id, now = self._add(key, expiry, amount)
        if self._window(key, now - expiry)[1] <= limit:
            return True
        with db.engine.begin() as connection:
            connection.execute(delete(hits).where(hits.c.id == row_id))
        return False

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        oldest, count = self._window(key, now - expiry)
        return (now if oldest is None else oldest), count

    # -- a counter per key (the fixed-window strategies): the entries not yet expired --

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self._add(key, expiry, amount)
        return self.get(key)

    def get(self, key: str) -> int:
        with db.engine.connect() as connection:
            return int(connection.scalar(
                select(func.coalesce(func.sum(hits.c.n), 0))
                .where(hits.c.key == key, hits.c.expires_at > self.clock())))

    def get_expiry(self, key: str) -> float:
        now = self.clock()
        with db.engine.connect() as connection:
            latest = connection.scalar(select(func.max(hits.c.expires_at))
                                       .where(hits.c.key == key, hits.c.expires_at > now))
        return now if latest is None else latest

    def check(self) -> bool:
        try:
            with db.engine.connect() as connection:
                connection.scalar(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with db.engine.begin() as connection:
            return connection.execute(delete(hits)).rowcount

    def clear(self, key: str) -> None:
        with db.engine.begin() as connection:
            connection.execute(delete(hits).where(hits.c.key == key))
