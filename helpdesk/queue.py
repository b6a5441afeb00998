"""The task queue (Huey), one per app: a SQLite file in the instance folder by default,
``redis://…`` when several machines share the work, ``immediate`` to run tasks in-line (tests).

The tasks themselves are in ``helpdesk.tasks``; the work they do (sending, publishing,
maintenance) enqueues through here without this module knowing it, so the two stay out of an
import cycle.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app
from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey.api import Huey
from sqlalchemy import update

from .models import Delivery, db, utcnow


def make_huey(url: str, name: str = "helpdesk") -> Huey:
    if url == "immediate":
        return MemoryHuey(name, immediate=True)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url)
    return SqliteHuey(name, filename=url.removeprefix("sqlite:///"))


def init_app(app: Flask) -> None:
    """The app's queue; ``helpdesk.tasks`` puts the tasks on it."""
    app.extensions["huey"] = make_huey(str(app.config["QUEUE_URL"]))


def huey_of(app: Flask | None = None) -> Huey:
    return (app or current_app).extensions["huey"]


def enqueue_send(delivery_ids: list[int], delay: float | None = None) -> None:
    """Queue a send of these deliveries (committed first: the worker reads them)."""
    due = utcnow() + timedelta(seconds=delay or 0)
    db.session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids))
                       .values(send_due_at=due), execution_options={"synchronize_session": False})
    db.session.commit()
    submit_send(delivery_ids, delay)


def submit_send(delivery_ids: list[int], delay: float | None = None) -> None:
    """Hand a send task to the queue for deliveries whose ``send_due_at`` is already set."""
    send = current_app.extensions["helpdesk_tasks"].send
    if delay:
        send.schedule((delivery_ids,), delay=delay)
    else:
        send(delivery_ids)
