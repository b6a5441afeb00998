"""The task queue (Huey), one per app: a SQLite file in the instance folder by default,
``redis://…`` when several machines share the work, ``immediate`` to run tasks in-line (tests).

Tasks: send a batch of deliveries (a transient failure is rescheduled with a delay that doubles),
publish scheduled credentials when due, nudge recipients who have not opened, read the bounce
mailboxes, put back deliveries whose worker died mid-send, and forget webhook tokens too old to
replay.
"""
from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

from flask import Flask, current_app
from huey import MemoryHuey, RedisHuey, SqliteHuey, crontab
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
    huey = make_huey(str(app.config["QUEUE_URL"]))

    def in_app(fn):
        def run(*args, **kwargs):
            with app.app_context():
                return fn(*args, **kwargs)
        run.__name__ = fn.__name__
        return run

    from . import maintenance, publishing, sending

    tasks = SimpleNamespace(
        send=huey.task(name="send_deliveries")(in_app(sending.send_batch)),
        publish_due=huey.periodic_task(crontab(minute="*"), name="publish_due")(
            in_app(publishing.publish_due)),
        nudge_due=huey.periodic_task(crontab(minute="7"), name="nudge_due")(
            in_app(publishing.nudge_due)),
        poll_bounces=huey.periodic_task(crontab(minute="*"), name="poll_bounces")(
            in_app(maintenance.poll_bounces)),
        requeue_stalled=huey.periodic_task(crontab(minute="*/5"), name="requeue_stalled")(
            in_app(maintenance.requeue_stalled)),
        forget_old_nonces=huey.periodic_task(crontab(minute="17"), name="forget_old_nonces")(
            in_app(maintenance.forget_old_nonces)),
    )
    recovered = threading.Lock()

    @huey.on_startup()
    def _requeue_after_a_crash() -> None:
        # Each worker thread runs this; once per process is enough. Without it, the sends a
        # killed worker had taken would wait for the periodic task.
        if recovered.acquire(blocking=False):
            in_app(maintenance.requeue_stalled)()

    app.extensions["huey"] = huey
    app.extensions["helpdesk_tasks"] = tasks


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
