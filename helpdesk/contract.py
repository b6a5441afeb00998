"""The shapes a provider plugin works with: the message it sends, what a send returns, and the
normalized event it reports. Plain data, no Flask: a plugin can be tested without an app."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from .status import EVENT_TYPES

CORRELATION_HEADER = "X-Helpdesk-Delivery"
CORRELATION_VARIABLE = "helpdesk_delivery"

# Why a delivery failed or was held back, in one small closed vocabulary (in the spirit of
# sisimai's reasons): bounce readers and webhook parsers set ``ProviderEvent.reason_code`` to one
# of these keys, ``reason`` keeps the server's or service's own words. The severity says whether
# it was for good (``permanent``) or not (``temporary``).
REASON_CODES: dict[str, str] = {
    "user_unknown": "the mailbox does not exist",
    "host_unknown": "the domain does not exist or takes no mail",
    "mailbox_full": "the mailbox is full",
    "policy": "the receiving server's policy refused the sender (a block list, an allowlist, "
              "authentication)",
    "spam": "refused as spam or for its content",
    "too_large": "the message is too large",
    "expired": "delivery was given up after temporary refusals",
    "suspended": "the mailbox is suspended or disabled",
    "temporary": "a temporary refusal (greylisting, a rate limit, a busy server)",
    "suppressed": "the email service did not send it: the address is on its suppression list",
    "other": "another reason",
}
SEVERITIES = ("permanent", "temporary")


@dataclass(frozen=True)
class Message:
    """One email to one recipient. ``correlation_id`` must travel with it (custom args, user
    variables or a header) so that the provider's events can be matched back to the delivery."""

    correlation_id: str
    sender: str
    to: str
    to_name: str
    subject: str
    text: str
    html: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What happened when a provider was handed one message.

    - ``accepted``: the provider (or the receiving server) took it.
    - ``bounced``: the receiving server refused the address for good (SMTP 5xx).
    - ``refused``: the provider refused to send it for good (a bad request, a suppressed
      address): the recipient shows ``not_sent`` with the reason.
    - ``deferred``: a transient failure; the send is retried with backoff, and if it still fails
      past the retries it ends as ``give_up_as`` (``bounced`` or ``refused``).
    """

    outcome: str
    reason: str = ""
    message_id: str | None = None
    give_up_as: str = "refused"

    @classmethod
    def accepted(cls, message_id: str | None = None, reason: str = "") -> "SendResult":
        return cls("accepted", reason, message_id)

    @classmethod
    def bounced(cls, reason: str) -> "SendResult":
        return cls("bounced", reason)

    @classmethod
    def refused(cls, reason: str) -> "SendResult":
        return cls("refused", reason)

    @classmethod
    def deferred(cls, reason: str, give_up_as: str = "refused") -> "SendResult":
        return cls("deferred", reason, give_up_as=give_up_as)


@dataclass(frozen=True)
class ProviderEvent:
    """One delivery event, normalized. ``type`` is one of ``helpdesk.status.EVENT_TYPES``
    (``unknown`` for anything a provider sends that we do not know). ``event_id`` is unique per
    provider: it is the dedupe key, so a replayed event is stored once."""

    provider: str
    type: str
    event_id: str
    occurred_at: datetime  # aware, UTC
    correlation_id: str | None = None
    message_id: str | None = None
    recipient: str | None = None
    severity: str | None = None  # "permanent" | "temporary" where the provider says
    reason: str | None = None
    mta_response: str | None = None
    raw: Any = None
    reason_code: str | None = None  # a key of REASON_CODES

    def __post_init__(self) -> None:
        # Text from outside may hold NUL characters, which PostgreSQL cannot store.
        for name in ("event_id", "correlation_id", "message_id", "recipient", "severity",
                     "reason", "mta_response"):
            value = getattr(self, name)
            if isinstance(value, str) and "\x00" in value:
                object.__setattr__(self, name, value.replace("\x00", "\ufffd"))
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown normalized event type {self.type!r}")
        if self.reason_code is not None and self.reason_code not in REASON_CODES:
            raise ValueError(f"unknown reason code {self.reason_code!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


class WebhookError(Exception):
    """A webhook request that must not be stored. ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


def read_json(raw_body: bytes) -> Any:
    """A webhook body's JSON.

    :raises WebhookError: (400) the body is not UTF-8 JSON text.
    """
    try:
        return json.loads(raw_body.decode("utf-8"))
    except UnicodeDecodeError:
        raise WebhookError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise WebhookError(f"the body is not JSON: {error}") from None


def content_id(payload: Any) -> str:
    """A stable dedupe key for an event that carries no id of its own: the same event posted
    again hashes the same."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_of(value: Any) -> str | None:
    """A payload's field as text: stripped strings and numbers; anything else is None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


class SignatureError(WebhookError):
    """Missing, forged, stale or replayed signature."""

    status = 401


class NotConfigured(WebhookError):
    """The provider has no verification key configured: fail closed."""

    status = 403
