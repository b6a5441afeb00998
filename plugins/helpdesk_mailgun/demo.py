"""Mailgun for ``helpdesk demo --provider mailgun``: a local stand-in for the messages API that
hands every email to the demo's SMTP sink, then posts the tracking webhook Mailgun would
(delivered, or failed with severity permanent or temporary and the server's reply), signed with
the webhook signing key as Mailgun signs it (HMAC-SHA256 of timestamp and a one-time token)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from email.utils import parseaddr
from urllib.parse import parse_qs

from helpdesk.demo_service import HttpStandIn, SmtpAnswer

DOMAIN = "mg.demo.example"


class MailgunStandIn(HttpStandIn):
    name = "mailgun"

    def __init__(self, sink_host: str, sink_port: int, webhook_url: str):
        super().__init__(sink_host, sink_port, webhook_url)
        self.api_key = f"key-{secrets.token_hex(16)}"
        self.signing_key = secrets.token_hex(16)

    @property
    def settings(self) -> dict:
        return {"MAILGUN_API_URL": self.url + "/v3", "MAILGUN_DOMAIN": DOMAIN,
                "MAILGUN_API_KEY": self.api_key,
                "MAILGUN_WEBHOOK_SIGNING_KEY": self.signing_key}

    def answer(self, method, path, headers, body):
        if (method, path) != ("POST", f"/v3/{DOMAIN}/messages"):
            return 404, {"message": "Not found"}
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {"message": "Invalid private key"}
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8"),
                                               keep_blank_values=True).items()}
        message_id = f"{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().hex[:16]}@{DOMAIN}"
        to = parseaddr(form["to"])[1]
        headers_out = {k[2:]: v for k, v in form.items() if k.startswith("h:")}
        variables = {k[2:]: v for k, v in form.items() if k.startswith("v:")}
        self.deliver(form["from"], form["to"], form["subject"], form.get("text", ""),
                     form.get("html", ""), headers_out,
                     lambda answer: self._post(message_id, to, variables, answer))
        return 200, {"id": f"<{message_id}>", "message": "Queued. Thank you."}

    def _post(self, message_id: str, to: str, variables: dict, answer: SmtpAnswer) -> None:
        data = {"id": secrets.token_urlsafe(16), "timestamp": time.time(), "recipient": to,
                "user-variables": variables, "log-level": "info",
                "message": {"headers": {"message-id": message_id, "to": to}},
                "delivery-status": {"code": answer.code, "message": answer.text,
                                    "description": "", "attempt-no": 1}}
        if answer.accepted:
            data["event"] = "delivered"
        else:
            data.update(event="failed", reason="bounce" if answer.permanent else "generic",
                        severity="permanent" if answer.permanent else "temporary")
        timestamp, token = str(int(time.time())), secrets.token_hex(25)
        signature = hmac.new(self.signing_key.encode(), f"{timestamp}{token}".encode(),
                             hashlib.sha256).hexdigest()
        body = {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                "event-data": data}
        self.post_event(json.dumps(body).encode(), {"Content-Type": "application/json"})
