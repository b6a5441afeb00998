"""The recipients view across credentials: filters (status, cause, date range, domain,
credential, search), a sortable reason column, keyset pages, export of the filtered set, and
bulk actions on the rows chosen or on the whole filtered set."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import audit, credentials as changes, publishing, queries
from ..causes import CAUSES
from ..models import Credential, Recipient, db
from .pages import csv_download, flash_bulk_resend

bp = Blueprint("recipients", __name__)

BULK_ACTIONS = ("resend", "delete")
MAX_BULK = 10_000  # a bigger set is narrowed by its filters first


def _view() -> queries.RecipientView:
    try:
        return queries.RecipientView.from_args(request.args, CAUSES)
    except queries.FilterError as error:
        abort(400, str(error))


@bp.route("/recipients")
def index():
    view = _view()
    size = current_app.config["PAGE_SIZE"]
    page = queries.view_page(db.session, view, size)
    counts = queries.view_counts(db.session, view)
    titles = dict(db.session.execute(select(Credential.id, Credential.title).where(
        Credential.id.in_({r.credential_id for r in page.items}))).all())
    return render_template("recipients.html", view=view, page=page, counts=counts,
                           titles=titles, causes=CAUSES, first_page=view.after is None)


@bp.route("/recipients/export.csv")
def export():
    return csv_download(queries.view_recipients(db.session, _view()), "recipients.csv")


@bp.route("/recipients/bulk", methods=["POST"])
def bulk():
    """An action on the rows chosen (``ids``) or, with ``scope=all``, on every recipient the
    filters (sent along as the view's query string) select. Deleting asks first."""
    action = request.form.get("action", "")
    if action not in BULK_ACTIONS:
        abort(400, f"action must be one of {', '.join(BULK_ACTIONS)}, not {action!r}")
    view = _view()
    if request.form.get("scope") == "all":
        chosen = list(queries.view_recipients(db.session, view))
    else:
        ids = queries.whole_numbers(request.form.getlist("ids"))
        chosen = list(db.session.scalars(select(Recipient).where(Recipient.id.in_(ids))
                                         .order_by(Recipient.id))) if ids else []
    back = url_for("recipients.index", **view.args())
    if not chosen:
        flash("Choose at least one recipient first.", "info")
        return redirect(back, 303)
    if len(chosen) > MAX_BULK:
        flash(f"{len(chosen):,} recipients are more than one action takes ({MAX_BULK:,}): narrow "
              "the filters.", "error")
        return redirect(back, 303)
    if action == "resend":
        result = publishing.resend_many(chosen, include_all=request.form.get("include_all") == "on")
        flash_bulk_resend(result, f"{result.queued} of the {len(chosen)} recipients chosen",
                          f"None of the {len(chosen)} recipients chosen has a usable address "
                          "in a published credential")
        return redirect(back, 303)
    if request.form.get("confirmed") != "yes":
        return render_template("recipients_delete.html", chosen=chosen, view=view,
                               scope=request.form.get("scope", ""), describe=audit.describe)
    changes.delete_recipients(chosen)
    flash(f"Deleted {len(chosen)} recipient{'s' if len(chosen) != 1 else ''}.", "success")
    return redirect(back, 303)
