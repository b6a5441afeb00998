"""The six email statuses: the one registry, and the pure function that computes a status.

Nothing else in helpdesk spells a status label or picks an icon: the Status column, the help
center, the API and the CLI all read ``STATUSES``. What to do is not the status's to say: the
quick tips follow the cause (``helpdesk.causes``).

For one delivery, the status is a *join* over its events on the order
``sending < not_sent < not_opened < bounced < opened``: each event maps to a level and the
delivery's status is the highest level seen. The join is commutative and idempotent, so events
that arrive late, twice or out of order always give the same answer, and a stored status can be
raised incrementally. ``not_sent`` sits just above ``sending`` because a send the provider refused
for good is final for that delivery; only a new delivery (a resend) moves on from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence


@dataclass(frozen=True)
class Status:
    key: str
    label: str
    icon: str  # the id of a symbol in the icon sprite; every icon has its own shape
    glyph: str  # the same shape as one character, for the terminal and plain text
    colour: str
    meaning: str


NOT_SENT = "not_sent"
NOT_PROVIDED = "not_provided"
SENDING = "sending"
NOT_OPENED = "not_opened"
BOUNCED = "bounced"
OPENED = "opened"

STATUSES: dict[str, Status] = {
    s.key: s
    for s in (
        Status(
            NOT_SENT, "Email is not sent", "icon-not-sent", "○", "#5b6472",
            "No email has gone out for this credential yet: it is a draft or scheduled, it was "
            "published without email, or the email service refused to send it (its reason is "
            "shown with the recipient).",
        ),
        Status(
            NOT_PROVIDED, "Email is not provided", "icon-not-provided", "⊘", "#6b5b95",
            "The recipient has no email address, so nothing can be sent.",
        ),
        Status(
            SENDING, "Sending", "icon-sending", "◔", "#1f6feb",
            "The email is queued, with us or with the email service, and has not been accepted "
            "by the recipient's mail server yet. This usually takes seconds to minutes; a "
            "temporary refusal (a deferral) keeps it here while it is retried.",
        ),
        Status(
            NOT_OPENED, "Email is not opened", "icon-not-opened", "✉", "#9a6700",
            "The recipient's mail server accepted the email, but no one has opened it yet. It "
            "may sit in a spam or promotions folder, or the recipient's mail app blocks images.",
        ),
        Status(
            BOUNCED, "Email is bounced", "icon-bounced", "✕", "#cf222e",
            "The recipient's mail server refused the email for good: the address does not "
            "exist, is misspelled, or the server blocks the sender. The server's reply, shown "
            "with the recipient, says which.",
        ),
        Status(
            OPENED, "Email is opened", "icon-opened", "✓", "#1a7f37",
            "The recipient opened the email or clicked a link in it (or a mail-privacy proxy or "
            "a link scanner did: the cause says which).",
        ),
    )
}

# The join order of a delivery's levels, lowest first.
LEVELS: tuple[str, ...] = (SENDING, NOT_SENT, NOT_OPENED, BOUNCED, OPENED)
RANK: dict[str, int] = {key: rank for rank, key in enumerate(LEVELS)}

# The normalized event vocabulary (every provider maps onto it) and the level each one raises a
# delivery to. Events without a level (deferrals, soft bounces, complaints, unsubscribes, unknown
# types) only show on the timeline: they never make a status ``bounced``.
EVENT_LEVELS: dict[str, str | None] = {
    "queued": SENDING,
    "refused": NOT_SENT,
    # Retried through SEND_RETRY_WINDOW_HOURS of temporary refusals, then given up: a soft
    # failure, so the address is not blamed.
    "expired": NOT_SENT,
    "accepted": NOT_OPENED,
    "delivered": NOT_OPENED,
    "bounced": BOUNCED,
    "rejected": BOUNCED,
    "opened": OPENED,
    "clicked": OPENED,
    "deferred": None,
    "complained": None,
    "unsubscribed": None,
    "resubscribed": None,
    "unknown": None,
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_LEVELS)


def event_level(event_type: str, *, reports_deliveries: bool = False) -> str | None:
    """The level an event raises its delivery to, or None for a timeline-only event.

    From a provider that reports deliveries (``helpdesk.contract.capabilities``), ``accepted``
    means its service queued the email, not that the recipient's server took it: the delivery
    stays ``sending`` until ``delivered``.
    """
    if event_type == "accepted" and reports_deliveries:
        return SENDING
    return EVENT_LEVELS.get(event_type)


def join(*levels: str | None) -> str:
    """The highest of some levels; ``sending`` when there is none."""
    return max((lv for lv in levels if lv is not None), key=RANK.__getitem__, default=SENDING)


def delivery_status(event_types: Iterable[str], *, reports_deliveries: bool = False) -> str:
    """The status of one delivery, from its events in any order and with any repeats (what
    ``helpdesk.ingest`` stores, one level per event, and joins)."""
    return join(*(event_level(t, reports_deliveries=reports_deliveries) for t in event_types))


class DeliveryOutcome(NamedTuple):
    """What ``email_status`` needs of one delivery: where it went and its joined level."""

    email: str
    status: str


def same_address(a: str | None, b: str | None) -> bool:
    return bool(a and b) and a.strip().lower() == b.strip().lower()


def email_status(
    *,
    email: str | None,
    published: bool,
    deliveries: Sequence[DeliveryOutcome],
) -> str:
    """A recipient's status, from its address, its credential's state and its deliveries (oldest
    first).

    The latest delivery decides, except that an open of any earlier delivery to the same address
    still counts: a nudge followed by an open of the first email is ``opened``, while a bounce at
    a misspelled address followed by a resend to the fixed one follows the new delivery.
    """
    if not email:
        return NOT_PROVIDED
    if not published or not deliveries:
        return NOT_SENT
    latest = deliveries[-1]
    if any(d.status == OPENED and same_address(d.email, latest.email) for d in deliveries):
        return OPENED
    return latest.status
