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
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import getaddresses, parseaddr
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

from fake_api import HANG, FakeApi

BASE_PATH = "/v3"
# Mailgun's suppression lists under ``/v3/<domain>/``, and its 404 message for an address that
# is not on one.
SUPPRESSION_NOT_FOUND = {"bounces": "Address not found in bounces table",
                         "complaints": "No spam complaints found for this address",
                         "unsubscribes": "Address not found in unsubscribers table"}


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


class FakeMailgun(FakeApi):
    path = BASE_PATH
    default_answer = 200

    def __init__(self, api_key: str = "key-fake", domain: str = "mg.example.org",
                 hang_seconds: float = 30.0):
        super().__init__(hang_seconds)
        self.api_key = api_key
        self.domain = domain
        self.queued: dict[str, str] = {}
        # The domain's suppression lists, by list then address, each entry as the API shows it
        # (bounces: address, code, error, created_at; complaints and unsubscribes: address,
        # created_at).
        self.suppressions: dict[str, dict[str, dict]] = {
            name: {} for name in SUPPRESSION_NOT_FOUND}

    def _suppression(self, request) -> tuple[str, str] | None:
        """(list, address) of a suppression request, or None once it has answered."""
        self.record({"method": request.command, "path": request.path,
                     "headers": dict(request.headers)})
        if not self._authorised(request.headers.get("Authorization", "")):
            request.reply(401, "Forbidden")
            return None
        domain, _, rest = request.path.removeprefix(f"{BASE_PATH}/").partition("/")
        name, _, address = rest.partition("/")
        if domain != self.domain:
            request.reply(404, {"message": f"Domain not found: {domain}"})
            return None
        if name not in self.suppressions or "@" not in unquote(address):
            request.reply(404, {"message": "Not Found"})
            return None
        return name, unquote(address).lower()

    def get(self, request, raw: bytes) -> None:
        found = self._suppression(request)
        if found:
            name, address = found
            entry = self.suppressions[name].get(address)
            if entry is None:
                return request.reply(404, {"message": SUPPRESSION_NOT_FOUND[name]})
            return request.reply(200, entry)

    def delete(self, request, raw: bytes) -> None:
        found = self._suppression(request)
        if found:
            name, address = found
            if self.suppressions[name].pop(address, None) is None:
                return request.reply(404, {"message": SUPPRESSION_NOT_FOUND[name]})
            return request.reply(200, {"message": "Suppression has been removed",
                                       "address": address})

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

    def post(self, request, raw: bytes) -> None:
        form = parse_form(request.headers.get("Content-Type", ""), raw)
        self.record({"path": request.path, "headers": dict(request.headers), "form": form})
        if not self._authorised(request.headers.get("Authorization", "")):
            return request.reply(401, "Forbidden")  # the real API answers plain text
        if request.path != f"{BASE_PATH}/{self.domain}/messages":
            domain = request.path.removeprefix(f"{BASE_PATH}/").partition("/")[0]
            return request.reply(404, {"message": f"Domain not found: {domain}"})
        if form is None:
            return request.reply(400, {"message": "the body must be a form"})
        problem = validate(form)
        if problem:
            return request.reply(400, {"message": problem})
        answer = self.answer_to(parseaddr(form["to"][0])[1])
        if answer == HANG:
            self.hang()
            return request.reply(200, {"id": self._queued_id(), "message": "Queued. Thank you."})
        if answer == 200:
            message_id = self._queued_id()
            with self._lock:
                self.accepted.append(form)
                self.queued[form["v:helpdesk_delivery"][0]] = message_id
            return request.reply(200, {"id": message_id, "message": "Queued. Thank you."})
        if answer == 400:
            return request.reply(400, {"message": "'to' parameter is not a valid address. "
                                                  "please check documentation"})
        if answer == 401:
            return request.reply(401, "Forbidden")
        if answer == 429:
            return request.reply(429, {"message": "Too many requests"})
        return request.reply(int(answer), {"message": HTTPStatus(int(answer)).phrase})
