"""A real HTTP server for the browser tests: werkzeug's threaded server on loopback, serving one
app in a thread, and a Huey consumer that can be started when a test wants the queue to move."""
from __future__ import annotations

import signal
import threading

from flask import Flask
from werkzeug.serving import make_server

from helpdesk.queue import huey_of


class LiveServer:
    """``with LiveServer(app, port) as server: ... server.url ...``"""

    def __init__(self, app: Flask, port: int, host: str = "127.0.0.1"):
        self.app = app
        self.url = f"http://{host}:{port}"
        self._server = make_server(host, port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="live-server")

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def drain_queue(app: Flask) -> int:
    """Run every task waiting in the app's queue, here and now; returns how many ran. The test
    data is sent this way, so that a test starts from settled statuses."""
    huey = huey_of(app)
    ran = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        ran += 1
    return ran


class Worker:
    """A Huey consumer (one thread, no periodic tasks) running the app's queue until stopped."""

    # The consumer installs its own handlers for these; pytest's must come back afterwards.
    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, app: Flask):
        self._consumer = huey_of(app).create_consumer(workers=1, worker_type="thread",
                                                      periodic=False)
        self._handlers: dict = {}
        self.running = False

    def start(self) -> None:
        self._handlers = {s: signal.getsignal(s) for s in self.SIGNALS}
        self._consumer.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._consumer.stop(graceful=True)
            self.running = False
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)
