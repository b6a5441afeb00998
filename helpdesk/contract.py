"""The provider contract: everything a provider plugin relies on, and nothing heavy (no Flask,
no database), so that a plugin's parser can be imported and tested on its own.

- the shapes: ``Message`` (what to send), ``SendResult`` (what a send returned),
  ``ProviderEvent`` (one normalized event), ``NotABounce`` (a bounce reader's verdict on a
  returned message that is no report), ``Setting`` (a setting a plugin declares through the
  ``helpdesk_settings`` hook);
- the protocols: ``Provider`` (it sends), ``WebhookProvider`` (it also takes signed webhooks),
  ``SuppressionList`` (it can look an address up on the service's suppression list, and take it
  off);
- the **capabilities** a provider declares, which the core reads instead of asking its name
  (see ``capabilities``):

  ``reports_deliveries = True``
      the service reports when the receiving server took the message (a ``delivered`` event).
      Then its acceptance (``SendResult.accepted``, an ``accepted`` event) only means the
      service queued it, and the recipient stays "Sending" until ``delivered`` (or a bounce)
      comes. Without it (SMTP), the receiving server's acceptance is the delivery.
  ``signs_one_time_tokens = True``
      ``verify_webhook`` returns a one-time token the service signed with each request; the app
      stores it and refuses (406) a request that brings a token seen before. A provider that
      declares it and returns no token is refused (401).
  a suppression list
      the provider implements ``SuppressionList`` (both methods). A provider whose service keeps
      none simply lacks them: never a method that pretends.
  webhooks
      the provider implements ``WebhookProvider``; one without sets ``verify_webhook = None``
      (or lacks it) and ``POST /webhooks/<name>`` answers 404.

- shared helpers for webhook parsers: ``read_json``, ``content_id``, ``text_of``,
  ``parse_timestamp`` (unix times), ``parse_iso_timestamp`` (ISO 8601) and ``check_fresh``
  (the freshness window of a signature's timestamp).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Protocol, runtime_checkable

from . import untrusted_json
from .status import EVENT_TYPES

CORRELATION_HEADER = "X-Helpdesk-Delivery"
CORRELATION_VARIABLE = "helpdesk_delivery"

# Why a delivery failed or was held back, in one small closed vocabulary (in the spirit of
# sisimai's reasons), and whether an open was a machine's: bounce readers and webhook parsers
# set ``ProviderEvent.reason_code`` to one of these keys, ``reason`` keeps the server's or
# service's own words. The severity says whether it was for good (``permanent``) or not
# (``temporary``).
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
    # On an open or a click: the service's own flag (or our pixel's request) says a machine
    # made it, a mail-privacy proxy fetching images or a security scanner, not a person.
    "machine_open": "opened by a machine (a mail-privacy proxy or a security scanner)",
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
    - ``deferred``: a transient failure (an SMTP 4xx, greylisting, a service that is down);
      the send is retried with backoff through ``SEND_RETRY_WINDOW_HOURS``, and if it still
      fails then it ends ``expired``: a soft failure, never a bounce.
    """

    outcome: str
    reason: str = ""
    message_id: str | None = None

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
    def deferred(cls, reason: str) -> "SendResult":
        return cls("deferred", reason)


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
    # The report named the recipient by its local part alone and the domain was guessed: the
    # delivery its correlation id or message id names is the one if that local part is its.
    recipient_guessed: bool = False

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


@dataclass(frozen=True)
class NotABounce:
    """A bounce reader's verdict on a message that came back but reports no failure: ``what``
    it is, in words for a log line ("an auto-reply (RFC 3834)", "a read receipt")."""

    what: str


class WebhookError(Exception):
    """A webhook request that must not be stored. ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


def read_json(raw_body: bytes) -> Any:
    """A webhook body's JSON, read with a bound on its nesting (``helpdesk.untrusted_json``), so
    it is safe to read before the signature is checked.

    :raises WebhookError: (400) the body is not UTF-8 JSON text, or it nests too deeply.
    """
    try:
        return untrusted_json.loads(raw_body)
    except untrusted_json.JSONInputError as error:
        raise WebhookError(str(error)) from None


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


def parse_timestamp(value: Any, *, what: str = "the event", status: int = 400) -> datetime:
    """A unix time as providers send it (a number, or its digits as text) as an aware UTC
    datetime.

    :param what: names the thing in the error, e.g. ``'"event-data"'``.
    :param status: the HTTP answer of the error (406 tells some services "never send this again").
    :raises WebhookError: the value is missing, not a finite number or out of range.
    """
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WebhookError(f"{what} has no unix \"timestamp\" (got {value!r:.40})", status)
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise WebhookError(f"the event timestamp {value!r} is out of range", status) from None


def parse_iso_timestamp(value: Any, *, what: str = "the event's time",
                        status: int = 400) -> datetime:
    """An ISO 8601 time with its UTC offset, as providers write it (``2019-11-05T16:33:54.907Z``,
    any number of decimals, or ``…-05:00``), as an aware UTC datetime.

    :param what: names the field in the error, e.g. ``"DeliveredAt"``.
    :raises WebhookError: the value is missing, not ISO 8601, or has no offset (its instant is
        unknown).
    """
    text = text_of(value)
    if not text:
        raise WebhookError(f"{what} is missing", status)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookError(f"{what} is not an ISO 8601 time: {text[:40]!r}", status) from None
    if moment.tzinfo is None:
        raise WebhookError(f"{what} has no UTC offset: {text[:40]!r}", status)
    return moment.astimezone(timezone.utc)


def check_fresh(signed_at: str | float, *, tolerance: float, now: float | None = None,
                what: str = "the signature timestamp") -> None:
    """Refuse a signature whose timestamp is further than ``tolerance`` seconds from ``now``
    (the setting ``WEBHOOK_TOLERANCE_SECONDS``), in the past or in the future, so that a
    captured request cannot be posted again later.

    :param signed_at: the signed unix time, as sent (text or a number).
    :param now: the current unix time; ``time.time()`` when None (tests pass their clock).
    :raises SignatureError: the timestamp is not a unix time, or is stale.
    """
    try:
        signed = float(signed_at.strip() if isinstance(signed_at, str) else signed_at)
    except (TypeError, ValueError):
        signed = math.nan
    if not math.isfinite(signed):
        raise SignatureError(f"{what} is not a unix time: {str(signed_at)[:40]!r}")
    age = (time.time() if now is None else now) - signed
    if abs(age) > tolerance:
        direction = "old" if age > 0 else "in the future"
        raise SignatureError(f"{what} is stale: {math.ceil(abs(age))} seconds {direction}, "
                             f"more than the {tolerance:g} seconds allowed")


class SignatureError(WebhookError):
    """Missing, forged, stale or replayed signature."""

    status = 401


class NotConfigured(WebhookError):
    """The provider has no verification key configured: fail closed."""

    status = 403


class ServiceError(Exception):
    """The email service could not answer a question about an address (unreachable, a refused
    key, an unexpected answer). The message says why, in words an agent can act on, and never
    holds a secret."""


@dataclass(frozen=True)
class Suppression:
    """An address on a service's suppression list: the service drops every email to it.

    ``list`` names the service's list (``"bounces"``, ``"spam reports"``, ``"unsubscribes"``…),
    ``reason`` keeps the service's words, ``since`` is when it was added (aware UTC) if known.
    """

    address: str
    list: str
    reason: str = ""
    since: datetime | None = None


@dataclass(frozen=True)
class Setting:
    """A setting a plugin reads, declared through the ``helpdesk_settings`` hook.

    It is set like the core's: ``HELPDESK_<name>`` in the environment or ``<name> = …`` in the
    instance folder's ``config.py``; ``default`` applies when neither does. A ``secret`` is never
    shown: ``/admin/settings`` masks it and logs never carry its value.
    """

    name: str  # without the HELPDESK_ prefix, e.g. "PIGEON_LOFT"
    default: Any
    help: str
    secret: bool = False


@runtime_checkable
class Provider(Protocol):
    """An email service helpdesk sends through (see ``helpdesk.hookspecs`` for the whole shape).

    ``send`` hands one message over; it must carry ``message.correlation_id`` to the service so
    that its events can be matched back, and it never raises for the service's answer: transient
    trouble is ``SendResult.deferred``. A provider may also have ``close()`` (release
    connections) and the capability attributes described in this module's docstring.
    """

    name: str

    def send(self, message: Message) -> SendResult: ...


@runtime_checkable
class WebhookProvider(Provider, Protocol):
    """A provider that also reports events through signed webhooks."""

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> str | None:
        """Check the signature of the raw bytes (never re-serialised JSON) before anything is
        parsed; return the signed one-time token when the provider declares
        ``signs_one_time_tokens``, else None.

        :raises NotConfigured: no verification key is set (403: fail closed).
        :raises SignatureError: a missing, forged or stale signature (401).
        """

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[ProviderEvent]:
        """The normalized events of a verified body; unknown event names become ``unknown``.

        :raises WebhookError: a malformed body (400 unless the error says otherwise): nothing of
            the batch is stored.
        """


@runtime_checkable
class SuppressionList(Protocol):
    """The service keeps a suppression list (addresses it refuses to email after a bounce, a
    spam report or an unsubscribe), and helpdesk may look at it and clear an address before a
    resend."""

    def suppression_lookup(self, address: str) -> Suppression | None:
        """The address's entry on the service's suppression lists, or None when it is on none.

        :raises ServiceError: the service could not be asked.
        """

    def suppression_remove(self, address: str) -> bool:
        """Take the address off the service's suppression lists; True when it was on one.

        :raises ServiceError: the service could not be asked or refused.
        """


@dataclass(frozen=True)
class Capabilities:
    """What a provider declared it can do (see the module docstring)."""

    webhooks: bool
    reports_deliveries: bool
    signs_one_time_tokens: bool
    suppression_list: bool

    def names(self) -> list[str]:
        """The capabilities it has, by name (for ``helpdesk providers``)."""
        return [name for name, value in vars(self).items() if value]


def capabilities(provider: Any) -> Capabilities:
    """A provider's declared capabilities; anything not declared is absent."""
    return Capabilities(
        webhooks=isinstance(provider, WebhookProvider),
        reports_deliveries=getattr(provider, "reports_deliveries", False) is True,
        signs_one_time_tokens=getattr(provider, "signs_one_time_tokens", False) is True,
        suppression_list=isinstance(provider, SuppressionList),
    )
