"""Creating a credential from the web: a title, a state, and recipients typed one per line.

Reading the form is pure (``parse_recipient_lines``, ``scheduled_moment``); the view checks
everything before writing anything, then asks, like the API, about likely typos and about
malformed addresses before ``create_credential`` runs.
"""
from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.exceptions import RequestEntityTooLarge

from ..auth import csrf
from ..credentials import CredentialError, create_credential, likely_typos
from ..models import Credential, Delivery, Recipient, db
from ..addresses import email_problem

bp = Blueprint("compose", __name__)

MAX_LINES = 10_000  # bigger lists go through the CSV import
MAX_TITLE = 300  # the model's column sizes: longer input is refused, never cut short
MAX_NAME = 300
MAX_EMAIL = 320
# The largest list at its longest lines, plus the review fields that echo its addresses.
FORM_LIMIT = MAX_LINES * (MAX_NAME + 2 * MAX_EMAIL + 16) + 64 * 1024
STATES = ("draft", "published", "scheduled")
UTC = "UTC"

_ANGLE = re.compile(r"(?P<name>.*)<(?P<email>[^<>]*)>")
_BRACKETED_ADDRESS = re.compile(r"<[^<>]*@[^<>]*>")
_QUOTES = ('"', "'")


# --- reading the form (pure) -------------------------------------------------------------------

@dataclass(frozen=True)
class RecipientLine:
    line: int  # in the textarea, counting from 1
    name: str
    email: str | None  # as typed, None for a recipient without an address


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.reason}"


class FormError(ValueError):
    """A field of the form cannot be used; the message says why."""


def clean_text(text: str) -> str:
    """One line of plain text: control characters (NUL, tabs, vertical tabs, Unicode line
    separators) become spaces, runs of spaces one."""
    return " ".join("".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                            for c in text).split())


def textarea_lines(text: str) -> list[str]:
    """The lines as the textarea shows them (ended by CR LF, LF or CR), trailing empty ones
    dropped, so that line numbers match what the user sees."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip().split("\n") \
        if text.strip() else []


def _unquote(name: str) -> str:
    name = name.strip().rstrip(",;").strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in _QUOTES:
        name = name[1:-1].strip()
    return name


def parse_line(number: int, raw: str) -> RecipientLine | LineError | None:
    """One line: ``Name <email>``, ``Name, email``, ``Name; email``, a bare ``email``, or a
    name alone (a recipient without an address). None for an empty line."""
    text = clean_text(raw).rstrip(",;").strip()
    if not text:
        return None
    angle = _ANGLE.fullmatch(text)
    if angle and ("@" in angle["email"] or not angle["email"].strip()):
        name, email = _unquote(angle["name"]), angle["email"].strip()
        if not email:
            return LineError(number, "nothing between < and >: leave the <> out for a "
                                     "recipient without an address")
        if _BRACKETED_ADDRESS.search(name):
            return LineError(number, "more than one address: put one recipient per line")
    elif "," in text or ";" in text:
        cut = max(text.rfind(","), text.rfind(";"))
        name, email = text[:cut], text[cut + 1:].strip()
        if "@" not in email:  # "Lee, Ann": a name with a comma, without an address
            name, email = text, ""
        name = _unquote(name)
        if "@" in name:
            return LineError(number, "more than one address: put one recipient per line")
    elif "@" in text:
        if " " in text:
            return LineError(number, "put a comma between the name and the address "
                                     "(Ann Lee, ann@example.com) or write Ann Lee "
                                     "<ann@example.com>")
        name, email = "", text
    else:
        name, email = _unquote(text), ""
    if len(name) > MAX_NAME:
        return LineError(number, f"the name is longer than {MAX_NAME} characters")
    if len(email) > MAX_EMAIL:
        return LineError(number, f"the address is longer than {MAX_EMAIL} characters")
    return RecipientLine(number, name, email or None)


def parse_recipient_lines(text: str) -> tuple[list[RecipientLine], list[LineError]]:
    """Every recipient of the textarea, or every line that cannot be used with its reason.
    An address typed twice is an error on its second line."""
    lines = textarea_lines(text)
    if len(lines) > MAX_LINES:
        raise FormError(f"The list has {len(lines):,} lines; at most {MAX_LINES:,} can be "
                        "typed here. Import bigger lists from a CSV file.")
    parsed = [parse_line(number, raw) for number, raw in enumerate(lines, 1)]
    recipients = [p for p in parsed if isinstance(p, RecipientLine)]
    errors = [p for p in parsed if isinstance(p, LineError)] + duplicate_errors(recipients)
    return recipients, sorted(errors, key=lambda error: error.line)


def duplicate_errors(recipients: list[RecipientLine], prefix: str = "") -> list[LineError]:
    """An error on each line whose address (in any case) an earlier line has."""
    first_line_of: dict[str, int] = {}
    errors = []
    for recipient in recipients:
        if recipient.email:
            first = first_line_of.setdefault(recipient.email.lower(), recipient.line)
            if first != recipient.line:
                errors.append(LineError(recipient.line, f"{prefix}{recipient.email} is "
                                                        f"already on line {first}"))
    return errors


@functools.cache
def time_zones() -> tuple[str, ...]:
    """UTC first, then every zone the system knows."""
    return (UTC, *sorted(zoneinfo.available_timezones() - {UTC}))


def scheduled_moment(local: str, zone_name: str, now: datetime) -> datetime:
    """The aware moment a ``datetime-local`` value means in the named zone; it must exist
    there and be after ``now``."""
    local = local.strip()
    if not local:
        raise FormError("Choose the date and time to publish a scheduled credential.")
    try:
        naive = datetime.fromisoformat(local)
    except ValueError:
        raise FormError(f"The date and time must look like 2026-12-01T09:00, not {local!r}.") \
            from None
    if naive.tzinfo is not None:
        raise FormError("Give the date and time without an offset and choose the time zone.")
    if zone_name not in time_zones():
        raise FormError(f"Unknown time zone {zone_name!r}.")
    zone = zoneinfo.ZoneInfo(zone_name)
    moment = naive.replace(tzinfo=zone)
    if moment.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != naive:
        raise FormError(f"{naive:%Y-%m-%d %H:%M} does not exist in {zone_name}: the clocks "
                        "skip it. Choose another time.")
    if moment <= now:
        raise FormError(f"{naive:%Y-%m-%d %H:%M} {zone_name} is in the past: choose "
                        "\"Publish now\" or a later time.")
    return moment.astimezone(timezone.utc)


# --- the view ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Typo:
    recipient: RecipientLine
    suggestion: str
    problem: str | None  # why the address as typed cannot be used, if it cannot
    use_suggestion: bool  # the box as the user left it (checked when first shown)


@dataclass(frozen=True)
class Review:
    """Likely typos and malformed addresses: shown before anything is created, and again as
    long as one of them was not shown yet."""

    typos: list[Typo]
    invalid: list[tuple[RecipientLine, str]]  # (line, why the address cannot be used)
    needed: bool


def _form(code: int = 200, errors=(), line_errors=(), review: Review | None = None,
          values=None):
    """The form, filled with what the user sent."""
    if values is None:
        values = request.form if request.method == "POST" else {}
    return render_template(
        "credential_new.html", values=values, errors=list(errors), line_errors=list(line_errors),
        review=review, zones=time_zones(), max_lines=MAX_LINES), code


def _review(recipients: list[RecipientLine]) -> Review:
    """The typos and malformed addresses in the list, and whether the user has seen them all
    (the previous review sent back the addresses it showed)."""
    form = request.form
    shown = set(form.getlist("flagged"))
    accepted = set() if form.get("action") == "keep" else set(form.getlist("use_suggestion"))
    acknowledged = set(form.getlist("acknowledged_invalid"))
    typos = [Typo(recipients[index], suggestion, email_problem(email)[2],
                  email in accepted if email in shown else True)
             for index, email, suggestion in likely_typos({"email": r.email} for r in recipients)]
    typo_lines = {typo.recipient.line for typo in typos}
    invalid = [(r, problem) for r in recipients
               if r.email and r.line not in typo_lines and (problem := email_problem(r.email)[2])]
    needed = (any(typo.recipient.email not in shown for typo in typos)
              or any(r.email not in acknowledged for r, _ in invalid))
    return Review(typos, invalid, needed)


def _with_suggestions(recipients: list[RecipientLine], review: Review) -> list[RecipientLine]:
    chosen = {typo.recipient.line: typo.suggestion for typo in review.typos if typo.use_suggestion}
    return [replace(r, email=chosen[r.line]) if r.line in chosen else r for r in recipients]


@bp.route("/credentials/new", methods=["GET", "POST"])
@csrf.exempt  # checked below, once the size limit is raised for a long list
def new():
    if request.method == "GET":
        return _form()
    try:
        request.max_content_length = request.max_form_memory_size = FORM_LIMIT
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        form = request.form
    except RequestEntityTooLarge:
        return _form(413, ["The form is too large: import a list this long from a CSV file."],
                     values={})
    errors = []
    title = clean_text(form.get("title", ""))
    if not title:
        errors.append("Give the credential a title.")
    elif len(title) > MAX_TITLE:
        errors.append(f"The title is longer than {MAX_TITLE} characters.")
    state = form.get("state", "draft")
    scheduled_at = None
    if state not in STATES:
        errors.append("Choose draft, publish now or schedule.")
    elif state == "scheduled":
        try:
            scheduled_at = scheduled_moment(form.get("scheduled_at", ""),
                                            form.get("timezone", UTC), datetime.now(timezone.utc))
        except FormError as error:
            errors.append(str(error))
    try:
        recipients, line_errors = parse_recipient_lines(form.get("recipients", ""))
    except FormError as error:
        return _form(400, [*errors, str(error)])
    if errors or line_errors:
        return _form(400, errors, line_errors)
    review = _review(recipients)
    if review.needed:
        return _form(422, review=review)
    recipients = _with_suggestions(recipients, review)
    line_errors = duplicate_errors(recipients, "with the suggestion, ")
    if line_errors:
        return _form(400, line_errors=line_errors, review=review)
    try:
        credential = create_credential(
            title, [{"name": r.name, "email": r.email} for r in recipients], state=state,
            scheduled_at=scheduled_at, send_email=form.get("send_email") == "on")
    except CredentialError as error:
        db.session.rollback()
        return _form(400, [f"Nothing was created: {error}."])
    flash(_created_message(credential, len(recipients)), "success")
    return redirect(url_for("pages.credential", credential_id=credential.id), 303)


def _created_message(credential: Credential, recipients: int) -> str:
    queued = db.session.scalar(select(func.count(Delivery.id)).join(Recipient).where(
        Recipient.credential_id == credential.id))
    unusable = db.session.scalar(select(func.count(Recipient.id)).where(
        Recipient.credential_id == credential.id,
        (Recipient.email.is_(None)) | (Recipient.email_error.is_not(None))))
    message = (f"Created “{credential.title}” with {recipients} "
               f"recipient{'' if recipients == 1 else 's'}; {queued} "
               f"email{'' if queued == 1 else 's'} queued.")
    if unusable:
        message += (f" {unusable} recipient{' has' if unusable == 1 else 's have'} no usable "
                    "address and will not be emailed.")
    if credential.state.value == "scheduled":
        message += f" It will be published on {credential.scheduled_at:%Y-%m-%d %H:%M} UTC."
    elif credential.state.value == "draft":
        message += " It is a draft: nothing is sent."
    return message
