"""Fixtures: an app on SQLite (a fresh file per test) or on PostgreSQL when
HELPDESK_TEST_DATABASE_URL is set (tables emptied between tests), the queue run in-line, and a
real SMTP sink on loopback."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from helpdesk import create_app
from helpdesk.auth import create_token, create_user
from helpdesk.models import db
from helpdesk.sink import SmtpSink

# The browser tests' shared browser, watch, checks and screenshots.
pytest_plugins = ("browser_checks",)

PG_URL = os.environ.get("HELPDESK_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("HELPDESK_TEST_REDIS_URL")
TYPO_DOMAINS = ("gmial.com", "hotmial.com")
# A company whose mail server refuses senders not on its allowlist.
POLICY_DOMAIN = "globex.example"
POLICY_REFUSAL = "550 5.7.1 Message rejected: the sender is not on this organisation's allowlist"
PASSWORD = "correct horse battery"


# The AWS SDK's credential chain, pinned to a made-up key: no test reads a developer's real AWS
# credentials, files or instance role, and the SES fakes know this key.
AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def aws_chain(monkeypatch, tmp_path_factory):
    nowhere = str(tmp_path_factory.getbasetemp() / "no-aws-files")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
    monkeypatch.setenv("AWS_CONFIG_FILE", nowhere)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def sink():
    with SmtpSink(refuse_domains={**dict.fromkeys(TYPO_DOMAINS), POLICY_DOMAIN: POLICY_REFUSAL},
                  defer_domains=("greylist.example",)) as s:
        yield s


def make_app(tmp_path, sink: SmtpSink | None = None, **overrides):
    config = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": PG_URL or f"sqlite:///{tmp_path / 'helpdesk.db'}",
        "QUEUE_URL": "immediate",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "BASE_URL": "http://localhost",
        "SENDER": "credentials@issuer.example",
        "SEND_RETRY_DELAY": 0.01,
        "SMTP_TIMEOUT": 5,
    }
    if sink is not None:
        config.update(SMTP_HOST=sink.host, SMTP_PORT=sink.port)
    config.update(overrides)
    return create_app(config)


_schema_built: set[str] = set()


def _empty_database() -> None:
    if db.engine.dialect.name == "postgresql":
        # The server outlives test runs: build this run's schema once, then empty it per test.
        url = str(db.engine.url)
        if url not in _schema_built:
            db.drop_all()
            db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
            db.session.commit()
            _schema_built.add(url)
        db.create_all()
        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        db.session.commit()
    else:
        db.create_all()


@pytest.fixture
def app_factory(tmp_path, request):
    """Build apps with extra settings; each gets an empty database."""
    made = []

    def factory(sink: SmtpSink | None = None, **overrides):
        app = make_app(tmp_path, sink, **overrides)
        with app.app_context():
            _empty_database()
        made.append(app)
        return app

    yield factory
    from helpdesk.plugins import reset_providers

    for app in made:
        with app.app_context():
            reset_providers(app)
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory, sink):
    app = app_factory(sink)
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def agent(app):
    return create_user("agent@issuer.example", PASSWORD, "agent")


@pytest.fixture
def admin(app):
    return create_user("admin@issuer.example", PASSWORD, "admin")


def sign_in(client, user) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


@pytest.fixture
def agent_client(client, agent):
    sign_in(client, agent)
    return client


@pytest.fixture
def admin_client(app, admin):
    client = app.test_client()
    sign_in(client, admin)
    return client


@pytest.fixture
def token(app, agent):
    return create_token(agent)


@pytest.fixture
def api(client, token):
    """The test client with the agent's Bearer token on every request."""

    class Api:
        def __getattr__(self, method):
            call = getattr(client, method)

            def with_token(*args, headers=None, **kwargs):
                headers = {"Authorization": f"Bearer {token}", **(headers or {})}
                return call(*args, headers=headers, **kwargs)

            return with_token

    return Api()


@pytest.fixture
def desk(app, sink):
    """The desk's shared test data (tests/desk_data.py), sent for real through the sink."""
    from desk_data import build_desk

    return build_desk()
