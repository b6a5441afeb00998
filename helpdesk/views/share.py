"""``/share/<token>``: the public status page a company's IT gets. It shows only the names,
addresses, statuses and reasons at the one domain its link names, until the link's expiry, and
links nowhere private; every view is logged on the link."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request

from .. import queries, sharing
from ..auth import public
from ..models import db

bp = Blueprint("share", __name__)


@bp.route("/share/<token>")
@public
def status(token: str):
    cfg = current_app.config
    try:
        link = sharing.open_link(token, request.headers.get("User-Agent"))
    except sharing.ShareLinkExpired:
        abort(410, "This status link has expired or was withdrawn. Ask the sender for a new "
                   "one.")
    except sharing.ShareLinkInvalid:
        abort(403, "This status link is not valid. Check that it was copied whole, or ask the "
                   "sender for a new one.")
    domain = link.domain
    f = queries.RecipientFilter.from_args(request.args, domain=domain)
    page, counts = queries.recipient_page(db.session, f, cfg["PAGE_SIZE"])
    response = current_app.make_response(render_template(
        "share.html", domain=domain, page=page, counts=counts, f=f, token=token,
        sender=cfg["SENDER"], organisation=cfg["ORGANISATION"], expires=link.expires_at))
    # The token is the key to this page: never send it on to another site, never index it.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Cache-Control"] = "private, no-store"
    return response
