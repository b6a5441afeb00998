"""A local stand-in for SendGrid's v3 mail-send API: a real HTTP server on loopback, in a thread,
that checks each request the way the real API does (Bearer key, JSON shape, required fields)
and answers as it is told: 202, 400 with SendGrid's error JSON, 401, 429, 500, or not at all
(to hit the client's timeout). Reusable by load tests: it is thread-per-request and counts what
it took.

    with FakeSendgrid(api_key="SG.test") as api:
        api.url          # http://127.0.0.1:PORT/v3/mail/send
        api.answer = 429 # every later request gets this answer
        api.answer_for["bob@example.org"] = 400
        api.accepted     # the bodies answered 202
"""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v3/mail/send"
HANG = "hang"


def _error(message: str, field: str | None = None) -> dict:
    return {"message": message, "field": field, "help": None}


def validate(body: Any) -> list[dict]:
    """The errors SendGrid would report for this mail-send body (empty when it is valid)."""
    if not isinstance(body, dict):
        return [_error("Bad Request", None)]
    errors = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(_error("The personalizations field is required and must have at least "
                             "one personalization.", "personalizations"))
    else:
        for i, p in enumerate(personalizations):
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to:
                errors.append(_error("The to array is required for all personalization "
                                     "objects, and must have at least one email object with "
                                     "a valid email address.", f"personalizations.{i}.to"))
            else:
                for j, address in enumerate(to):
                    if not isinstance(address, dict) or "@" not in str(address.get("email", "")):
                        errors.append(_error("Does not contain a valid address.",
                                             f"personalizations.{i}.to.{j}.email"))
            custom_args = p.get("custom_args") if isinstance(p, dict) else None
            if not isinstance(custom_args, dict) or not custom_args.get("helpdesk_delivery"):
                # Not a SendGrid rule: ours, so that every event can be matched back.
                errors.append(_error("custom_args.helpdesk_delivery is missing",
                                     f"personalizations.{i}.custom_args"))
            elif not all(isinstance(v, str) for v in custom_args.values()):
                errors.append(_error("Custom args values must be strings.",
                                     f"personalizations.{i}.custom_args"))
    sender = body.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        errors.append(_error("The from object must be provided for every email send. It is an "
                             "object that requires an email parameter, but may also contain a "
                             "name parameter.", "from.email"))
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        errors.append(_error("The subject is required. You can get around this requirement if "
                             "you use a template with a subject defined or if every "
                             "personalization has a subject defined.", "subject"))
    content = body.get("content")
    if not isinstance(content, list) or not content:
        errors.append(_error("Unless a valid template_id is provided, the content parameter is "
                             "required. There must be at least one defined content block.",
                             "content"))
    else:
        types = [c.get("type") if isinstance(c, dict) else None for c in content]
        if any(not isinstance(c, dict) or not c.get("value") for c in content):
            errors.append(_error("The content value must be a string at least one character "
                                 "in length.", "content.value"))
        if "text/plain" in types and types[0] != "text/plain":
            errors.append(_error("If present, text/plain content must be first, followed by "
                                 "any other content.", "content"))
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        errors.append(_error("Invalid type. Expected: object, given: array.", "headers"))
    return errors


class FakeSendgrid:
    def __init__(self, api_key: str = "SG.fake-key", hang_seconds: float = 30.0):
        self.api_key = api_key
        self.hang_seconds = hang_seconds
        self.answer: int | str = 202
        self.answer_for: dict[str, int | str] = {}  # by recipient address
        self.requests: list[dict] = []  # every request: headers and parsed body
        self.accepted: list[dict] = []
        self.connections: set[tuple] = set()  # client (host, port): one per TCP connection
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    def __enter__(self) -> "FakeSendgrid":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()  # let hanging handlers finish
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _decide(self, body: Any) -> int | str:
        try:
            address = body["personalizations"][0]["to"][0]["email"]
        except (KeyError, IndexError, TypeError):
            return self.answer
        return self.answer_for.get(address, self.answer)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API

            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, payload: dict | None = None,
                       headers: dict | None = None) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != PATH:
                    return self._reply(404, {"errors": [_error("Not found", None)]})
                auth = self.headers.get("Authorization", "")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with fake._lock:
                    fake.requests.append({"headers": dict(self.headers), "body": body})
                    fake.connections.add(self.client_address)
                if auth != f"Bearer {fake.api_key}":
                    return self._reply(401, {"errors": [_error(
                        "The provided authorization grant is invalid, expired, or revoked",
                        None)]})
                if self.headers.get_content_type() != "application/json" or body is None:
                    return self._reply(400, {"errors": [_error(
                        "Bad Request: the body must be JSON", None)]})
                errors = validate(body)
                if errors:
                    return self._reply(400, {"errors": errors})
                answer = fake._decide(body)
                if answer == HANG:
                    fake._release.wait(fake.hang_seconds)
                    return self._reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})
                if answer == 202:
                    with fake._lock:
                        fake.accepted.append(body)
                    return self._reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})
                if answer == 400:
                    return self._reply(400, {"errors": [_error(
                        "The to email does not contain a valid address.",
                        "personalizations.0.to.0.email")]})
                if answer == 401:
                    return self._reply(401, {"errors": [_error(
                        "The provided authorization grant is invalid, expired, or revoked",
                        None)]})
                if answer == 429:
                    return self._reply(429, {"errors": [_error(
                        "too many requests", None)]}, headers={"X-RateLimit-Remaining": "0"})
                return self._reply(int(answer), {"errors": [_error(
                    "Internal server error", None)]})

        return Handler
