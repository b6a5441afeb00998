"""The web app's blueprints: thin views over the modules that do the work."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, has_request_context
from flask_login import current_user

from .. import api, bidi, openapi, times
from ..audit import ACTIONS
from ..auth import csrf
from ..causes import CAUSES
from ..models import utcnow
from ..status import STATUSES
from . import (account, admin, compose, domains, errors, help, imports, pages, recipients, share,
               tracking, typos, webhooks)


def init_app(app: Flask) -> None:
    app.register_blueprint(pages.bp)
    app.register_blueprint(recipients.bp)
    app.register_blueprint(compose.bp)
    app.register_blueprint(domains.bp)
    app.register_blueprint(share.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(typos.bp)
    app.register_blueprint(imports.bp)
    app.register_blueprint(help.bp)
    app.register_blueprint(tracking.bp)
    app.register_blueprint(webhooks.bp)
    csrf.exempt(webhooks.bp)  # signed by the provider instead
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # Bearer tokens, never cookies
    openapi.init_app(app)
    errors.register(app)
    app.jinja_env.globals["STATUSES"] = STATUSES
    app.jinja_env.globals["CAUSES"] = CAUSES
    app.jinja_env.globals["AUDIT_ACTIONS"] = ACTIONS
    app.jinja_env.globals["timestamp"] = viewer_stamp
    # Names and addresses from outside: {{ r.name|bdi }} on pages, |plain_text in plain text.
    app.jinja_env.filters["bdi"] = bidi.isolated
    app.jinja_env.filters["plain_text"] = bidi.without_controls

    @app.context_processor
    def _page_context():
        # ``endpoints`` lets the navigation link to blueprints that may not be installed yet.
        return {"outbox_available": "helpdesk_sink" in app.extensions,
                "endpoints": app.view_functions.keys()}


def viewer_stamp(moment: datetime) -> times.Stamp:
    """A moment as the viewer reads it: in their chosen time zone (UTC for someone signed out
    or who has not chosen), and relative to now."""
    signed_in = has_request_context() and current_user.is_authenticated  # not in an email
    chosen = current_user.time_zone if signed_in else None
    return times.stamp(moment, times.zone(chosen), utcnow())
