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
import uuid
from typing import Any
from urllib.parse import unquote

from fake_api import HANG, FakeApi

PATH = "/v3/mail/send"
# The suppression lists' paths (each followed by ``/{email}``), as SendGrid's v3 API has them.
SUPPRESSION_PATHS = {"bounces": "/v3/suppression/bounces",
                     "spam reports": "/v3/suppression/spam_reports",
                     "unsubscribes": "/v3/asm/suppressions/global"}


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


class FakeSendgrid(FakeApi):
    path = PATH
    default_answer = 202

    def __init__(self, api_key: str = "SG.fake-key", hang_seconds: float = 30.0):
        super().__init__(hang_seconds)
        self.api_key = api_key
        # What SendGrid's suppression lists hold, by list name then address: each entry as its
        # API shows it (bounces: created, email, reason, status; spam reports: created, email,
        # ip; global unsubscribes: recipient_email).
        self.suppressions: dict[str, dict[str, dict]] = {name: {} for name in SUPPRESSION_PATHS}

    def _suppression(self, request) -> tuple[str, str] | None:
        """(list name, address) of a suppression request's path, or None (then it answered)."""
        self.record({"method": request.command, "path": request.path,
                     "headers": dict(request.headers)})
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            request.reply(401, {"errors": [_error(
                "The provided authorization grant is invalid, expired, or revoked", None)]})
            return None
        for name, prefix in SUPPRESSION_PATHS.items():
            if request.path.startswith(prefix + "/") and "@" in unquote(request.path):
                return name, unquote(request.path[len(prefix) + 1:]).lower()
        request.reply(404, {"errors": [_error("Not found", None)]})
        return None

    def get(self, request, raw: bytes) -> None:
        found = self._suppression(request)
        if found:
            name, address = found
            entry = self.suppressions[name].get(address)
            if name == "unsubscribes":  # one object, empty when the address is not on it
                return request.reply(200, entry or {})
            return request.reply(200, [entry] if entry else [])

    def delete(self, request, raw: bytes) -> None:
        found = self._suppression(request)
        if found:
            name, address = found
            if self.suppressions[name].pop(address, None) is None:
                return request.reply(404, {"errors": [_error("Email does not exist", None)]})
            return request.reply(204)

    @staticmethod
    def _address(body: Any) -> str | None:
        try:
            return body["personalizations"][0]["to"][0]["email"]
        except (KeyError, IndexError, TypeError):
            return None

    def post(self, request, raw: bytes) -> None:
        if request.path != PATH:
            return request.reply(404, {"errors": [_error("Not found", None)]})
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.record({"headers": dict(request.headers), "body": body})
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return request.reply(401, {"errors": [_error(
                "The provided authorization grant is invalid, expired, or revoked", None)]})
        if request.headers.get_content_type() != "application/json" or body is None:
            return request.reply(400, {"errors": [_error(
                "Bad Request: the body must be JSON", None)]})
        errors = validate(body)
        if errors:
            return request.reply(400, {"errors": errors})
        answer = self.answer_to(self._address(body))
        if answer == HANG:
            self.hang()
            return request.reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})
        if answer == 202:
            with self._lock:
                self.accepted.append(body)
            return request.reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})
        if answer == 400:
            return request.reply(400, {"errors": [_error(
                "The to email does not contain a valid address.",
                "personalizations.0.to.0.email")]})
        if answer == 401:
            return request.reply(401, {"errors": [_error(
                "The provided authorization grant is invalid, expired, or revoked", None)]})
        if answer == 429:
            return request.reply(429, {"errors": [_error("too many requests", None)]},
                                 headers={"X-RateLimit-Remaining": "0"})
        return request.reply(int(answer), {"errors": [_error("Internal server error", None)]})
