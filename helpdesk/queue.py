"""The task queue (Huey), one per app: a SQLite file in the instance folder by default,
``redis://…`` when several machines share the work, ``immediate`` to run tasks in-line (tests).

The tasks themselves are in ``helpdesk.tasks``; the work they do (sending, publishing,
maintenance) enqueues through here without this module knowing it, so the two stay out of an
import cycle.

The queue being down never fails what queued the work: the deliveries are committed first, and
a worker sends them once the queue is back (``maintenance.requeue_stalled``).
"""
from __future__ import annotations

import itertools
import logging
import sqlite3

from flask import Flask, current_app
from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey.api import Huey
from huey.storage import SqliteStorage
from redis import RedisError

log = logging.getLogger(__name__)

# What a queue that is down raises, whichever kind it is.
QUEUE_ERRORS = (RedisError, sqlite3.Error, OSError)


class _SqliteQueueStorage(SqliteStorage):
    """Huey's SQLite storage, its file written like the app's database (WAL,
    ``synchronous=NORMAL``): a commit is not flushed to disk each time (Huey's default flushes
    every enqueue, 6 ms each, most of what publishing cost), and a power cut loses at most the
    last tasks, never the file; their deliveries are committed in the database already and
    ``maintenance.requeue_stalled`` queues them again."""

    def _create_connection(self):
        connection = super()._create_connection()
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


def make_huey(url: str, name: str = "helpdesk") -> Huey:
    if url == "immediate":
        return MemoryHuey(name, immediate=True)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url)
    return SqliteHuey(name, filename=url.removeprefix("sqlite:///"),
                      storage_class=_SqliteQueueStorage)


def init_app(app: Flask) -> None:
    """The app's queue; ``helpdesk.tasks`` puts the tasks on it."""
    app.extensions["huey"] = make_huey(str(app.config["QUEUE_URL"]))


def huey_of(app: Flask | None = None) -> Huey:
    return (app or current_app).extensions["huey"]


def submit_send(delivery_ids: list[int], delay: float | None = None) -> None:
    """Hand a send task to the queue for deliveries already committed. A queue that is down is
    logged, not raised: the deliveries wait in the database, and a worker queues them again
    once their task is found missing."""
    send = current_app.extensions["helpdesk_tasks"].send
    try:
        if delay:
            send.schedule((delivery_ids,), delay=delay)
        else:
            send(delivery_ids)
    except QUEUE_ERRORS as error:
        log.warning("the queue is not answering (%s: %s); %d deliveries will be sent once it "
                    "is back", type(error).__name__, error, len(delivery_ids))


def waiting_sends() -> set[int]:
    """The deliveries that send tasks still waiting in the queue (due, or scheduled for later)
    will send: a backlog is slow, not lost, and queueing them again would only make it
    longer. Raises one of ``QUEUE_ERRORS`` when the queue is down."""
    huey = huey_of()
    name = current_app.extensions["helpdesk_tasks"].send.name
    waiting: set[int] = set()
    for task in itertools.chain(huey.pending(), huey.scheduled()):
        if task.name == name and task.args:
            waiting.update(task.args[0])
    return waiting
