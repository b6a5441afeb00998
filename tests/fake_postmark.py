"""A local stand-in for Postmark's API: a real HTTP server on loopback, in a thread, that checks
each request the way the real API does and answers with Postmark's JSON (``ErrorCode`` and
``Message``):

- ``POST /email``: the ``X-Postmark-Server-Token`` header (401, ErrorCode 10), JSON (422,
  ErrorCode 402), ``From`` and ``To`` addresses and a body (422, ErrorCode 300), a known
  ``MessageStream`` (422, ErrorCode 1235), string ``Metadata`` with our ``helpdesk_delivery``,
  and an inactive recipient (422, ErrorCode 406); else 200 with a new ``MessageID``.
- ``GET /bounces?count=&offset=&emailFilter=&inactive=`` and ``PUT /bounces/{id}/activate``:
  the bounce API, over the bounces a test adds with ``add_bounce``.

    with FakePostmark(token="server-token") as api:
        api.url              # http://127.0.0.1:PORT (HELPDESK_POSTMARK_API_URL)
        api.answer = 429     # every later send gets this answer
        api.answer_for["bob@example.org"] = 500
        api.sent             # the message id answered, by helpdesk_delivery
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from email.utils import parseaddr
from urllib.parse import parse_qs, urlsplit

from fake_api import HANG, FakeApi

BAD_TOKEN = {"ErrorCode": 10, "Message": "The Server Token you provided in the "
             "X-Postmark-Server-Token request header was invalid. Please verify that you are "
             "using a valid token."}


def _invalid(code: int, message: str) -> dict:
    return {"ErrorCode": code, "Message": message}


def validate(body) -> dict | None:
    """The 422 answer the real API gives this email JSON, or None when it is valid."""
    if not isinstance(body, dict):
        return _invalid(402, "Received invalid JSON input.")
    if "@" not in parseaddr(str(body.get("From") or ""))[1]:
        return _invalid(300, "Invalid 'From' address: the 'From' address is required.")
    to = parseaddr(str(body.get("To") or ""))[1]
    if "@" not in to:
        return _invalid(300, f"Error parsing 'To': Illegal email address '{to}'. It must "
                             "contain the '@' symbol.")
    if not body.get("TextBody") and not body.get("HtmlBody"):
        return _invalid(300, "Provide either email TextBody or HtmlBody or both.")
    headers = body.get("Headers", [])
    if not isinstance(headers, list) or not all(
            isinstance(h, dict) and set(h) == {"Name", "Value"} for h in headers):
        return _invalid(300, "Headers must be an array of objects with Name and Value.")
    metadata = body.get("Metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str)
                                                 for v in metadata.values()):
        return _invalid(300, "Metadata values must be strings.")
    if not metadata.get("helpdesk_delivery"):  # our rule, so that every event matches back
        return _invalid(300, "Metadata.helpdesk_delivery is missing")
    return None


class FakePostmark(FakeApi):
    def __init__(self, token: str = "server-token", streams=("outbound",),
                 hang_seconds: float = 30.0):
        super().__init__(hang_seconds)
        self.token = token
        self.streams = set(streams)
        self.inactive: set[str] = set()  # addresses Postmark will not send to
        self.bounces: list[dict] = []  # what the bounce API holds
        self.sent: dict[str, str] = {}  # MessageID by helpdesk_delivery

    def add_bounce(self, email: str, *, type: str = "HardBounce", can_activate: bool = True,
                   inactive: bool = True) -> dict:
        bounce = {"ID": 4323372036854775000 + len(self.bounces), "Type": type,
                  "TypeCode": 1, "Name": "Hard bounce", "MessageID": str(uuid.uuid4()),
                  "ServerID": 23, "MessageStream": "outbound",
                  "Description": "The server was unable to deliver your message (ex: unknown "
                                 "user, mailbox not found).",
                  "Details": "smtp;550 5.1.1 The email account that you tried to reach does "
                             "not exist.",
                  "Email": email, "From": "credentials@issuer.example",
                  "BouncedAt": "2019-11-05T16:33:54.9070259Z", "DumpAvailable": True,
                  "Inactive": inactive, "CanActivate": can_activate, "Subject": "Your credential"}
        self.bounces.append(bounce)
        if inactive:
            self.inactive.add(email.lower())
        return bounce

    def _authorised(self, request) -> bool:
        if request.headers.get("X-Postmark-Server-Token") == self.token:
            return True
        request.reply(401, BAD_TOKEN)
        return False

    def post(self, request, raw: bytes) -> None:
        if urlsplit(request.path).path != "/email":
            return request.reply(404, _invalid(404, "Not found"))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.record({"headers": dict(request.headers), "body": body})
        if not self._authorised(request):
            return
        if request.headers.get_content_type() != "application/json":
            return request.reply(415, _invalid(415, "Unsupported Media Type"))
        error = validate(body)
        if error is None and body.get("MessageStream", "outbound") not in self.streams:
            error = _invalid(1235, "The 'MessageStream' provided does not exist on this "
                                   "server.")
        to = parseaddr(body["To"])[1] if error is None else None
        if error is None and to.lower() in self.inactive:
            error = _invalid(406, f"You tried to send to recipient(s) that have been marked as "
                                  f"inactive. Found inactive addresses: {to}. Inactive "
                                  "recipients are ones that have generated a hard bounce, a "
                                  "spam complaint, or a manual suppression.")
        if error:
            return request.reply(422, error)
        answer = self.answer_to(to)
        if answer == HANG:
            self.hang()
            answer = 200
        if answer == 200:
            message_id = str(uuid.uuid4())
            with self._lock:
                self.accepted.append(body)
            self.sent[body["Metadata"]["helpdesk_delivery"]] = message_id
            return request.reply(200, {
                "To": body["To"], "SubmittedAt": datetime.now(timezone.utc).isoformat(),
                "MessageID": message_id, "ErrorCode": 0, "Message": "OK"})
        if answer == 401:
            return request.reply(401, BAD_TOKEN)
        if answer == 422:
            return request.reply(422, _invalid(300, "Invalid email request"))
        if answer == 429:
            return request.reply(429, _invalid(429, "Rate limit exceeded."))
        return request.reply(int(answer), _invalid(0, "Internal server error."))

    def get(self, request, raw: bytes) -> None:
        url = urlsplit(request.path)
        if url.path != "/bounces":
            return request.reply(404, _invalid(404, "Not found"))
        self.record({"method": "GET", "path": request.path})
        if not self._authorised(request):
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not query.get("count", "").isdigit() or not query.get("offset", "").isdigit():
            return request.reply(422, _invalid(600, "The 'count' and 'offset' parameters are "
                                                    "required."))
        found = [b for b in self.bounces
                 if query.get("emailFilter", "").lower() in b["Email"].lower()
                 and ("inactive" not in query
                      or str(b["Inactive"]).lower() == query["inactive"].lower())]
        start, count = int(query["offset"]), int(query["count"])
        return request.reply(200, {"TotalCount": len(found),
                                   "Bounces": found[start:start + count]})

    def put(self, request, raw: bytes) -> None:
        parts = urlsplit(request.path).path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "bounces" or parts[2] != "activate":
            return request.reply(404, _invalid(404, "Not found"))
        self.record({"method": "PUT", "path": request.path})
        if not self._authorised(request):
            return
        bounce = next((b for b in self.bounces if str(b["ID"]) == parts[1]), None)
        if bounce is None:
            return request.reply(422, _invalid(701, "This bounce was not found."))
        if not bounce["CanActivate"]:
            return request.reply(422, _invalid(702, "This bounce cannot be activated."))
        bounce["Inactive"] = False
        self.inactive.discard(bounce["Email"].lower())
        return request.reply(200, {"Message": "OK", "Bounce": bounce})
