"""The queue's tasks, one set per app: send a batch of deliveries (a transient failure is
rescheduled with a delay that doubles), publish scheduled credentials when due, nudge recipients
who have not opened, read the bounce mailboxes, keep typo causes true to the domain history
(``maintenance.refresh_typos``), fold the status tallies (``helpdesk.tallies``), and forget
webhook tokens too old to replay. A
task that loses a database conflict is run again (``helpdesk.transactions``).

Beside the tasks, each worker process watches for sends whose task was lost
(``maintenance.requeue_stalled``) every ``stall_check_seconds``: a send is taken over within
SEND_STALL_SECONDS and that interval, by whichever worker is alive, without a restart."""
from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Callable

from flask import Flask
from huey import crontab

from . import maintenance, publishing, sending, tallies
from .queue import huey_of
from .transactions import retried

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    huey = huey_of(app)

    def in_app(fn):
        again = retried(fn)

        def run(*args, **kwargs):
            with app.app_context():
                return again(*args, **kwargs)
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
        refresh_typos=huey.periodic_task(crontab(minute="*"), name="refresh_typos")(
            in_app(maintenance.refresh_typos)),
        forget_old_nonces=huey.periodic_task(crontab(minute="17"), name="forget_old_nonces")(
            in_app(maintenance.forget_old_nonces)),
        fold_tallies=huey.periodic_task(crontab(minute="*"), name="fold_tallies")(
            in_app(tallies.fold)),
    )
    watcher = StallWatcher(in_app(maintenance.requeue_stalled),
                           stall_check_seconds(float(app.config["SEND_STALL_SECONDS"])))
    # Every worker thread runs these hooks; the watcher starts once per process.
    huey.on_startup("watch_stalled_sends")(watcher.start)
    huey.on_shutdown("stop_watching_stalled_sends")(watcher.stop)
    app.extensions["helpdesk_tasks"] = tasks


def stall_check_seconds(stall_seconds: float) -> float:
    """How often a worker looks for lost sends: every minute, more often when sends are
    taken over sooner than that (a short SEND_STALL_SECONDS)."""
    return max(0.5, min(60.0, stall_seconds / 2))


class StallWatcher:
    """A thread that runs ``check`` every ``every`` seconds while the worker runs."""

    def __init__(self, check: Callable[[], object], every: float):
        self.check, self.every = check, every
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stopped.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="helpdesk-stall-watcher")
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stopped.set()
            thread.join(10)

    def _run(self) -> None:
        # Right away at start: what a worker killed before this one left need not wait.
        while True:
            try:
                self.check()
            except Exception:  # a database that is down now may be back at the next check
                log.exception("looking for stalled sends failed")
            if self._stopped.wait(self.every):
                return
