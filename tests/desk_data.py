"""Demo-like data for the page tests, made the way users make it: credentials created through
``create_credential`` and sent for real to the SMTP sink, which refuses gmial.com and hotmial.com
(so those bounce for real)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from helpdesk.credentials import create_credential
from helpdesk.models import Credential, Recipient, db

HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "<script>alert('x')</script>"


@dataclass
class Desk:
    course: Credential  # published and sent
    draft: Credential  # not sent yet

    def recipient(self, name: str) -> Recipient:
        return db.session.scalar(select(Recipient).where(Recipient.name == name))


def build_desk() -> Desk:
    course = create_credential("Data Science Certificate", [
        {"name": "Ada Lovelace", "email": "ada@example.com"},
        {"name": "Bob Typo", "email": "bob@gmial.com"},
        {"name": "Dan Blocked", "email": "dan@gmial.com"},
        {"name": "Eve Blocked", "email": "eve@gmial.com"},
        {"name": "Hal Hotmial", "email": "hal@hotmial.com"},
        {"name": "Carol Noaddress", "email": None},
        {"name": HOSTILE_IMG, "email": "img@example.com"},
        {"name": HOSTILE_SCRIPT, "email": "script@example.com"},
        {"name": "=HYPERLINK(\"http://evil.example\")", "email": "formula@example.com"},
    ], state="published")
    draft = create_credential("Leadership Badge", [
        {"name": "Frank Draft", "email": "frank@acme.example"},
        {"name": "Grace Draft", "email": "grace@acme.example"},
    ], state="draft")
    return Desk(course, draft)


def page(response) -> str:
    """The HTML of a page that must have answered 200."""
    assert response.status_code == 200, response.data[:500]
    return response.get_data(as_text=True)
