"""A local stand-in for the Amazon SES v2 API (the SDK pointed at it through ``endpoint_url``):
a real HTTP server on loopback, in a thread, that checks each request the way SES does and
answers in its REST-JSON dialect (errors carry ``x-amzn-ErrorType`` and a ``message``):

- every request must be signed with AWS Signature Version 4 by a known access key, for the
  ``ses`` service in the fake's region; the signature is recomputed from the request and the
  secret key (403 ``UnrecognizedClientException`` / ``SignatureDoesNotMatch``);
- ``POST /v2/email/outbound-emails`` (SendEmail): a verified sender identity (400
  ``MessageRejected``), a recipient, a subject and a body, well-formed headers and tags, a known
  configuration set (404 ``NotFoundException``) and our ``helpdesk_delivery`` tag; then 200
  with a new ``MessageId``;
- ``GET``/``DELETE /v2/email/suppression/addresses/{address}``: the account-level suppression
  list (``suppressed``), 404 ``NotFoundException`` for an address not on it.

    with FakeSes(access_key="AKIA…", secret_key="…", identities={"issuer.example"}) as api:
        api.url            # http://127.0.0.1:PORT (HELPDESK_SES_ENDPOINT_URL)
        api.answer = 429   # every later send gets this answer
        api.sent           # the MessageId answered, by helpdesk_delivery tag
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from datetime import datetime, timezone
from email.utils import parseaddr
from urllib.parse import quote, unquote, urlsplit

from fake_api import HANG, FakeApi

SEND_PATH = "/v2/email/outbound-emails"
SUPPRESSION_PATH = "/v2/email/suppression/addresses/"
AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/"
                           r"(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request, "
                           r"SignedHeaders=(?P<headers>[a-z0-9;-]+), "
                           r"Signature=(?P<signature>[0-9a-f]{64})$")
TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class FakeSes(FakeApi):
    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1",
                 identities=("issuer.example",), configuration_sets=("helpdesk",),
                 hang_seconds: float = 30.0):
        super().__init__(hang_seconds)
        self.keys = {access_key: secret_key}
        self.region = region
        self.identities = set(identities)  # verified domains and addresses
        self.configuration_sets = set(configuration_sets)
        self.suppressed: dict[str, dict] = {}  # the account-level suppression list
        self.sent: dict[str, str] = {}  # MessageId by helpdesk_delivery tag

    def suppress(self, address: str, reason: str = "BOUNCE") -> None:
        self.suppressed[address.lower()] = {
            "EmailAddress": address, "Reason": reason,
            "LastUpdateTime": datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc).timestamp(),
            "Attributes": {"MessageId": "0100018c-example", "FeedbackId": "0100018c-feedback"}}

    # --- Signature Version 4 ------------------------------------------------------------------

    def _refuse(self, request, status: int, code: str, message: str) -> None:
        request.reply(status, {"message": message}, headers={"x-amzn-ErrorType": code})

    def _signed(self, request, body: bytes) -> bool:
        """Recompute the request's SigV4 signature; answer the refusal and return False unless
        it matches."""
        found = AUTHORIZATION.match(request.headers.get("Authorization", ""))
        if not found:
            self._refuse(request, 403, "MissingAuthenticationTokenException",
                         "Missing Authentication Token")
            return False
        secret = self.keys.get(found["key"])
        if secret is None:
            self._refuse(request, 403, "UnrecognizedClientException",
                         "The security token included in the request is invalid.")
            return False
        amz_date = request.headers.get("X-Amz-Date", "")
        if (found["service"] != "ses" or found["region"] != self.region
                or not amz_date.startswith(found["date"])):
            self._refuse(request, 403, "SignatureDoesNotMatch",
                         f"Credential should be scoped to a valid region and service: "
                         f"{found['region']}/{found['service']}")
            return False
        signed = found["headers"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            self._refuse(request, 403, "SignatureDoesNotMatch",
                         "host and x-amz-date must be signed")
            return False
        url = urlsplit(request.path)
        query = "&".join(sorted(url.query.split("&"))) if url.query else ""
        canonical = "\n".join([
            request.command,
            quote(url.path, safe="/~"),  # SigV4 encodes the (already encoded) path again
            query,
            "".join(f"{name}:{' '.join(request.headers.get(name, '').split())}\n"
                    for name in signed),
            found["headers"],
            hashlib.sha256(body).hexdigest(),
        ])
        scope = f"{found['date']}/{self.region}/ses/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(("AWS4" + secret).encode(), found["date"])
        for part in (self.region, "ses", "aws4_request"):
            key = _hmac(key, part)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, found["signature"]):
            self._refuse(request, 403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature "
                         "you provided.")
            return False
        return True

    # --- SendEmail ----------------------------------------------------------------------------

    def _invalid(self, body) -> tuple[int, str, str] | None:
        """(status, code, message) SES would refuse this SendEmail with, or None."""
        if not isinstance(body, dict):
            return 400, "BadRequestException", "The request body is not JSON."
        sender = parseaddr(str(body.get("FromEmailAddress") or ""))[1]
        if "@" not in sender:
            return 400, "BadRequestException", "Missing required parameter FromEmailAddress."
        if not ({sender.lower(), sender.rpartition("@")[2].lower()} & self.identities):
            return 400, "MessageRejected", (
                f"Email address is not verified. The following identities failed the check "
                f"in region {self.region.upper()}: {sender}")
        to = (body.get("Destination") or {}).get("ToAddresses")
        if not isinstance(to, list) or not to or "@" not in parseaddr(str(to[0]))[1]:
            return 400, "BadRequestException", "Missing final '@domain'"
        simple = (body.get("Content") or {}).get("Simple") or {}
        if not (simple.get("Subject") or {}).get("Data"):
            return 400, "BadRequestException", "Missing required parameter Subject.Data."
        if not {"Text", "Html"} & set(simple.get("Body") or {}):
            return 400, "BadRequestException", "Body must contain Text or Html."
        if not all(isinstance(h, dict) and set(h) == {"Name", "Value"}
                   for h in simple.get("Headers", [])):
            return 400, "BadRequestException", "Each header must have a Name and a Value."
        tags = body.get("EmailTags", [])
        if not all(isinstance(t, dict) and TAG.fullmatch(str(t.get("Name", "")))
                   and TAG.fullmatch(str(t.get("Value", ""))) for t in tags):
            return 400, "BadRequestException", "Invalid tag name or value."
        if not any(t["Name"] == "helpdesk_delivery" for t in tags):  # our rule
            return 400, "BadRequestException", "The helpdesk_delivery tag is missing."
        configuration_set = body.get("ConfigurationSetName")
        if configuration_set and configuration_set not in self.configuration_sets:
            return 404, "NotFoundException", (
                f"Configuration set <{configuration_set}> does not exist.")
        return None

    def post(self, request, raw: bytes) -> None:
        if urlsplit(request.path).path != SEND_PATH:
            return self._refuse(request, 404, "NotFoundException", "Not found")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.record({"method": "POST", "headers": dict(request.headers), "body": body})
        if not self._signed(request, raw):
            return
        refusal = self._invalid(body)
        if refusal:
            return self._refuse(request, *refusal)
        to = parseaddr(body["Destination"]["ToAddresses"][0])[1]
        answer = self.answer_to(to)
        if answer == HANG:
            self.hang()
            answer = 200
        if answer == 200:
            message_id = f"0100018c{uuid.uuid4().hex[:8]}-{uuid.uuid4()}-000000"
            tags = {t["Name"]: t["Value"] for t in body.get("EmailTags", [])}
            with self._lock:
                self.accepted.append(body)
                self.sent[tags["helpdesk_delivery"]] = message_id
            return request.reply(200, {"MessageId": message_id})
        if answer == 400:
            return self._refuse(request, 400, "MessageRejected",
                                "Email address is not verified.")
        if answer == 429:
            return self._refuse(request, 429, "TooManyRequestsException",
                                "Maximum sending rate exceeded.")
        return self._refuse(request, int(answer), "InternalFailure",
                            "The request processing has failed because of an unknown error.")

    # --- the account-level suppression list ---------------------------------------------------

    def _suppression_address(self, request) -> str | None:
        path = urlsplit(request.path).path
        return unquote(path[len(SUPPRESSION_PATH):]) if path.startswith(SUPPRESSION_PATH) \
            else None

    def get(self, request, raw: bytes) -> None:
        address = self._suppression_address(request)
        self.record({"method": "GET", "path": request.path, "address": address})
        if address is None:
            return self._refuse(request, 404, "NotFoundException", "Not found")
        if not self._signed(request, raw):
            return
        entry = self.suppressed.get(address.lower())
        if entry is None:
            return self._refuse(request, 404, "NotFoundException",
                                f"Email address {address} does not exist on your suppression "
                                "list.")
        return request.reply(200, {"SuppressedDestination": entry})

    def delete(self, request, raw: bytes) -> None:
        address = self._suppression_address(request)
        self.record({"method": "DELETE", "path": request.path, "address": address})
        if address is None:
            return self._refuse(request, 404, "NotFoundException", "Not found")
        if not self._signed(request, raw):
            return
        if self.suppressed.pop(address.lower(), None) is None:
            return self._refuse(request, 404, "NotFoundException",
                                f"Email address {address} does not exist on your suppression "
                                "list.")
        return request.reply(200, {})
