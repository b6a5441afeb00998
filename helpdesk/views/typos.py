"""The "fix typos" page: bounced recipients whose address has a likely correction."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .. import queries, typos
from ..bidi import sentence
from ..models import Recipient, db

bp = Blueprint("typos", __name__)


@bp.route("/typos")
def index():
    page = typos.typo_page(queries.ListArgs.from_args(request.args).page)
    return render_template("typos.html", page=page)


@bp.route("/typos/<int:recipient_id>/accept", methods=["POST"])
def accept(recipient_id: int):
    recipient = db.get_or_404(Recipient, recipient_id)
    suggestion = request.form.get("suggestion", "")
    try:
        typos.accept(recipient, suggestion)
    except ValueError as error:
        flash(sentence("Not sent: {}.", error), "error")
    else:
        flash(sentence("Sent again to {}.", recipient.email), "success")
    return redirect(url_for("typos.index"))


@bp.route("/typos/<int:recipient_id>/reject", methods=["POST"])
def reject(recipient_id: int):
    recipient = db.get_or_404(Recipient, recipient_id)
    typos.reject(recipient)
    flash(sentence("No more suggestions for {}.", recipient.email), "info")
    return redirect(url_for("typos.index"))


@bp.route("/typos/accept-all", methods=["POST"])
def accept_all():
    resent, problems = typos.accept_all()
    flash(f"Corrected and sent again to {resent} recipients.", "success" if resent else "info")
    for problem in problems:
        flash(sentence("Not sent: {}", problem), "error")
    return redirect(url_for("typos.index"))
