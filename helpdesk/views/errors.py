"""Error pages: a clear page for people, JSON ``{"error": ...}`` under ``/api/`` and
``/webhooks/`` (the API's own blueprint handlers answer first for its routes)."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

from ..queries import FilterError

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/webhooks/")
TITLES = {
    400: "That request could not be used",
    403: "You cannot see this page",
    404: "Page not found",
    405: "Not allowed here",
    410: "This link has expired",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong on our side",
}
# Said instead of Werkzeug's stock texts ("read-protected or not readable by the server"), when
# the view gave no reason of its own.
PLAIN_WORDS = {
    400: "Something in what was sent could not be used. Go back and try again.",
    401: "Sign in to see this page.",
    403: "Your account cannot open this page. Ask an admin if you need it.",
    404: "There is nothing at this address: the link may be old, cut short or mistyped.",
    405: "This address does not take that kind of request: use the page's own buttons.",
    410: "This link no longer works. Ask whoever sent it for a new one.",
    413: "What was sent is larger than this page accepts.",
    429: "Too many attempts in a short time: wait a minute, then try again.",
}


def _answer(error: HTTPException):
    code = error.code or 500
    description = error.description or ""
    if description == type(error).description:  # Werkzeug's default, not the view's reason
        description = PLAIN_WORDS.get(code, "")
    if isinstance(error, CSRFError):
        description = ("The form had expired or was sent from another site. Go back, reload the "
                       "page and try again.")
    if code == 500:
        description = "The error has been logged. Try again in a moment."
    if request.path.startswith(JSON_PREFIXES):
        return jsonify(error=description or TITLES.get(code, error.name)), code
    return render_template("errors.html", code=code, title=TITLES.get(code, error.name),
                           description=description), code


def _server_error(error: InternalServerError):
    log.error("unhandled error on %s %s", request.method, request.path,
              exc_info=error.original_exception)
    return _answer(error)


def _bad_filter(error: FilterError):
    """A list's page, search or filter that makes no sense, from any view: 400 with why."""
    return _answer(BadRequest(str(error)))


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)
    app.register_error_handler(FilterError, _bad_filter)
    app.register_error_handler(InternalServerError, _server_error)
