"""The JSON API under ``/api/v1``: Bearer tokens (``helpdesk tokens create``); errors are
``{"error": "..."}`` with the right 4xx code. ``/openapi.json`` describes every route
(``helpdesk.openapi``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from . import intake, publishing, queries, untrusted_json
from .addresses import check_address, domain_history
from .auth import public
from .causes import CAUSES, Tip, status_tips
from .credentials import CredentialError, create_credential
from .input_schema import InvalidInput, parse_timestamp
from .models import Credential, Delivery, Recipient, db
from .openapi import BODIES, MAX_PER_PAGE
from .queries import MAX_ID
from .status import STATUSES
from .validation import EmailCheck

bp = Blueprint("api", __name__, url_prefix="/api/v1")

RECIPIENT_FILTERS = {"status", "domain", "q", "credential_id", "page", "per_page"}


# --- errors: always JSON ----------------------------------------------------------------------

def _error(message: str, status: int, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    # Unknown paths and methods under /api/ match no route of ours: helpdesk.views.errors
    # answers those in JSON too.
    return _error(error.description or error.name, error.code or 500)


# --- reading request bodies -------------------------------------------------------------------

def _body(schema: str, empty_is_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object, checked against its schema in ``/openapi.json`` and with the
    schema's defaults filled in; anything else is answered 4xx with what is wrong."""
    raw = request.get_data(cache=True)
    if empty_is_ok and not raw:
        return BODIES.read(schema, {})
    if not request.is_json:
        abort(415, "send a JSON body with Content-Type: application/json")
    try:
        body = untrusted_json.loads(raw)
    except untrusted_json.JSONInputError as error:
        abort(400, str(error))
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    try:
        return BODIES.read(schema, body)
    except InvalidInput as error:
        abort(400, str(error))


# --- shapes -----------------------------------------------------------------------------------

def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def recipient_json(recipient: Recipient) -> dict[str, Any]:
    return {"id": recipient.id, "credential_id": recipient.credential_id,
            "name": recipient.name, "email": recipient.email,
            "email_error": recipient.email_error, "status": recipient.status,
            "status_label": STATUSES[recipient.status].label,
            "cause": recipient.cause, "cause_label": CAUSES[recipient.cause].label,
            "evidence": recipient.evidence, "updated_at": _iso(recipient.updated_at)}


def delivery_json(sent: Delivery) -> dict[str, Any]:
    return {"id": sent.id, "email": sent.email, "provider": sent.provider, "kind": sent.kind,
            "status": sent.status, "created_at": _iso(sent.created_at),
            "events": [{"type": e.type, "occurred_at": _iso(e.occurred_at),
                        "reason": e.reason or e.mta_response} for e in sent.events]}


def credential_json(credential: Credential) -> dict[str, Any]:
    return {"id": credential.id, "title": credential.title, "state": credential.state.value,
            "scheduled_at": _iso(credential.scheduled_at), "send_email": credential.send_email,
            "recipients": [recipient_json(r) for r in credential.recipients]}


def email_check_json(check: EmailCheck) -> dict[str, Any]:
    return {"input": check.input, "valid": check.valid, "normalized": check.normalized,
            "error": check.error, "suggestion": check.suggestion,
            "confidence": check.confidence}


def _check(address: str) -> EmailCheck:
    return check_address(address,
                         check_deliverability=bool(current_app.config["CHECK_DELIVERABILITY"]))


# --- routes -----------------------------------------------------------------------------------

@bp.route("/statuses")
@public
def statuses():
    return jsonify([{"key": s.key, "label": s.label, "icon": s.icon, "colour": s.colour,
                     "meaning": s.meaning,
                     "tips": [_tip_json(t) for t in status_tips(s.key)]}
                    for s in STATUSES.values()])


@bp.route("/causes")
@public
def causes():
    return jsonify([{"key": c.key, "label": c.label, "explanation": c.explanation,
                     "actions": [_tip_json(t) for t in c.actions],
                     "resend_helps": c.resend_helps}
                    for c in CAUSES.values()])


def _tip_json(tip: Tip) -> dict[str, Any]:
    return {"title": tip.title, "text": tip.text, "action": tip.action}


@bp.route("/credentials", methods=["POST"])
def create():
    """Create a credential. Its recipients get the verdicts the form and the CSV import give;
    likely typos and repeated addresses are answered 422 before anything is written or sent,
    unless the request says ``allow_typos`` (typos kept as given, repeats left out and listed
    under ``left_out``). A malformed address is kept and reported, never sent to."""
    body = _body("CredentialInput")
    scheduled_at = body.get("scheduled_at")
    arguments = {"title": body["title"], "state": body["state"],
                 "scheduled_at": parse_timestamp(scheduled_at) if scheduled_at else None,
                 "send_email": body["send_email"]}
    known, unknown = domain_history()
    verdicts = intake.judge(intake.entries_from(body["recipients"]), known, place=_recipient,
                            unknown_domains=unknown)
    questions = [v for v in verdicts if v.kind in (intake.TYPO, intake.DUPLICATE)]
    if questions and not body["allow_typos"]:
        typos = [{"index": v.line, "email": v.email, "suggestion": v.suggestion}
                 for v in questions if v.kind == intake.TYPO]
        return _error(f"{len(questions)} recipient(s) to review ({len(typos)} address(es) look "
                      "mistyped, the others repeat an earlier one); fix them, or send "
                      "\"allow_typos\": true to keep the typos as they are and leave the "
                      "repeats out", 422, typos=typos, rows=[verdict_json(v) for v in questions])
    verdicts = intake.apply_choices(verdicts, (), known, place=_recipient,
                                    unknown_domains=unknown)
    try:
        credential = create_credential(**{**arguments,
                                           "recipients": intake.to_create(verdicts)})
    except CredentialError as error:
        db.session.rollback()
        abort(400, str(error))
    response = jsonify({**credential_json(credential), "left_out": [
        verdict_json(v) for v in verdicts if v.kind not in intake.CREATED]})
    response.status_code = 201
    response.headers["Location"] = url_for(".credential", credential_id=credential.id)
    return response


def _recipient(index: int) -> str:
    """Where a recipient is in the body, as the error messages name it (``recipients[3]``)."""
    return f"recipients[{index}]"


def verdict_json(verdict: intake.Verdict) -> dict:
    return {"index": verdict.line, "verdict": verdict.kind, "email": verdict.email,
            "reason": verdict.reason, "suggestion": verdict.suggestion}


def _get(model, object_id: int, what: str):
    found = db.session.get(model, object_id)
    if found is None:
        abort(404, f"no {what} {object_id}")
    return found


@bp.route("/credentials/<int:credential_id>")
def credential(credential_id: int):
    return jsonify(credential_json(_get(Credential, credential_id, "credential")))


@bp.route("/credentials/<int:credential_id>/publish", methods=["POST"])
def publish(credential_id: int):
    """Publish now; when the credential sends email, its recipients' emails are queued."""
    found = _get(Credential, credential_id, "credential")
    publishing.publish(found)
    return jsonify(credential_json(found)), 202


@bp.route("/credentials/<int:credential_id>/resend", methods=["POST"])
def resend_credential(credential_id: int):
    body = _body("ResendStatusInput")
    _get(Credential, credential_id, "credential")
    return _bulk_json(publishing.resend_in_status(
        credential_id, body["status"], include_all=body["include_all"]))


@bp.route("/domains/<domain>/resend", methods=["POST"])
def resend_domain(domain: str):
    """Resend to the bounced recipients at a domain (after its IT allowlisted the sender)."""
    body = _body("BulkResendInput", empty_is_ok=True)
    return _bulk_json(publishing.resend_bounced_at_domain(
        domain, include_all=body["include_all"]))


def _bulk_json(result: publishing.BulkResend) -> tuple[Response, int]:
    return jsonify(queued=result.queued, skipped=result.skipped), 202


@bp.route("/recipients")
def recipients():
    """A page of recipients matching the filters, the total, and the count in each status for
    the same filters without the status one (two queries: the page and one GROUP BY)."""
    args = request.args
    unknown = sorted(set(args) - RECIPIENT_FILTERS)
    if unknown:  # a misspelt filter would otherwise quietly match everyone
        abort(400, f"unknown parameter {unknown[0]!r}; expected: "
                   f"{', '.join(sorted(RECIPIENT_FILTERS))}")
    listed = queries.ListArgs.from_args(args)
    per_page = queries.whole_number(args.get("per_page") or str(current_app.config["PAGE_SIZE"]),
                                    "per_page", MAX_PER_PAGE)
    status = args.get("status")
    if status is not None and status not in STATUSES:
        abort(400, f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    credential_id = args.get("credential_id")
    domain = args.get("domain", "").strip().lower()
    f = queries.RecipientFilter(
        credential_id=queries.whole_number(credential_id, "credential_id", MAX_ID)
        if credential_id is not None else None,
        domain=domain or None, status=status, q=listed.q, sort="id", page=listed.page)
    page, counts = queries.recipient_page(db.session, f, per_page)
    return jsonify(items=[recipient_json(r) for r in page.items], total=page.total,
                   counts=counts, page=page.number, per_page=per_page)


@bp.route("/recipients/<int:recipient_id>")
def recipient(recipient_id: int):
    found = db.session.scalar(select(Recipient).where(Recipient.id == recipient_id).options(
        selectinload(Recipient.deliveries).selectinload(Delivery.events)))
    if found is None:
        abort(404, f"no recipient {recipient_id}")
    return jsonify({**recipient_json(found),
                    "deliveries": [delivery_json(d) for d in found.deliveries]})


@bp.route("/recipients/<int:recipient_id>/resend", methods=["POST"])
def resend(recipient_id: int):
    """Send again, optionally to a corrected address; the earlier deliveries stay."""
    body = _body("ResendInput", empty_is_ok=True)
    found = _get(Recipient, recipient_id, "recipient")
    try:
        publishing.resend(found, body.get("email"), confirmed=body["confirm"])
    except publishing.NeedsConfirmation as question:
        db.session.rollback()
        return _error(f"not sent: {question}; send {{\"confirm\": true}} to send anyway", 409,
                      cause=question.cause)
    except ValueError as error:
        db.session.rollback()
        abort(400, f"not sent: {error}")
    db.session.refresh(found)
    return jsonify(recipient_json(found)), 202


@bp.route("/email/check", methods=["POST"])
def email_check():
    """Check one address (``{"email": ...}``) or several (``{"emails": [...]}``, a list back)."""
    body = _body("EmailCheckInput")
    if "email" in body:
        return jsonify(email_check_json(_check(body["email"])))
    return jsonify([email_check_json(_check(address)) for address in body["emails"]])
