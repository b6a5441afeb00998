"""Creating credentials and their recipients: one place for the API, the web and the demo."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping

from . import ingest, publishing
from .models import Credential, CredentialState, Recipient, db
from .addresses import check_address, set_email


class CredentialError(ValueError):
    """A credential that cannot be created as asked; nothing was written."""


def likely_typos(recipients: Iterable[Mapping]) -> list[tuple[int, str, str]]:
    """(index, address as given, suggested address) for each recipient whose address looks
    mistyped: the question the API and the web form ask before a credential is created."""
    found = []
    for index, item in enumerate(recipients):
        address = item.get("email")
        if address and address.strip():
            suggestion = check_address(address).suggestion
            if suggestion:
                found.append((index, address, suggestion))
    return found


def create_credential(title: str, recipients: Iterable[Mapping], *, state: str = "draft",
                      scheduled_at: datetime | None = None, send_email: bool = True) -> Credential:
    """Create a credential with its recipients; publish it at once when ``state`` is published.

    A recipient with a malformed address is kept and reported (``email_error``); it is never
    sent to. A name is stored as given: templates escape it and mail headers flatten it.
    """
    title = (title or "").strip()
    if not title:
        raise CredentialError("a credential needs a title")
    try:
        state_value = CredentialState(state)
    except ValueError:
        raise CredentialError(f"state must be draft, scheduled or published, not {state!r}") \
            from None
    if state_value == CredentialState.scheduled:
        if scheduled_at is None:
            raise CredentialError("a scheduled credential needs scheduled_at")
        if scheduled_at.tzinfo is None:
            raise CredentialError("scheduled_at needs a time zone (e.g. 2026-12-01T09:00:00Z)")
    credential = Credential(title=title[:300], state=CredentialState.draft,
                            scheduled_at=scheduled_at, send_email=bool(send_email))
    for item in recipients:
        recipient = Recipient(name=str(item.get("name") or "")[:300])
        set_email(recipient, item.get("email"))
        credential.recipients.append(recipient)
    db.session.add(credential)
    if state_value == CredentialState.published:
        publishing.publish(credential)
    else:
        credential.state = state_value
        db.session.flush()
        ingest.refresh_and_commit([r.id for r in credential.recipients])
    return credential
