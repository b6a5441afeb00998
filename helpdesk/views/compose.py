"""Creating a credential from the web: a title, a state, and recipients typed one per line.

Reading the form is pure (``parse_recipient_lines``, ``scheduled_moment``); every line then
gets its ``intake`` verdict, the same the CSV import and the API give, all shown at once; a
list with questions (typos, malformed or repeated addresses) is reviewed before
``create_credential`` runs.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, select
from werkzeug.exceptions import RequestEntityTooLarge

from .. import intake, queries, times
from ..addresses import domain_history
from ..auth import csrf
from ..bidi import sentence
from ..credentials import CredentialError, create_credential
from ..intake import MAX_EMAIL, MAX_NAME, MAX_TITLE, STATES
from ..models import Credential, Delivery, Recipient, db

bp = Blueprint("compose", __name__)

MAX_LINES = 10_000  # bigger lists go through the CSV import
# The largest list at its longest lines, plus the review fields.
FORM_LIMIT = MAX_LINES * (MAX_NAME + MAX_EMAIL + 32) + 64 * 1024
UTC = times.UTC

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


def parse_recipient_lines(text: str) -> list[intake.Entry | intake.Verdict]:
    """Every line of the textarea as an entry to judge, or the verdict of a line that cannot
    be read, with its reason."""
    lines = textarea_lines(text)
    if len(lines) > MAX_LINES:
        raise FormError(f"The list has {len(lines):,} lines; at most {MAX_LINES:,} can be "
                        "typed here. Import bigger lists from a CSV file.")
    parsed = [parse_line(number, raw) for number, raw in enumerate(lines, 1)]
    return [intake.Entry(p.line, p.name, p.email) if isinstance(p, RecipientLine)
            else intake.unreadable(p.line, p.reason) for p in parsed if p is not None]


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
    if not times.is_zone(zone_name):
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

def _form(code: int = 200, errors=(), verdicts=None, values=None, digest: str = ""):
    """The form, filled with what the user sent, and every line's verdict once there are some."""
    if values is None:
        values = request.form if request.method == "POST" else {}
    review = [v for v in verdicts or () if v.kind in intake.TO_REVIEW]
    return render_template(
        "credential_new.html", values=values, errors=list(errors), verdicts=verdicts or [],
        review=review, counts=intake.counts(verdicts or ()), intake=intake, digest=digest,
        zones=times.time_zones(), viewer_zone=current_user.time_zone or UTC,
        max_lines=MAX_LINES), code


def _digest(text: str) -> str:
    """Names the list a review was shown for: a list edited since is reviewed again."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    text = form.get("recipients", "")
    try:
        entries = parse_recipient_lines(text)
    except FormError as error:
        return _form(400, [*errors, str(error)])
    known, unknown = domain_history()
    verdicts = intake.judge(entries, known, unknown_domains=unknown)
    digest = _digest(text)
    if errors or any(v.kind == intake.UNREADABLE for v in verdicts):
        return _form(400, errors, verdicts, digest=digest)
    if intake.needs_review(verdicts) and form.get("reviewed") != digest:
        return _form(422, verdicts=verdicts, digest=digest)
    use = set() if form.get("action") == "keep" else \
        queries.whole_numbers(form.getlist("use_suggestion"))
    verdicts = intake.apply_choices(verdicts, use, known, unknown_domains=unknown)
    try:
        credential = create_credential(
            title, intake.to_create(verdicts), state=state,
            scheduled_at=scheduled_at, send_email=form.get("send_email") == "on")
    except CredentialError as error:
        db.session.rollback()
        return _form(400, [f"Nothing was created: {error}."])
    flash(_created_message(credential, verdicts), "success")
    return redirect(url_for("pages.credential", credential_id=credential.id), 303)


def _created_message(credential: Credential, verdicts: list[intake.Verdict]) -> Markup:
    recipients = sum(1 for v in verdicts if v.kind in intake.CREATED)
    queued = db.session.scalar(select(func.count(Delivery.id)).join(Recipient).where(
        Recipient.credential_id == credential.id))
    unusable = db.session.scalar(select(func.count(Recipient.id)).where(
        Recipient.credential_id == credential.id,
        (Recipient.email.is_(None)) | (Recipient.email_error.is_not(None))))
    message = sentence(f"Created “{{}}” with {recipients} "
                       f"recipient{'' if recipients == 1 else 's'}; {queued} "
                       f"email{'' if queued == 1 else 's'} queued.", credential.title)
    if unusable:
        message += (f" {unusable} recipient{' has' if unusable == 1 else 's have'} no usable "
                    "address and will not be emailed.")
    duplicates = [v.line for v in verdicts if v.kind == intake.DUPLICATE]
    if duplicates:
        message += (f" Left out {len(duplicates)} repeated address"
                    f"{'es' if len(duplicates) != 1 else ''} (line"
                    f"{'s' if len(duplicates) != 1 else ''} {', '.join(map(str, duplicates))}).")
    if credential.state.value == "scheduled":
        when = times.exact(credential.scheduled_at, times.zone(current_user.time_zone))
        message += f" It will be published on {when}."
    elif credential.state.value == "draft":
        message += " It is a draft: nothing is sent."
    return message
