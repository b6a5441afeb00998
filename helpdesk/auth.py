"""Sign-in, API tokens and roles. Every route needs a signed-in user or a token unless its view
is marked ``@public``: new routes are private by default."""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from functools import wraps
from typing import Callable
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, abort, current_app, flash, g, jsonify, redirect,
                   render_template, request, session, url_for)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from . import limit_storage  # noqa: F401  (registers the "database://" storage)
from . import queries
from .models import ApiToken, Role, User, db, utcnow

log = logging.getLogger(__name__)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
bp = Blueprint("auth", __name__)

TOKEN_USE_PRECISION = timedelta(minutes=1)
# Checked against when the account does not exist, so both answers take the same time.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(8))


def public(view: Callable) -> Callable:
    """Mark a view as reachable without signing in."""
    view.helpdesk_public = True
    return view


def admin_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)
    return wrapped


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: User) -> str:
    """A new API token for the user; only its hash is stored, the token is shown once."""
    token = "hd_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, token_hash=hash_token(token), prefix=token[:10]))
    db.session.commit()
    return token


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None: never an open redirect. Browsers
    drop tabs and line breaks from a URL and read a backslash as a slash, so "/", a tab, then
    "/evil.example" would leave the site; a line break would also split the header."""
    if not target or not target.startswith("/") or "\\" in target:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target


def create_user(email: str, password: str, role: str = "agent") -> User:
    email = email.strip().lower()
    if db.session.scalar(select(User).where(User.email == email)):
        raise ValueError(f"a user {email} already exists")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    user = User(email=email, role=Role(role))
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    """The user a session cookie names (``User.get_id``: id and session version); a cookie of
    an ended session, or of a deactivated account, signs no one in."""
    if request.path.startswith("/api/") and "Authorization" in request.headers:
        return None  # a token sent to the API speaks for the request, not the browser's cookie
    user_id, _, version = str(session_id).partition(":")
    user = db.session.get(User, queries.record_id(user_id) or 0)
    if user is None or not user.active or version != str(user.session_version or 0):
        return None
    return user


@login_manager.request_loader
def _load_user_from_token(req) -> User | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    api_token = db.session.scalar(select(ApiToken).where(
        ApiToken.token_hash == hash_token(token.strip())))
    if api_token is None or not api_token.user.active:
        return None
    now = utcnow()
    # Recorded to the minute: a write on every API call would cost more than the call.
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_USE_PRECISION:
        api_token.last_used_at = now
        db.session.commit()
    g.api_token = api_token
    return api_token.user


def _require_login() -> object:
    # Who is signed in is decided by this request's own cookie or token, even where an app
    # context outlives a request (tests, CLI tools calling views).
    g.pop("_login_user", None)
    g.pop("api_token", None)
    view = current_app.view_functions.get(request.endpoint or "")
    if request.endpoint in (None, "static") or getattr(view, "helpdesk_public", False):
        return None
    api = request.path.startswith("/api/")
    if current_user.is_authenticated:
        # The API's changes need a token: a browser's cookie would let another site forge them.
        if not api or request.method in ("GET", "HEAD", "OPTIONS") or g.get("api_token"):
            return None
    if api:
        response = jsonify(error="authentication required: send Authorization: Bearer <token>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return login_manager.unauthorized()


def no_nul(form: FlaskForm, field) -> None:
    """A WTForms validator: text with a NUL character cannot be stored (PostgreSQL refuses it)."""
    if isinstance(field.data, str) and "\x00" in field.data:
        raise ValidationError("This field holds a NUL character.")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320), no_nul])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200), no_nul])


class AccountAttempts:
    """Failed sign-ins per account, counted where the rate limiter counts (Redis when it is
    configured, else the database: every web process sees the same count), in this process
    while that storage does not answer: sign-in never fails because Redis is down. Past ``max_failures`` within
    ``window`` seconds the account cannot sign in until the window moves on."""

    def __init__(self, storage_uri: str, max_failures: int, window: float) -> None:
        self.item = RateLimitItemPerSecond(max_failures, max(1, int(window)))
        self._shared = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._here = MovingWindowRateLimiter(MemoryStorage())

    def _apply(self, operation: str, email: str) -> bool:
        # The address is hashed: the storage needs a key, not the address.
        key = hashlib.sha256(email.encode()).hexdigest()
        try:
            return getattr(self._shared, operation)(self.item, "helpdesk-login-account", key)
        except Exception as error:  # noqa: BLE001 - whatever the storage's client raises
            log.warning("the sign-in limit's storage is not answering (%s); counting in this "
                        "process", type(error).__name__)
            return getattr(self._here, operation)(self.item, "helpdesk-login-account", key)

    def blocked(self, email: str) -> bool:
        return not self._apply("test", email)

    def failed(self, email: str) -> None:
        self._apply("hit", email)

    def forget(self, email: str) -> None:
        self._apply("clear", email)


def account_attempts() -> AccountAttempts:
    return current_app.extensions["helpdesk_account_attempts"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@public
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form), 400 if form.errors else 200
    email = form.email.data.strip().lower()
    user = db.session.scalar(select(User).where(User.email == email))
    # Every answer does the same work, whatever the account: one password hash checked, one
    # look at the account's count, and for a refusal one failure counted (for a missing or a
    # deactivated account too), so none is measurably faster and none says the account exists.
    matches = check_password_hash(user.password_hash if user else _DUMMY_HASH,
                                  form.password.data)
    attempts = account_attempts()
    if attempts.blocked(email):
        flash("Too many wrong passwords for this account: wait a few minutes, or ask an admin "
              "to set a new password.", "error")
        return render_template("login.html", form=form), 429
    if user is not None and user.active and matches:
        attempts.forget(email)
        # A new session: the CSRF secret of the anonymous visit does not carry over.
        session.pop("csrf_token", None)
        login_user(user)
        return redirect(local_path(request.args.get("next")) or url_for("pages.dashboard"))
    attempts.failed(email)
    flash("Wrong email or password.", "error")
    return render_template("login.html", form=form), 401


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out everywhere: every session of this user ends, not only this browser's."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200),
                                                            no_nul])
    new = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=200),
                                                    no_nul])
    confirm = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new", message="The two new passwords differ.")])


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """A new password ends every session of the user (this one starts afresh)."""
    form = PasswordForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current.data):
            form.current.errors.append("This is not your current password.")
            return render_template("password.html", form=form), 400
        current_user.set_password(form.new.data)
        db.session.commit()
        login_user(current_user)
        flash("Your password is changed; your other sessions are signed out.", "success")
        return redirect(url_for("pages.dashboard"), 303)
    return render_template("password.html", form=form), 400 if form.errors else 200


def reset_password(email: str, password: str) -> User:
    """Set a user's password (the CLI's reset); every session of the user ends."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise ValueError(f"no user {email}")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    user.set_password(password)
    db.session.commit()
    account_attempts().forget(user.email)
    return user


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see this page."
    csrf.init_app(app)
    # Sign-in attempts are counted where every web process sees them: in Redis when the queue
    # is there, else in the database (``helpdesk.limit_storage``).
    queue_url = str(app.config.get("QUEUE_URL", ""))
    app.config.setdefault("RATELIMIT_STORAGE_URI", queue_url if queue_url.startswith(
        ("redis://", "rediss://")) else "database://")
    # That storage down must not make sign-in a 500: the limiter then counts in this process.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
    app.extensions["helpdesk_account_attempts"] = AccountAttempts(
        app.config["RATELIMIT_STORAGE_URI"], int(app.config["LOGIN_ACCOUNT_MAX_FAILURES"]),
        float(app.config["LOGIN_ACCOUNT_WINDOW_SECONDS"]))
    app.register_blueprint(bp)
    app.before_request(_require_login)
