"""The app factory."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from flask_migrate import Migrate
from platformdirs import user_data_dir
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from . import auth, plugins, queue, security, tasks, views
from .cli import register_commands
from .models import db
from .queries import MAX_ID


class RecordIdConverter(IntegerConverter):
    """``<int:…>`` in every route: ASCII digits only (``\\d`` also matches other scripts'
    digits), and no larger than a key can be, so a huge id is a 404, not a database overflow."""

    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app. Settings come from ``helpdesk.config`` and the defaults the plugins declare
    (``helpdesk_settings``), then the instance folder's ``config.py``, then ``HELPDESK_*``
    environment variables, then ``config``."""
    app = Flask(
        "helpdesk",
        instance_path=str(instance_folder(config or {})),
        instance_relative_config=True,
        template_folder=str(_templates_dir()),
        static_folder="static",
    )
    app.url_map.converters["int"] = RecordIdConverter
    app.config.from_object("helpdesk.config")
    plugins.init_app(app)  # the plugins' settings' defaults, before what the instance sets
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("HELPDESK")
    app.config.update(config or {})
    _derive_settings(app)

    db.init_app(app)
    Migrate(app, db, directory=str(Path(__file__).parent / "migrations"), render_as_batch=True)
    queue.init_app(app)
    tasks.init_app(app)
    auth.init_app(app)
    security.init_app(app)
    if hops := proxy_hops(app.config.get("PROXY_FIX")):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)

    views.init_app(app)
    register_commands(app)
    return app


def instance_folder(config: Mapping[str, Any]) -> Path:
    """Where an installation keeps its files (secret key, SQLite database and queue, config.py):
    ``INSTANCE_PATH`` given to the factory, else ``HELPDESK_INSTANCE_PATH``, else the user's data
    folder (``~/.local/share/helpdesk`` on Linux). Never Flask's default inside the virtualenv,
    which other accounts may read and a reinstall may wipe."""
    chosen = config.get("INSTANCE_PATH") or os.environ.get("HELPDESK_INSTANCE_PATH")
    return Path(chosen or user_data_dir("helpdesk", appauthor=False)).expanduser().resolve()


def _derive_settings(app: Flask) -> None:
    cfg = app.config
    folder = Path(app.instance_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = _instance_secret(folder / "secret_key")
    url = cfg.get("DATABASE_URL") or f"sqlite:///{_private_file(folder / 'helpdesk.db')}"
    cfg.setdefault("SQLALCHEMY_DATABASE_URI", database_uri(url))
    cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    if "QUEUE_URL" not in cfg:
        cfg["QUEUE_URL"] = str(_private_file(folder / "queue.db"))
    cfg["MAX_CONTENT_LENGTH"] = cfg.get("MAX_CONTENT_LENGTH") or cfg["WEBHOOK_MAX_BYTES"]
    # Flask's own defaults (no SameSite, not Secure) are in the config already: only a stricter
    # choice of the user's stands.
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = cfg.get("SESSION_COOKIE_SAMESITE") or "Lax"
    cfg["SESSION_COOKIE_SECURE"] = bool(cfg.get("SESSION_COOKIE_SECURE")) or str(
        cfg["BASE_URL"]).startswith("https:")


PROXY_HEADERS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def proxy_hops(setting: Any) -> dict[str, int]:
    """ProxyFix's arguments from ``PROXY_FIX``: off when unset or false; ``true`` trusts one
    proxy's X-Forwarded-For, -Proto and -Host; a mapping gives the hops of each header."""
    if not setting:
        return {}
    if setting is True:
        return {"x_for": 1, "x_proto": 1, "x_host": 1}
    if not isinstance(setting, Mapping) or not set(setting) <= set(PROXY_HEADERS):
        raise ValueError(f"PROXY_FIX must be true or a mapping of {', '.join(PROXY_HEADERS)} "
                         f"to hop counts, not {setting!r}")
    return {name: int(hops) for name, hops in setting.items()}


def _templates_dir() -> Path:
    """Inside the installed package; at the top of a source checkout (an editable install)."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


def database_uri(url: str) -> str:
    """SQLAlchemy's URL for a user's one: ``postgresql://`` means the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _private_file(path: Path) -> Path:
    """``path``, created if need be, readable and writable by this account only. SQLite gives
    a database's -wal and -shm files the database file's mode, so they are private too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also a file an earlier version left world-readable
    finally:
        os.close(fd)
    return path


def _instance_secret(path: Path) -> str:
    """A random key kept in the instance folder, so sessions survive a restart."""
    if path.exists():
        return _private_file(path).read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the web app read while the worker writes; the busy timeout waits out a writer
    # instead of failing with "database is locked".
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Up to 64 MB of pages a connection (the default is 2 MB): a publishing chunk of
        # deliveries, events and status changes fits, instead of spilling mid-transaction.
        cursor.execute("PRAGMA cache_size=-65536")
        # The log is copied into the file every 40 MB rather than every 4 MB: fewer
        # checkpoints (each one flushed to disk) while chunks of writes are committed.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.close()
