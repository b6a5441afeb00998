"""What every response carries and what every log line leaves out.

- Security headers on every response: a Content-Security-Policy that allows only the app's own
  scripts, styles and images (no inline script or style: the status colours are CSS classes),
  ``nosniff``, no framing, and a referrer policy that never sends a share or pixel token on to
  another site.
- Secrets out of the logs: request lines name ``/t/<token>.gif`` and ``/share/<token>``, and a
  message could quote a Bearer token or a configured key; every log record is rewritten before
  any handler sees it (werkzeug's and gunicorn's request lines included).
- A database that is down or restarting answers 503 with a clear message instead of a 500,
  and the failed transaction is rolled back, so nothing is half-written.
"""
from __future__ import annotations

import logging
import re
import threading

from flask import Flask, Response, abort, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError

from .models import db

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
))
# The outbox shows caught emails in a sandboxed iframe (no scripts, no same origin); an HTML
# email styles itself inline, so its preview needs inline styles to look as the recipient sees it.
EMAIL_PREVIEW_POLICY = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'")

# Paths whose last segment is a secret: the referrer must never carry them to another site.
TOKEN_PATHS = ("/share/", "/t/")

# Config keys whose values are secrets, whatever plugin added them.
SECRET_SETTING = re.compile(r"(SECRET|PASSWORD|API_KEY|SIGNING_KEY|TOKEN)", re.I)

_TOKEN_IN_PATH = re.compile(r"(/t/|/share/)[^\s\"?#/]+")
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',]+", re.I)
_API_TOKEN = re.compile(r"\bhd_[A-Za-z0-9_-]{16,}")
REDACTED = "…"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_factory_installed = False


def redact(text: str) -> str:
    """``text`` with path tokens, Bearer tokens, API tokens and configured secrets cut out."""
    text = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _API_TOKEN.sub("hd_" + REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _install_log_redaction() -> None:
    """Rewrite every log record's message when it is made: a logger filter would only see the
    records of its own logger, not those of its children or of werkzeug's and gunicorn's."""
    global _factory_installed
    with _secrets_lock:
        if _factory_installed:
            return
        make_record = logging.getLogRecordFactory()

        def redacting_record(*args, **kwargs) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: leave it for logging to report
                return record
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            return record

        logging.setLogRecordFactory(redacting_record)
        _factory_installed = True


def is_secret(name: str) -> bool:
    """Whether a setting holds a secret by its name (plugins also declare theirs: see
    ``helpdesk.contract.Setting``)."""
    return bool(SECRET_SETTING.search(name))


def _remember_secrets(app: Flask) -> None:
    declared = {name for name, (_, setting) in app.extensions["helpdesk_settings"].items()
                if setting.secret}
    values = {str(value) for key, value in app.config.items()
              if (key in declared or is_secret(key)) and isinstance(value, str)
              and len(value) >= 6}
    with _secrets_lock:
        _secrets.update(values)


def _headers(response: Response) -> Response:
    headers = response.headers
    policy = EMAIL_PREVIEW_POLICY if request.path.startswith("/outbox/") \
        else CONTENT_SECURITY_POLICY
    headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer" if request.path.startswith(TOKEN_PATHS)
                       else "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static":
        # Pages show tokens once, share links, recipients' data: no browser or proxy keeps them.
        headers.setdefault("Cache-Control", "no-store")
    return response


def _refuse_nul() -> None:
    """A NUL character in the address cannot be looked up (PostgreSQL text cannot hold one):
    refused before any view reads it."""
    if "\x00" in request.path or any("\x00" in key or "\x00" in value
                                      for key, value in request.args.items(multi=True)):
        abort(400, "The address holds a NUL character (%00); remove it and try again.")


DATABASE_DOWN = ("The database is not answering right now; nothing was changed. "
                 "Try again in a minute.")


def _database_unavailable(error: OperationalError):
    """The database went away (restart, network) or stayed locked: 503, nothing half-written,
    never a 500. Other database errors (a constraint, a bug) stay 500s, to be found and fixed."""
    try:
        db.session.rollback()
    except DBAPIError:
        pass  # the connection is gone; the pool drops it
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                type(error.orig).__name__ if error.orig is not None else type(error).__name__)
    if request.path.startswith(("/api/", "/webhooks/")) or request.accept_mimetypes.best == \
            "application/json":
        response = jsonify(error=DATABASE_DOWN)
    else:
        # A page of its own: the site's layout would ask the database who is signed in.
        response = Response(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Unavailable · helpdesk</title></head><body><h1>Temporarily unavailable</h1>"
            f"<p>{DATABASE_DOWN}</p></body></html>", mimetype="text/html")
    response.status_code = 503
    response.headers["Retry-After"] = "30"
    return response


def init_app(app: Flask) -> None:
    _remember_secrets(app)
    _install_log_redaction()
    app.before_request(_refuse_nul)
    app.after_request(_headers)
    app.register_error_handler(OperationalError, _database_unavailable)
