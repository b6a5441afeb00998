"""Creating credentials and their recipients: one place for the API, the web and the demo."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping, Sequence

from sqlalchemy import delete, func, select

from . import audit, ingest, publishing
from .models import Credential, CredentialState, Recipient, db
from .addresses import email_problem, set_email
from .intake import MAX_NAME, MAX_TITLE


class CredentialError(ValueError):
    """A credential that cannot be created as asked; nothing was written."""


def create_credential(title: str, recipients: Iterable[Mapping], *, state: str = "draft",
                      scheduled_at: datetime | None = None, send_email: bool = True) -> Credential:
    """Create a credential with its recipients; publish it at once when ``state`` is published.

    A recipient with a malformed address is kept and reported (``email_error``); it is never
    sent to. A name is stored as given: templates escape it and mail headers flatten it.
    """
    title = (title or "").strip()
    if not title:
        raise CredentialError("a credential needs a title")
    if len(title) > MAX_TITLE:
        raise CredentialError(f"the title is longer than {MAX_TITLE} characters")
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
    credential = Credential(title=title, state=CredentialState.draft,
                            scheduled_at=scheduled_at, send_email=bool(send_email))
    for item in recipients:
        name = str(item.get("name") or "")
        if len(name) > MAX_NAME:
            raise CredentialError(f"a name is longer than {MAX_NAME} characters")
        recipient = Recipient(name=name)
        set_email(recipient, item.get("email"))
        credential.recipients.append(recipient)
    db.session.add(credential)
    db.session.flush()
    count = len(credential.recipients)
    audit.record_credential("created", credential,
                            f"with {count} recipient{'s' if count != 1 else ''}")
    if state_value == CredentialState.published:
        publishing.publish(credential)
    else:
        credential.state = state_value
        db.session.flush()
        ingest.refresh_and_commit([r.id for r in credential.recipients])
    return credential


def edit_recipient(recipient: Recipient, name: str, email: str | None) -> list[str]:
    """Change a recipient's name and address (None or blank: no address), in any status, and
    record it. Returns what changed, in words. Raises ValueError, changing nothing, for a name
    that is too long or a malformed address: a person typing it can correct it now."""
    name = (name or "").strip()
    email = (email or "").strip() or None
    if len(name) > MAX_NAME:
        raise ValueError(f"the name is longer than {MAX_NAME} characters")
    new_email, _, problem = email_problem(email)
    if problem:
        raise ValueError(f"{email} cannot be used: {problem}")
    changes = []
    if name != recipient.name:
        changes.append(f"name “{recipient.name}” → “{name}”")
        recipient.name = name
    if new_email != recipient.email:
        changes.append(f"address {recipient.email or '(none)'} → {new_email or '(none)'}")
        set_email(recipient, new_email)
    if changes:
        audit.record_recipients("edited", [recipient], f"({'; '.join(changes)})")
        ingest.refresh_and_commit([recipient.id])
    return changes


def delete_recipients(recipients: Sequence[Recipient]) -> None:
    """Delete recipients with their deliveries and their events (the database cascades); the
    audit log keeps who each one was."""
    titles = {r.credential_id: r.credential.title for r in recipients}
    for recipient in recipients:
        audit.record_recipients("deleted", [recipient],
                                f"from “{titles[recipient.credential_id]}”")
    db.session.execute(delete(Recipient).where(Recipient.id.in_([r.id for r in recipients])),
                       execution_options={"synchronize_session": False})
    db.session.commit()
    db.session.expunge_all()


def delete_credential(credential: Credential) -> None:
    """Delete a credential with all its recipients (the database cascades to their deliveries
    and events); the audit log keeps what it was and how many it had."""
    count = db.session.scalar(select(func.count(Recipient.id))
                              .where(Recipient.credential_id == credential.id))
    audit.record_credential("deleted", credential,
                            f"with {count} recipient{'s' if count != 1 else ''}")
    db.session.execute(delete(Credential).where(Credential.id == credential.id),
                       execution_options={"synchronize_session": False})
    db.session.commit()
    db.session.expunge_all()
