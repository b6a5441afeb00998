"""The queue's tasks, one set per app: send a batch of deliveries (a transient failure is
rescheduled with a delay that doubles), publish scheduled credentials when due, nudge recipients
who have not opened, read the bounce mailboxes, put back deliveries whose worker died mid-send, and
forget webhook tokens too old to replay."""
from __future__ import annotations

import threading
from types import SimpleNamespace

from flask import Flask
from huey import crontab

from . import maintenance, publishing, sending
from .queue import huey_of


def init_app(app: Flask) -> None:
    huey = huey_of(app)

    def in_app(fn):
        def run(*args, **kwargs):
            with app.app_context():
                return fn(*args, **kwargs)
        run.__name__ = fn.__name__
        return run

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

    app.extensions["helpdesk_tasks"] = tasks
