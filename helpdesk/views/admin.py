"""Admin pages: users (create, deactivate, reactivate), API tokens (create, shown once; revoke),
the audit log and the effective settings, secrets masked. Agents get 403 here."""
from __future__ import annotations

from dataclasses import dataclass
import re
from urllib.parse import urlsplit, urlunsplit

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   url_for)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired, Email, Length

from .. import audit, config as defaults, queries
from .. import plugins
from ..auth import admin_required, create_token, create_user, no_nul
from ..bidi import sentence
from ..security import is_secret
from ..models import ApiToken, Role, User, db

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Core settings not in helpdesk.config: derived when the app is built.
DERIVED_SETTINGS = {"SECRET_KEY", "DATABASE_URL", "QUEUE_URL"}
PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&#]*", re.I)
URL_SETTINGS = ("DATABASE_URL", "QUEUE_URL", "SQLALCHEMY_DATABASE_URI", "RATELIMIT_STORAGE_URI")


@bp.before_request
@admin_required
def _admins_only():
    """Every admin page is for admins only."""


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320), no_nul])
    role = SelectField("Role", choices=[r.value for r in Role],
                       default=Role.agent.value)
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200),
                                                     no_nul])


def _users_page(form: UserForm, new_token: str | None = None, token_user: User | None = None,
                status: int = 200):
    users = db.session.scalars(select(User).order_by(User.email)).all()
    return render_template("admin/users.html", users=users, form=form, new_token=new_token,
                           token_user=token_user), status


@bp.route("/")
def index():
    return redirect(url_for("admin.users"))


@bp.route("/users", methods=["GET", "POST"])
def users():
    form = UserForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data, form.password.data, form.role.data)
        except ValueError as error:
            form.email.errors.append(str(error))
            return _users_page(form, status=400)
        flash(sentence(f"User {{}} created ({user.role.value}).", user.email), "success")
        return redirect(url_for("admin.users"), 303)
    return _users_page(form, status=400 if form.errors else 200)


def _user_or_404(user_id: int) -> User:
    return db.get_or_404(User, user_id)


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
def deactivate(user_id: int):
    user = _user_or_404(user_id)
    if user.id == current_user.id:
        flash("You cannot deactivate your own account: ask another admin.", "error")
        return redirect(url_for("admin.users"), 303)
    user.active = False
    db.session.commit()
    flash(sentence("{} can no longer sign in or use API tokens.", user.email), "success")
    return redirect(url_for("admin.users"), 303)


@bp.route("/users/<int:user_id>/activate", methods=["POST"])
def activate(user_id: int):
    user = _user_or_404(user_id)
    user.active = True
    db.session.commit()
    flash(sentence("{} can sign in again.", user.email), "success")
    return redirect(url_for("admin.users"), 303)


@bp.route("/users/<int:user_id>/tokens", methods=["POST"])
def create_api_token(user_id: int):
    user = _user_or_404(user_id)
    if not user.active:
        abort(400, f"{user.email} is deactivated: reactivate the account before giving it a token.")
    token = create_token(user)
    flash(sentence("New API token for {}. Copy it now: it is not shown again.", user.email),
          "success")
    return _users_page(UserForm(formdata=None), new_token=token, token_user=user)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
def revoke_token(token_id: int):
    token = db.get_or_404(ApiToken, token_id)
    email, prefix = token.user.email, token.prefix
    db.session.delete(token)
    db.session.commit()
    flash(sentence("Token {}… of {} revoked.", prefix, email), "success")
    return redirect(url_for("admin.users"), 303)


def masked(name: str, value: object, secret: bool) -> object:
    """A setting as the settings page shows it: secrets hidden, passwords taken out of URLs."""
    if value in (None, ""):
        return value
    if secret:
        return "•••••• (set)"
    if name in URL_SETTINGS and isinstance(value, str):
        parts = urlsplit(value)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":••••••@")
            value = urlunsplit(parts._replace(netloc=netloc))
        # libpq also takes the password as a parameter: ?password=…
        return PASSWORD_PARAMETER.sub(r"\1••••••", value)
    return value


@dataclass(frozen=True)
class SettingRow:
    name: str
    value: object  # masked when secret
    configured: bool  # set by the instance or the environment, not the default
    source: str  # "helpdesk", or the plugin that declared it


@bp.route("/settings")
def settings():
    cfg = current_app.config
    core = sorted({n for n in dir(defaults) if n.isupper()} | DERIVED_SETTINGS)
    rows = [SettingRow(n, masked(n, cfg.get(n), is_secret(n)),
                       cfg.get(n) != getattr(defaults, n, None), "helpdesk") for n in core]
    for name, (plugin, setting) in sorted(plugins.settings().items()):
        rows.append(SettingRow(name, masked(name, cfg.get(name), setting.secret or is_secret(name)),
                               cfg.get(name) != setting.default, plugin))
    return render_template("admin/settings.html", rows=rows)


AUDIT_PAGE_SIZE = 50


@bp.route("/audit")
def audit_log():
    """The audit log, newest first, one action or all; ``before`` pages on by entry id."""
    action = request.args.get("action") or None
    if action is not None and action not in audit.ACTIONS:
        abort(400, f"action must be one of {', '.join(audit.ACTIONS)}, not {action!r}")
    before_text = request.args.get("before", "")
    before = queries.whole_number(before_text, "before", queries.MAX_ID) if before_text else None
    entries = audit.latest(db.session, action=action, before=before,
                           limit=AUDIT_PAGE_SIZE + 1)
    shown = entries[:AUDIT_PAGE_SIZE]
    recipients, credentials = audit.still_there(db.session, shown)
    return render_template("admin/audit.html", entries=shown, action=action,
                           recipients=recipients, credentials=credentials,
                           next_before=entries[AUDIT_PAGE_SIZE - 1].id
                           if len(entries) > AUDIT_PAGE_SIZE else None)
