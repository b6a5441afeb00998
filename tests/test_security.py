"""The security matrix: every route × anonymous / agent / admin / API token; CSRF; hashed
secrets at rest; secrets absent from the logs; security headers on every answer."""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text
from werkzeug.serving import make_server

from helpdesk.auth import create_token, create_user
from helpdesk.credentials import create_credential
from helpdesk.importer import import_rows, read_rows
from helpdesk.models import ApiToken, ShareLink, User, db
from helpdesk.security import CONTENT_SECURITY_POLICY, redact
from helpdesk.sharing import create_link
from helpdesk.status import STATUSES

from conftest import PASSWORD, sign_in

# Every view reachable without signing in. A new public route must be added here on purpose.
PUBLIC = {"static", "auth.login", "help.index", "help.article", "tracking.pixel",
          "webhooks.receive", "share.status", "api.statuses", "api.causes", "openapi"}
ADMIN_ONLY = re.compile(r"^admin\.")

# How each kind of caller is refused, by where the route lives.
REFUSED_ANONYMOUS_PAGE = {302}  # to the sign-in page
REFUSED_ANONYMOUS_API = {401}
REFUSED_ROLE = {403}

# Who may do what: "in" = let in (any answer that is not a refusal), "out" = refused.
#                   anonymous  agent  admin  token (an agent's)
MATRIX = {
    "public":       ("in",      "in",  "in",  "in"),
    "page":         ("out",     "in",  "in",  "in"),
    "api":          ("out",     "in",  "in",  "in"),
    "admin":        ("out",     "out", "in",  "out"),
}
CALLERS = ("anonymous", "agent", "admin", "token")


def kind_of(endpoint: str, rule: str) -> str:
    if endpoint in PUBLIC:
        return "public"
    if ADMIN_ONLY.match(endpoint):
        return "admin"
    return "api" if rule.startswith("/api/") else "page"


@pytest.fixture
def world(app, sink, agent, admin):
    """One of everything a route's URL can name."""
    credential = create_credential("Security", [
        {"name": "Ann", "email": "ann@valley.example"}], state="published")
    run = import_rows(credential, read_rows(b"name,email\nBea,bea@valley.example\n"))
    victim = create_user("victim@issuer.example", PASSWORD, "agent")
    victim_token = create_token(victim)
    return {
        "credential_id": credential.id,
        "recipient_id": credential.recipients[0].id,
        "user_id": victim.id,
        "token_id": db.session.scalar(select(ApiToken.id).where(
            ApiToken.token_hash == hashlib.sha256(victim_token.encode()).hexdigest())),
        "domain": "valley.example",
        "token": create_link("valley.example", 14, None)[1],
        "link_id": db.session.scalar(select(ShareLink.id)),
        "slug": "statuses",
        "name": "smtp",
        "filename": "style.css",
        "index": 0,
        "run_id": run.run_id,
    }


def routes(app, world):
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        values = {arg: world[arg] for arg in rule.arguments}
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        for method in methods:
            yield rule.endpoint, rule.rule, method, url


def call(app, caller, method, url, users, api_token):
    client = app.test_client()
    headers = {}
    if caller in ("agent", "admin"):
        sign_in(client, users[caller])
    elif caller == "token":
        headers["Authorization"] = f"Bearer {api_token}"
    response = client.open(url, method=method, headers=headers, data={})
    response.get_data()  # let a streamed answer (the CSV export) finish
    response.close()
    return response


def refused(response, caller, kind) -> bool:
    code = response.status_code
    if caller == "anonymous":
        if kind == "api":
            return code in REFUSED_ANONYMOUS_API
        return code in REFUSED_ANONYMOUS_PAGE and "/login" in response.headers["Location"]
    return code in REFUSED_ROLE


def test_the_public_views_are_exactly_the_ones_listed(app):
    marked = {endpoint for endpoint, view in app.view_functions.items()
              if getattr(view, "helpdesk_public", False)} | {"static"}
    assert marked == PUBLIC


def test_every_route_answers_each_caller_as_the_matrix_says(app, world, agent, admin, token):
    # Plain ids: a route that deletes expunges the session these ORM objects live in; the
    # session id is read afresh because signing out ends the sessions of before.
    def caller(user_id: int) -> SimpleNamespace:
        return SimpleNamespace(id=user_id, get_id=lambda: db.session.get(User, user_id).get_id())

    users = {"agent": caller(agent.id), "admin": caller(admin.id)}
    checked = 0
    for endpoint, rule, method, url in routes(app, world):
        kind = kind_of(endpoint, rule)
        for caller, expected in zip(CALLERS, MATRIX[kind]):
            response = call(app, caller, method, url, users, token)
            where = f"{caller} {method} {url} ({endpoint}, {kind})"
            assert response.status_code < 500, where
            assert refused(response, caller, kind) == (expected == "out"), \
                f"{where} answered {response.status_code}"
            checked += 1
    assert checked > 100


def test_every_answer_carries_the_security_headers(app, world, admin):
    client = app.test_client()
    sign_in(client, admin)
    for endpoint, rule, method, url in routes(app, world):
        if method != "GET":
            continue
        response = client.get(url)
        response.get_data()
        response.close()
        headers = response.headers
        assert headers["Content-Security-Policy"], url
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], url
        assert "script-src 'self'" in headers["Content-Security-Policy"], url
        assert headers["X-Content-Type-Options"] == "nosniff", url
        assert headers["X-Frame-Options"] == "DENY", url
        token_path = url.startswith(("/share/", "/t/"))
        assert headers["Referrer-Policy"] == ("no-referrer" if token_path else "same-origin"), url


def test_the_pages_need_no_inline_style_or_script(admin_client, world):
    """The CSP forbids inline styles and scripts; a page that used them would break."""
    for url in ("/", "/credentials", f"/credentials/{world['credential_id']}",
                f"/recipients/{world['recipient_id']}", "/help/", "/login"):
        html = admin_client.get(url).get_data(as_text=True)
        assert " style=" not in html and "<style" not in html, url
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url
        assert not re.search(r"\son[a-z]+=", html), url
    assert admin_client.get("/help/").headers["Content-Security-Policy"] == \
        CONTENT_SECURITY_POLICY


def test_the_status_colours_in_the_stylesheet_are_the_registrys():
    css = (Path(__file__).parent.parent / "helpdesk/static/style.css").read_text()
    for key, status in STATUSES.items():
        assert re.search(rf"\.status-{key}\s*\{{\s*--status-colour:\s*{status.colour};", css), key


def test_forms_without_a_csrf_token_are_refused(app_factory, sink):
    app = app_factory(sink, WTF_CSRF_ENABLED=True)
    with app.app_context():
        agent = create_user("agent@issuer.example", PASSWORD, "agent")
        credential = create_credential("CSRF", [{"name": "Ann", "email": "ann@valley.example"}],
                                       state="published")
        recipient_id = credential.recipients[0].id
        client = app.test_client()
        assert client.post("/login", data={"email": agent.email,
                                           "password": PASSWORD}).status_code == 400
        sign_in(client, agent)
        before = len(credential.recipients[0].deliveries)
        response = client.post(f"/recipients/{recipient_id}/resend", data={})
        assert response.status_code == 400
        db.session.expire_all()
        assert len(db.session.get(type(credential.recipients[0]), recipient_id).deliveries) \
            == before
        page = client.get(f"/recipients/{recipient_id}").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post(f"/recipients/{recipient_id}/resend",
                           data={"csrf_token": csrf}).status_code < 400


def test_passwords_and_api_tokens_are_stored_hashed(app, agent, token):
    rows = db.session.execute(text("SELECT email, password_hash FROM \"user\"")).all()
    assert rows and all(PASSWORD not in h and h.startswith(("scrypt:", "pbkdf2:"))
                        for _, h in rows)
    stored = db.session.execute(text("SELECT token_hash, prefix FROM api_token")).all()
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(), token[:10])]
    dump = "\n".join(str(row) for table in db.metadata.sorted_tables
                     for row in db.session.execute(table.select()))
    assert token not in dump and PASSWORD not in dump


SECRETS = {"SECRET_KEY": "sk-known-secret-4711", "SENDGRID_API_KEY": "SG.known-sendgrid-key",
           "MAILGUN_API_KEY": "key-known-mailgun", "MAILGUN_WEBHOOK_SIGNING_KEY": "mg-signing-known",
           "SMTP_PASSWORD": "smtp-known-password"}


def test_secrets_never_reach_the_logs(app_factory, sink, caplog):
    app = app_factory(sink, **SECRETS)
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        user = create_user("agent@issuer.example", PASSWORD, "agent")
        api_token = create_token(user)
        credential = create_credential("Logs", [{"name": "Ann", "email": "ann@valley.example"}],
                                       state="published")
        delivery = credential.recipients[0].deliveries[0]
        from helpdesk.pixel import pixel_url

        pixel_path = pixel_url(delivery).removeprefix("http://localhost")
        share_path = "/share/" + create_link("valley.example", 14, None)[1]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        def get(path, **headers):
            request = urllib.request.Request(base + path, headers=headers)
            try:
                return urllib.request.urlopen(request, timeout=10).status
            except urllib.error.HTTPError as error:
                return error.code

        assert get(pixel_path) == 200
        assert get(share_path) == 200
        assert get("/api/v1/recipients", Authorization=f"Bearer {api_token}") == 200
        assert get("/api/v1/recipients", Authorization="Bearer hd_wrong-token-guess-1234") == 401
        login = urllib.request.Request(base + "/login", data=(
            f"email=agent%40issuer.example&password={PASSWORD.replace(' ', '+')}").encode())
        try:
            urllib.request.urlopen(login, timeout=10)
        except urllib.error.HTTPError:
            pass
        forged = urllib.request.Request(base + "/webhooks/mailgun", data=b'{"signature": {}}',
                                        headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(forged, timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code in (401, 403, 406)
    finally:
        server.shutdown()
        thread.join(5)
    logged = caplog.text
    assert "/t/" in logged and "/share/" in logged  # the request lines were logged...
    token_in_pixel = pixel_path.removeprefix("/t/").removesuffix(".gif")
    for secret in [*SECRETS.values(), api_token, PASSWORD, token_in_pixel,
                   share_path.removeprefix("/share/")]:
        assert secret not in logged  # ...without a secret in them


@pytest.mark.parametrize("line, expected", [
    ('127.0.0.1 - - [01/Jan/2026 10:00:00] "GET /t/eyJhbGciOi.abc-DEF_1.gif HTTP/1.1" 200 -',
     '127.0.0.1 - - [01/Jan/2026 10:00:00] "GET /t/… HTTP/1.1" 200 -'),
    ('127.0.0.1 "GET /share/eyJkb21haW4iOiJ4In0.Zx9.abc?page=2 HTTP/1.1" 200',
     '127.0.0.1 "GET /share/…?page=2 HTTP/1.1" 200'),
    ("Authorization: Bearer hd_abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer …"),
    ("token hd_abcdefghijklmnopqrstuvwxyz0123 created", "token hd_… created"),
    ("GET /credentials/12?status=bounced", "GET /credentials/12?status=bounced"),
])
def test_request_lines_lose_their_tokens(line, expected):
    assert redact(line) == expected


# --- cookies, caching, proxies, settings ------------------------------------------------------

def test_the_session_cookie_is_lax_and_secure_when_the_site_is_https(app_factory, sink):
    for base_url, secure in (("https://desk.example", True), ("http://localhost", False)):
        app = app_factory(sink, BASE_URL=base_url)
        with app.app_context():
            user = create_user(f"a{int(secure)}@issuer.example", "long enough", "agent")
            response = app.test_client().post("/login", data={"email": user.email,
                                                              "password": "long enough"})
        cookie = response.headers["Set-Cookie"]
        assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
        assert ("Secure" in cookie) is secure


def test_pages_are_not_stored_by_browsers_or_proxies(app, admin_client, agent):
    response = admin_client.post(f"/admin/users/{agent.id}/tokens")
    assert response.status_code == 200 and "hd_" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert admin_client.get("/admin/settings").headers["Cache-Control"] == "no-store"
    assert "no-store" not in admin_client.get("/static/style.css").headers.get(
        "Cache-Control", "")


def test_a_libpq_password_parameter_is_masked_on_the_settings_page():
    from helpdesk.views.admin import masked

    shown = masked("DATABASE_URL", "postgresql://db.example/helpdesk?sslmode=require&"
                                   "password=pg-hunter2", False)
    assert "pg-hunter2" not in shown and "sslmode=require" in shown and "password=••" in shown
    assert masked("DATABASE_URL", "sqlite:////var/lib/helpdesk.db", False) == \
        "sqlite:////var/lib/helpdesk.db"


def test_behind_a_proxy_its_forwarded_headers_count_only_when_configured(app_factory, sink):
    from helpdesk.app import proxy_hops

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    plain = app_factory(sink)
    assert "Strict-Transport-Security" not in plain.test_client().get(
        "/help", headers=forwarded).headers
    behind = app_factory(sink, PROXY_FIX=True)
    assert behind.test_client().get("/help", headers=forwarded).headers[
        "Strict-Transport-Security"]
    assert proxy_hops({"x_for": 2, "x_proto": "1"}) == {"x_for": 2, "x_proto": 1}
    with pytest.raises(ValueError, match="PROXY_FIX must be"):
        proxy_hops({"x_forwarded": 1})


# --- the instance folder ------------------------------------------------------------------------

def test_the_instance_folder_is_the_users_data_folder_never_the_virtualenv(monkeypatch, tmp_path):
    import sys

    from helpdesk.app import instance_folder

    monkeypatch.delenv("HELPDESK_INSTANCE_PATH", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    chosen = instance_folder({})
    assert chosen == (tmp_path / "data" / "helpdesk").resolve()
    assert not chosen.is_relative_to(Path(sys.prefix).resolve())
    monkeypatch.setenv("HELPDESK_INSTANCE_PATH", str(tmp_path / "mine"))
    assert instance_folder({}) == (tmp_path / "mine").resolve()
    assert instance_folder({"INSTANCE_PATH": str(tmp_path / "given")}) == tmp_path / "given"


def test_what_helpdesk_keeps_in_the_instance_folder_only_its_account_can_read(tmp_path):
    import os

    from helpdesk import create_app

    folder = tmp_path / "instance"
    folder.mkdir(mode=0o755)
    (folder / "secret_key").write_text("left readable by an earlier version\n")
    (folder / "secret_key").chmod(0o644)
    mask = os.umask(0o022)  # the usual one: files would be world-readable without our care
    try:
        app = create_app({"INSTANCE_PATH": str(folder), "TESTING": True})
        with app.app_context():
            db.create_all()
            create_user("ann@issuer.example", PASSWORD)  # written through the WAL journal
            from helpdesk.queue import huey_of

            huey_of(app).storage.enqueue(b"a task", 0)
            made = {path.name: path.stat().st_mode & 0o777 for path in folder.iterdir()}
            db.session.remove()
            db.engine.dispose()
    finally:
        os.umask(mask)
    assert app.config["SECRET_KEY"] == "left readable by an earlier version"
    assert {"secret_key", "helpdesk.db", "helpdesk.db-wal", "queue.db"} <= set(made)
    assert {name: mode for name, mode in made.items() if mode & 0o077} == {}
    new_folder = tmp_path / "fresh"
    create_app({"INSTANCE_PATH": str(new_folder), "TESTING": True})
    assert new_folder.stat().st_mode & 0o777 == 0o700
    assert (new_folder / "secret_key").stat().st_mode & 0o777 == 0o600
