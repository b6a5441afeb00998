"""Share links: a random token naming one email domain, so that a company's IT can see the
statuses of its own people's emails without an account. Each link is a record (``ShareLink``):
who made it, until when it works, whether it was revoked, and every view. Only organisational
domains are shared: a public mailbox provider's (gmail.com: everyone's) or a typo's never."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from . import audit
from .known_domains import MAILBOX_PROVIDERS
from .models import ShareLink, ShareView, db, utcnow

PUBLIC_MAILBOX_DOMAINS = frozenset(d for provider in MAILBOX_PROVIDERS for d in provider)


class ShareLinkRefused(ValueError):
    """This domain's statuses cannot be shared; the message says why."""


class ShareLinkInvalid(Exception):
    """No link has this token (mistyped, cut short or made up)."""


class ShareLinkExpired(Exception):
    """The link existed but has expired or was revoked."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(domain: str, days: float, typo_of: str | None,
                now: datetime | None = None) -> tuple[ShareLink, str]:
    """A new link for ``domain`` and its token (shown once). Raises ShareLinkRefused for a public
    mailbox provider's domain or a typo (``typo_of``: the domain it is a slip for)."""
    domain = domain.strip().lower()
    if domain in PUBLIC_MAILBOX_DOMAINS:
        raise ShareLinkRefused(
            f"{domain} is a public mailbox provider: its addresses belong to unrelated people "
            "and no IT department answers for them, so its statuses are not shared")
    if typo_of:
        raise ShareLinkRefused(
            f"{domain} looks like a typo for {typo_of}: no company's IT reads mail there, so "
            "there is no one to share its statuses with. Fix the addresses instead")
    now = now or utcnow()
    token = secrets.token_urlsafe(24)
    link = ShareLink(domain=domain, token_hash=token_hash(token), created_by=audit.current_actor(),
                     created_at=now, expires_at=now + timedelta(days=days))
    db.session.add(link)
    db.session.flush()
    audit.record("shared", f"the statuses at {domain} (link #{link.id}, until "
                           f"{link.expires_at:%d %B %Y})")
    db.session.commit()
    return link, token


def open_link(token: str, user_agent: str | None, now: datetime | None = None) -> ShareLink:
    """The link a token opens, its view counted and logged. Raises ShareLinkInvalid or
    ShareLinkExpired."""
    now = now or utcnow()
    link = db.session.scalar(select(ShareLink).where(ShareLink.token_hash == token_hash(token)))
    if link is None:
        raise ShareLinkInvalid("this link is not valid")
    if link.revoked_at is not None or link.expires_at <= now:
        raise ShareLinkExpired("this link no longer works")
    link.views += 1
    link.last_viewed_at = now
    db.session.add(ShareView(link=link, viewed_at=now, user_agent=(user_agent or "")[:300]))
    db.session.commit()
    return link


def revoke(link: ShareLink, now: datetime | None = None) -> None:
    if link.revoked_at is None:
        link.revoked_at = now or utcnow()
        link.revoked_by = audit.current_actor()
        audit.record("revoked", f"the share link #{link.id} for {link.domain}")
        db.session.commit()


def links_for(domain: str) -> list[ShareLink]:
    return list(db.session.scalars(select(ShareLink).where(ShareLink.domain == domain)
                                   .order_by(ShareLink.id.desc())))
