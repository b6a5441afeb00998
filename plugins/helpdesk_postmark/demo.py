"""Postmark for ``helpdesk demo --provider postmark``: a local stand-in for the email API that
hands every email to the demo's SMTP sink, then posts the webhook Postmark would (Delivery, or a
Bounce of Type HardBounce or SoftBounce with the server's reply), with the webhook URL's basic
auth."""
from __future__ import annotations

import base64
import itertools
import json
import secrets
import uuid
from datetime import datetime, timezone
from email.utils import parseaddr

from helpdesk.demo_service import HttpStandIn, SmtpAnswer

from .webhook import DEFAULT_USER

_bounce_ids = itertools.count(4323372036854775000)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class PostmarkStandIn(HttpStandIn):
    name = "postmark"

    def __init__(self, sink_host: str, sink_port: int, webhook_url: str):
        super().__init__(sink_host, sink_port, webhook_url)
        self.token = f"demo-{uuid.uuid4()}"
        self.secret = secrets.token_urlsafe(24)

    @property
    def settings(self) -> dict:
        return {"POSTMARK_API_URL": self.url, "POSTMARK_SERVER_TOKEN": self.token,
                "POSTMARK_WEBHOOK_SECRET": self.secret}

    def answer(self, method, path, headers, body):
        if (method, path) != ("POST", "/email"):
            return 404, {"ErrorCode": 404, "Message": "Not found"}
        if headers.get("X-Postmark-Server-Token") != self.token:
            return 401, {"ErrorCode": 10, "Message": "The Server Token you provided in the "
                         "X-Postmark-Server-Token request header was invalid."}
        email = json.loads(body)
        message_id = str(uuid.uuid4())
        to = parseaddr(email["To"])[1]
        record = {"MessageID": message_id, "ServerID": 1, "MessageStream": email["MessageStream"],
                  "Tag": "", "Metadata": email.get("Metadata", {})}
        self.deliver(email["From"], email["To"], email["Subject"], email["TextBody"],
                     email["HtmlBody"], {h["Name"]: h["Value"] for h in email.get("Headers", [])},
                     lambda answer: self._report(record, to, answer))
        return 200, {"To": email["To"], "SubmittedAt": _now(), "MessageID": message_id,
                     "ErrorCode": 0, "Message": "OK"}

    def _report(self, record: dict, to: str, answer: SmtpAnswer) -> None:
        if answer.accepted:
            event = {**record, "RecordType": "Delivery", "Recipient": to,
                     "DeliveredAt": _now(), "Details": f"smtp;{answer.code} {answer.text}"}
        else:
            hard = answer.permanent
            event = {**record, "RecordType": "Bounce", "ID": next(_bounce_ids),
                     "Type": "HardBounce" if hard else "SoftBounce",
                     "TypeCode": 1 if hard else 4096,
                     "Name": "Hard bounce" if hard else "Soft bounce/Undeliverable",
                     "Description": "The server was unable to deliver your message (ex: unknown "
                                    "user, mailbox not found)." if hard else
                                    "Unable to temporarily deliver this message.",
                     "Details": f"smtp;{answer.code} {answer.text}", "Email": to,
                     "From": "", "BouncedAt": _now(), "DumpAvailable": False,
                     "Inactive": hard, "CanActivate": True, "Subject": ""}
        credentials = base64.b64encode(f"{DEFAULT_USER}:{self.secret}".encode()).decode()
        self.post_event(json.dumps(event).encode(), {
            "Content-Type": "application/json", "Authorization": f"Basic {credentials}"})

