"""SendGrid for ``helpdesk demo --provider sendgrid``: a local stand-in for the v3 mail-send API
that hands every email to the demo's SMTP sink, then posts the Event Webhook batch SendGrid
would (processed, then delivered, a bounce with the server's reply, or deferred; a spam report
when the recipient makes one), signed with a P-256 key made at start, as the Signed Event
Webhook is. Like SendGrid, it lists bounced and complaining addresses and drops later mail to
them ("dropped", "Bounced Address") until the suppression API deletes the entry."""
from __future__ import annotations

import base64
import json
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from urllib.parse import unquote

from helpdesk.demo_service import Dropped, HttpStandIn, SmtpAnswer

from . import SUPPRESSION_PATHS
from .webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER

PATH = "/v3/mail/send"
# What a drop says, by the list that holds the address.
DROP_REASONS = {"bounces": "Bounced Address", "spam reports": "Spam Reporting Address"}


class SendgridStandIn(HttpStandIn):
    name = "sendgrid"
    keeps_suppressions = True

    def __init__(self, sink_host: str, sink_port: int, webhook_url: str):
        super().__init__(sink_host, sink_port, webhook_url)
        self.api_key = f"SG.demo-{uuid.uuid4().hex}"
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._latest: dict[str, dict] = {}  # address -> the latest email's event fields

    @property
    def settings(self) -> dict:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"SENDGRID_API_URL": self.url + PATH, "SENDGRID_API_KEY": self.api_key,
                "SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(der).decode()}

    def answer(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"errors": [{"message": "The provided authorization grant is invalid, "
                                                "expired, or revoked"}]}
        if method in ("GET", "DELETE"):
            return self._suppression(method, path)
        if (method, path) != ("POST", PATH):
            return 404, {"errors": [{"message": "Not found"}]}
        mail = json.loads(body)
        message_id = uuid.uuid4().hex[:22]
        personalization = mail["personalizations"][0]
        to = personalization["to"][0]["email"]
        content = {c["type"]: c["value"] for c in mail["content"]}
        common = {"email": to, "sg_message_id": f"{message_id}.filter0001.16648.5515E0B88.0",
                  "smtp-id": f"<{message_id}@ismtpd-demo>",
                  **personalization.get("custom_args", {})}
        self._latest[to.lower()] = common
        self.later(lambda: self._post([self._event("processed", common)]))
        self.deliver(mail["from"]["email"], to, mail["subject"], content["text/plain"],
                     content["text/html"], mail.get("headers", {}),
                     lambda answer: self._post([self._outcome(common, answer)]))
        return 202, {}

    @staticmethod
    def _event(name: str, common: dict, **fields) -> dict:
        return {**common, "event": name, "timestamp": int(time.time()),
                "sg_event_id": base64.b64encode(uuid.uuid4().bytes).decode(), **fields}

    def _suppression(self, method: str, path: str) -> tuple[int, dict | list]:
        """The suppression API: look an address up on one list, or delete it from it."""
        for name, prefix in SUPPRESSION_PATHS.items():
            if path.startswith(f"/v3/{prefix}/"):
                address = unquote(path[len(prefix) + 5:]).lower()
                break
        else:
            return 404, {"errors": [{"message": "Not found"}]}
        listed, since = self.suppressions.get(address, (None, 0))
        if listed != name:
            if method == "DELETE":
                return 404, {"errors": [{"message": "Email does not exist"}]}
            return 200, {} if name == "unsubscribes" else []
        if method == "DELETE":
            del self.suppressions[address]
            return 204, {}
        return 200, [{"created": since, "email": address}]

    def complaint(self, address: str) -> bool:
        common = self._latest.get(address.lower())
        if common is not None:
            self.later(lambda: self._post([self._event("spamreport", common)]))
        return True

    def _outcome(self, common: dict, answer: SmtpAnswer | Dropped) -> dict:
        if isinstance(answer, Dropped):
            return self._event("dropped", common, reason=DROP_REASONS[answer.list])
        reply = f"{answer.code} {answer.text}"
        if answer.accepted:
            return self._event("delivered", common, response=reply, ip="127.0.0.1")
        if answer.permanent:
            return self._event("bounce", common, type="bounce", reason=reply,
                               status=answer.text.split(" ")[0], ip="127.0.0.1")
        return self._event("deferred", common, response=reply, attempt="1", ip="127.0.0.1")

    def _post(self, events: list[dict]) -> None:
        body = json.dumps(events).encode()
        timestamp = str(int(time.time()))
        signature = self._key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        self.post_event(body, {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                               SIGNATURE_HEADER: base64.b64encode(signature).decode()})

