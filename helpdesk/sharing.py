"""Share links: a signed, expiring token naming one email domain, so that a company's IT can see
the statuses of its own people's emails without an account. The token carries only the domain;
the signature (the app's SECRET_KEY and a salt of its own) stops anyone from changing it, and its
timestamp lets the link expire."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "helpdesk.share-link"


class ShareLinkInvalid(Exception):
    """The token was not made by this installation, or was altered."""


class ShareLinkExpired(Exception):
    """The token is genuine but older than its lifetime."""


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def make_share_token(secret_key: str, domain: str) -> str:
    return _serializer(secret_key).dumps({"domain": domain.strip().lower()})


def read_share_token(secret_key: str, token: str, max_age_days: float) -> str:
    """The domain a token names. Raises ShareLinkExpired or ShareLinkInvalid."""
    try:
        payload = _serializer(secret_key).loads(token, max_age=max_age_days * 86400)
    except SignatureExpired:
        raise ShareLinkExpired("this link has expired") from None
    except BadSignature:
        raise ShareLinkInvalid("this link is not valid") from None
    domain = payload.get("domain") if isinstance(payload, dict) else None
    if not isinstance(domain, str) or not domain:
        raise ShareLinkInvalid("this link is not valid")
    return domain


def share_link_expiry(now: datetime, max_age_days: float) -> datetime:
    """When a link made now stops working."""
    return now.astimezone(timezone.utc) + timedelta(days=max_age_days)
