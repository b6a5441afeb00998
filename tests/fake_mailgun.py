"""A local stand-in for Mailgun's messages API: a real HTTP server on loopback, in a thread, that
checks each request the way the real API does (basic auth ``api:<key>``, a known sending domain
in the path, the form fields ``from``, ``to``, ``subject`` and ``text`` or ``html``) plus our own
rule (``v:helpdesk_delivery`` present), and answers as it is told: 200 with the queued message
id, 400 with Mailgun's error JSON, 401, 429, 500, or not at all (to hit the client's timeout).
Reusable by load tests: it is thread-per-request and records what it took.

    with FakeMailgun(api_key="key-test", domain="mg.issuer.example") as api:
        api.url           # http://127.0.0.1:PORT/v3 (HELPDESK_MAILGUN_API_URL)
        api.answer = 429  # every later request gets this answer
        api.answer_for["bob@example.org"] = 400
        api.accepted      # the forms answered 200, each a dict of lists
        api.queued        # the message id answered, by v:helpdesk_delivery
        api.connections   # TCP connections the clients opened
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import getaddresses, parseaddr
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HANG = "hang"
BASE_PATH = "/v3"


def parse_form(content_type: str, raw: bytes) -> dict[str, list[str]] | None:
    """The fields of a urlencoded or multipart form (both are what the real API takes), or
    None when the body is neither."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            return parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
        fields: dict[str, list[str]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True) or b""
                fields.setdefault(name, []).append(payload.decode("utf-8", "replace"))
        return fields
    return None


def validate(form: dict[str, list[str]]) -> str | None:
    """The message the real API would answer with 400, or None when the form is valid."""
    for name in ("from", "to", "subject"):
        if not any(v.strip() for v in form.get(name, [])):
            return f"{name} parameter is missing"
    if not any(form.get(name) for name in ("text", "html", "amp-html", "template")):
        return "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
    if "@" not in parseaddr(form["from"][0])[1]:
        return "'from' parameter is not a valid address. please check documentation"
    if not all("@" in address for _, address in getaddresses(form["to"])):
        return "'to' parameter is not a valid address. please check documentation"
    if not any(v.strip() for v in form.get("v:helpdesk_delivery", [])):
        # Not a Mailgun rule: ours, so that every event can be matched back.
        return "v:helpdesk_delivery is missing"
    return None


class FakeMailgun:
    def __init__(self, api_key: str = "key-fake", domain: str = "mg.example.org",
                 hang_seconds: float = 30.0):
        self.api_key = api_key
        self.domain = domain
        self.hang_seconds = hang_seconds
        self.answer: int | str = 200
        self.answer_for: dict[str, int | str] = {}  # by recipient address
        self.requests: list[dict] = []  # every request: path, headers and parsed form
        self.accepted: list[dict[str, list[str]]] = []
        self.queued: dict[str, str] = {}
        self.connections = 0  # TCP connections opened: keep-alive reuse shows here
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{BASE_PATH}"

    def __enter__(self) -> "FakeMailgun":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()  # let hanging handlers finish
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _decide(self, form: dict[str, list[str]]) -> int | str:
        address = parseaddr(form["to"][0])[1]
        return self.answer_for.get(address, self.answer)

    def _queued_id(self) -> str:
        return f"<{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().hex[:16]}@{self.domain}>"

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, key = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == "api" and key == self.api_key

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API
            # Headers and body leave in two writes: without this, Nagle's algorithm holds
            # the body until the client's delayed ACK (~40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def setup(self):  # once per connection, however many requests it carries
                super().setup()
                with fake._lock:
                    fake.connections += 1

            def _reply(self, status: int, payload: dict | str) -> None:
                if isinstance(payload, dict):
                    data, content_type = json.dumps(payload).encode(), "application/json"
                else:
                    data, content_type = payload.encode(), "text/plain; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                form = parse_form(self.headers.get("Content-Type", ""), raw)
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "form": form})
                if not fake._authorised(self.headers.get("Authorization", "")):
                    return self._reply(401, "Forbidden")  # the real API answers plain text
                if self.path != f"{BASE_PATH}/{fake.domain}/messages":
                    domain = self.path.removeprefix(f"{BASE_PATH}/").partition("/")[0]
                    return self._reply(404, {"message": f"Domain not found: {domain}"})
                if form is None:
                    return self._reply(400, {"message": "the body must be a form"})
                problem = validate(form)
                if problem:
                    return self._reply(400, {"message": problem})
                answer = fake._decide(form)
                if answer == HANG:
                    fake._release.wait(fake.hang_seconds)
                    return self._reply(200, {"id": fake._queued_id(),
                                             "message": "Queued. Thank you."})
                if answer == 200:
                    message_id = fake._queued_id()
                    with fake._lock:
                        fake.accepted.append(form)
                        fake.queued[form["v:helpdesk_delivery"][0]] = message_id
                    return self._reply(200, {"id": message_id, "message": "Queued. Thank you."})
                if answer == 400:
                    return self._reply(400, {"message": "'to' parameter is not a valid address. "
                                                        "please check documentation"})
                if answer == 401:
                    return self._reply(401, "Forbidden")
                if answer == 429:
                    return self._reply(429, {"message": "Too many requests"})
                return self._reply(int(answer), {"message": HTTPStatus(int(answer)).phrase})

        return Handler
