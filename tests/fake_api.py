"""What every local stand-in for a provider's HTTP API shares: a real HTTP server on loopback,
in a thread, thread-per-request and keep-alive like the real APIs, that records what it is sent,
counts the TCP connections its clients open, and answers each request as a test tells it to
(``answer``, or ``answer_for`` an address; ``HANG`` answers only when the test ends, to hit the
client's timeout)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

HANG = "hang"


def provider_fixture(make: Callable[..., Any]):
    """A ``provider_for`` fixture: ``provider_for(api, **config)`` is ``make(api, **config)``,
    a provider aimed at a fake API, whose connections are closed after the test."""

    @pytest.fixture
    def provider_for():
        made = []

        def build(api: FakeApi, **config):
            made.append(make(api, **config))
            return made[-1]

        yield build
        for provider in made:
            provider.close()

    return provider_for


class FakeApi:
    """Subclasses set ``path`` and ``default_answer`` and define ``post(request, body)``, which
    answers one POST with ``request.reply`` (and ``get``/``put``/``delete`` alike for the APIs
    that take them)."""

    path = ""  # the API's base path, part of ``url``
    default_answer: int | str = 200

    def __init__(self, hang_seconds: float = 30.0):
        self.hang_seconds = hang_seconds
        self.answer: int | str = self.default_answer
        self.answer_for: dict[str, int | str] = {}  # by recipient address
        self.requests: list[dict] = []  # every request, as the subclass records it
        self.accepted: list = []
        self.connections = 0  # TCP connections opened: keep-alive reuse shows here
        self._lock = threading.Lock()
        self._release = threading.Event()
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()  # let hanging handlers finish
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer_to(self, address: str | None) -> int | str:
        return self.answer_for.get(address, self.answer) if address else self.answer

    def hang(self) -> None:
        self._release.wait(self.hang_seconds)

    def record(self, request: dict, accepted=None) -> None:
        with self._lock:
            self.requests.append(request)
            if accepted is not None:
                self.accepted.append(accepted)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeApi
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
    # Headers and body leave in two writes: without this, Nagle's algorithm holds the body
    # until the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output quiet
        pass

    def setup(self):  # once per connection, however many requests it carries
        super().setup()
        with self.fake._lock:
            self.fake.connections += 1

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.fake.post(self, self.rfile.read(length))

    def do_GET(self):
        self._other("get")

    def do_PUT(self):
        self._other("put")

    def do_DELETE(self):
        self._other("delete")

    def _other(self, method: str) -> None:
        """A fake answers GET, PUT or DELETE when it defines ``get``/``put``/``delete(request,
        body)``."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        handler = getattr(self.fake, method, None)
        if handler is None:
            return self.reply(405, {"error": f"{method.upper()} is not allowed here"})
        handler(self, body)

    def reply(self, status: int, payload: dict | list | str | None = None,
              headers: dict | None = None) -> None:
        """Answer JSON for a dict or a list, plain text for a string, nothing for None."""
        if isinstance(payload, (dict, list)):
            data, content_type = json.dumps(payload).encode(), "application/json"
        elif isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = b"", None
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)
