"""The rate limiter's storage in the app's own database (``database://``, the default without
Redis): counts that every web process sees, windows that move with the clock, and no more
entries let through than the limit when processes acquire at once."""
from __future__ import annotations

import threading

import pytest
from limits import RateLimitItemPerMinute
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from sqlalchemy import func, select

from conftest import PASSWORD
from helpdesk.auth import create_user
from helpdesk.limit_storage import DatabaseStorage
from helpdesk.models import RateLimitHit, db


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage(app, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(DatabaseStorage, "clock", clock)
    made = DatabaseStorage("database://")
    made.reset()
    return made, clock


def stored_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(RateLimitHit))


def test_a_moving_window_refuses_past_the_limit_and_frees_as_the_window_moves(storage):
    storage, clock = storage
    limiter, three = MovingWindowRateLimiter(storage), RateLimitItemPerMinute(3)
    assert [limiter.hit(three, "login", "ann") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(three, "login", "bob")  # another key counts apart
    assert limiter.get_window_stats(three, "login", "ann").remaining == 0
    clock.now += 30
    assert not limiter.hit(three, "login", "ann")
    clock.now += 31  # the first three are more than a minute old
    assert limiter.hit(three, "login", "ann")
    assert limiter.get_window_stats(three, "login", "ann").remaining == 2
    # Expired rows are gone: only the three hits of the last minute (two keys) are kept.
    clock.now += 61
    limiter.hit(three, "login", "carol")
    assert stored_rows() == 1


def test_a_counter_expires_and_clear_forgets_a_key(storage):
    storage, clock = storage
    limiter, two = FixedWindowRateLimiter(storage), RateLimitItemPerMinute(2)
    assert [limiter.hit(two, "api", "k") for _ in range(3)] == [True, True, False]
    assert storage.get_expiry(two.key_for("api", "k")) == clock.now + 60
    limiter.clear(two, "api", "k")
    assert limiter.hit(two, "api", "k")
    clock.now += 61
    assert storage.get(two.key_for("api", "k")) == 0
    assert storage.check()


def test_processes_acquiring_at_once_never_get_past_the_limit(app, storage):
    storage, _ = storage
    item, admitted, lock = RateLimitItemPerMinute(10), [], threading.Lock()
    start = threading.Barrier(6)

    def attempt() -> None:
        with app.app_context():
            start.wait()
            for _ in range(5):
                if MovingWindowRateLimiter(storage).hit(item, "login", "race"):
                    with lock:
                        admitted.append(1)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 30 attempts at a limit of 10: never more than 10 let through, and at least 5 (a refusal
    # sees 11 rows, of which at most 6 are other threads' attempts in flight); what the window
    # holds is exactly what was let through (a refused entry is taken back).
    assert 5 <= len(admitted) <= 10
    assert MovingWindowRateLimiter(storage).get_window_stats(item, "login", "race") \
        .remaining == 10 - len(admitted)


def test_the_per_address_limit_holds_across_processes_without_redis(app_factory, sink):
    first, second = (app_factory(sink, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute")
                     for _ in range(2))
    assert first.config["RATELIMIT_STORAGE_URI"] == "database://"
    with first.app_context():
        create_user("agent@issuer.example", PASSWORD, "agent")

    def login(app) -> int:
        with app.app_context():
            return app.test_client().post("/login", data={
                "email": "agent@issuer.example", "password": "guess"}).status_code

    assert [login(first), login(second), login(first), login(second)] == [401, 401, 401, 429]
