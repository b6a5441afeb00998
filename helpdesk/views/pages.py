"""The desk's pages: dashboard, credentials, recipients, and the embedded sink's outbox."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from .. import delivery
from ..models import Credential, Delivery, DeliveryEvent, Recipient, db
from ..status import STATUSES

bp = Blueprint("pages", __name__)


def status_counts(*where) -> dict[str, int]:
    rows = db.session.execute(select(Recipient.status, func.count()).where(*where)
                              .group_by(Recipient.status))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(dict(rows.all()))
    return counts


@bp.route("/")
def dashboard():
    return render_template("dashboard.html", counts=status_counts())


@bp.route("/credentials")
def credentials():
    rows = db.session.execute(select(Credential).order_by(Credential.id.desc())).scalars().all()
    return render_template("credentials.html", credentials=rows)


@bp.route("/credentials/<int:credential_id>")
def credential(credential_id: int):
    cred = db.get_or_404(Credential, credential_id)
    status = request.args.get("status")
    query = select(Recipient).where(Recipient.credential_id == cred.id)
    if status in STATUSES:
        query = query.where(Recipient.status == status)
    recipients = db.session.scalars(query.order_by(Recipient.id)).all()
    return render_template("credential.html", credential=cred, recipients=recipients,
                           counts=status_counts(Recipient.credential_id == cred.id),
                           current_status=status)


@bp.route("/recipients/<int:recipient_id>")
def recipient(recipient_id: int):
    rec = db.get_or_404(Recipient, recipient_id)
    return render_template("recipient.html", recipient=rec)


@bp.route("/recipients/<int:recipient_id>/resend", methods=["POST"])
def resend(recipient_id: int):
    rec = db.get_or_404(Recipient, recipient_id)
    try:
        delivery.resend(rec, request.form.get("email") or None)
    except ValueError as error:
        flash(f"Not sent: {error}", "error")
    else:
        flash(f"Sent again to {rec.email}.", "success")
    return redirect(url_for("pages.recipient", recipient_id=rec.id))


@bp.route("/outbox")
def outbox():
    sink = current_app.extensions.get("helpdesk_sink")
    if sink is None:
        abort(404, "The outbox shows what the embedded SMTP sink caught; it is not running.")
    return render_template("outbox.html", messages=list(reversed(sink.messages)))


@bp.route("/outbox/<int:index>")
def outbox_message(index: int):
    sink = current_app.extensions.get("helpdesk_sink")
    if sink is None or not 0 <= index < len(sink.messages):
        abort(404)
    return render_template("outbox_message.html", message=sink.messages[index], index=index)
