"""Sign-in, roles, CSRF and the admin pages; and a walk over the whole URL map proving that
every route needs a signed-in user unless it is on the public list below."""
from __future__ import annotations

import re
import uuid

import pytest
from werkzeug.routing import IntegerConverter, PathConverter

from conftest import PASSWORD, REDIS_URL, sign_in
from helpdesk.auth import create_user, reset_password
from helpdesk.models import ApiToken, User, db

# Everything reachable without signing in. A new public view must be added here on purpose.
PUBLIC_ENDPOINTS = {
    "static",
    "auth.login",
    "help.index",
    "help.article",
    "share.status",
    "tracking.pixel",
    "webhooks.receive",
    "api.statuses",
    "api.causes",
    "openapi",
}
ARGUMENT_SAMPLES = {"int": 1, "default": "x.example", "path": "style.css"}


def sample_url(app, rule) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = 1 if isinstance(converter, IntegerConverter) else (
            "style.css" if isinstance(converter, PathConverter) else "x.example")
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def test_every_route_needs_sign_in_unless_it_is_public(app, client):
    marked_public = {endpoint for endpoint, view in app.view_functions.items()
                     if getattr(view, "helpdesk_public", False)} | {"static"}
    assert marked_public == PUBLIC_ENDPOINTS
    walked = 0
    for rule in app.url_map.iter_rules():
        url = sample_url(app, rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            walked += 1
            refused = (response.status_code == 401 if url.startswith("/api/") else
                       response.status_code == 302
                       and response.headers["Location"].startswith("/login"))
            if rule.endpoint in PUBLIC_ENDPOINTS:
                assert not refused, (method, url)
                assert response.status_code != 302 or "/login" not in response.headers.get(
                    "Location", ""), (method, url)
            else:
                assert refused, (method, url, response.status_code)
    assert walked > 30


# --- signing in ---------------------------------------------------------------------------------

def login(client, email, password):
    return client.post("/login", data={"email": email, "password": password})


def test_sign_in_and_out(client, agent):
    response = login(client, "Agent@Issuer.example", PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/logout")
    assert client.get("/").status_code == 302


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(client, agent):
    response = client.post("/login?next=/domains", data={"email": agent.email,
                                                          "password": PASSWORD})
    assert response.headers["Location"] == "/domains"
    client.post("/logout")
    for target in ("//evil.example/", "/%09/evil.example/", "/%0d%0a/x", "/%5cevil.example",
                   "https://evil.example/"):
        client.post("/logout")
        response = client.post(f"/login?next={target}", data={"email": agent.email,
                                                               "password": PASSWORD})
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/", target


def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(client, agent):
    wrong = login(client, "agent@issuer.example", "not the password")
    unknown = login(client, "nobody@issuer.example", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: r.get_data(as_text=True).replace("nobody@", "agent@")
    assert strip(wrong) == strip(unknown)
    assert "Wrong email or password." in strip(wrong)


def test_a_deactivated_account_cannot_sign_in(client, agent):
    agent.active = False
    db.session.commit()
    assert login(client, agent.email, PASSWORD).status_code == 401


def test_sign_in_is_rate_limited(app_factory, sink):
    app = app_factory(sink, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute")
    with app.app_context():
        create_user("agent@issuer.example", PASSWORD, "agent")
        client = app.test_client()
        codes = [login(client, "agent@issuer.example", "guess").status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # even the right password waits now
        assert login(client, "agent@issuer.example", PASSWORD).status_code == 429
        assert "Too many attempts" in login(client, "x@y.example", "z").get_data(as_text=True)
        assert client.get("/login").status_code == 200  # only attempts are limited


def test_csrf_is_required_on_every_form_when_enabled(app_factory, sink):
    app = app_factory(sink, WTF_CSRF_ENABLED=True)
    with app.app_context():
        from desk_data import build_desk

        desk = build_desk()
        agent = create_user("agent@issuer.example", PASSWORD, "agent")
        admin = create_user("admin@issuer.example", PASSWORD, "admin")
        client = app.test_client()
        assert login(client, agent.email, PASSWORD).status_code == 400  # no token
        sign_in(client, agent)
        ada = desk.recipient("Ada Lovelace")
        for path, data in [(f"/recipients/{ada.id}/resend", {}),
                           (f"/credentials/{desk.course.id}/resend", {"status": "bounced"}),
                           ("/domains/gmial.com/resend", {}), ("/domains/gmial.com/share", {}),
                           ("/logout", {})]:
            response = client.post(path, data=data)
            assert response.status_code == 400, path
            assert "The form had expired" in response.get_data(as_text=True)
        admin_client = app.test_client()
        sign_in(admin_client, admin)
        assert admin_client.post("/admin/users", data={"email": "n@issuer.example",
                                                       "password": PASSWORD}).status_code == 400
        html = client.get(f"/recipients/{ada.id}").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        response = client.post(f"/recipients/{ada.id}/resend", data={"csrf_token": token})
        assert response.status_code == 303


# --- roles and the admin pages ------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/admin/users"), ("get", "/admin/settings"), ("post", "/admin/users"),
    ("post", "/admin/users/1/deactivate"), ("post", "/admin/users/1/tokens"),
    ("post", "/admin/tokens/1/revoke"),
])
def test_agents_get_403_on_admin_pages(agent_client, method, path):
    response = getattr(agent_client, method)(path)
    assert response.status_code == 403
    assert "You cannot see this page" in response.get_data(as_text=True)


def test_agents_see_no_admin_link(agent_client):
    assert 'id="nav-admin"' not in agent_client.get("/").get_data(as_text=True)


def test_admin_creates_a_user_who_can_sign_in(app, admin_client):
    response = admin_client.post("/admin/users", data={
        "email": "new@issuer.example", "role": "agent", "password": "long enough pw"},
        follow_redirects=True)
    assert "User <bdi>new@issuer.example</bdi> created (agent)" in response.get_data(as_text=True)
    assert login(app.test_client(), "new@issuer.example", "long enough pw").status_code == 302


@pytest.mark.parametrize("data, message", [
    ({"email": "admin@issuer.example", "role": "agent", "password": "long enough pw"},
     "already exists"),
    ({"email": "short@issuer.example", "role": "agent", "password": "short"},
     "at least 8"),
    ({"email": "not-an-address", "role": "agent", "password": "long enough pw"},
     "Invalid email"),
    ({"email": "x@issuer.example", "role": "owner", "password": "long enough pw"},
     "Not a valid choice"),
])
def test_admin_user_form_refuses_bad_input_and_writes_nothing(admin_client, data, message):
    before = db.session.query(User).count()
    response = admin_client.post("/admin/users", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.query(User).count() == before


def test_admin_deactivates_and_reactivates_a_user(app, admin_client, agent):
    admin_client.post(f"/admin/users/{agent.id}/deactivate")
    db.session.refresh(agent)
    assert not agent.active
    assert login(app.test_client(), agent.email, PASSWORD).status_code == 401
    admin_client.post(f"/admin/users/{agent.id}/activate")
    db.session.refresh(agent)
    assert agent.active


def test_an_admin_cannot_deactivate_themselves(admin_client, admin):
    html = admin_client.post(f"/admin/users/{admin.id}/deactivate",
                             follow_redirects=True).get_data(as_text=True)
    assert "You cannot deactivate your own account" in html
    db.session.refresh(admin)
    assert admin.active


def test_a_new_token_is_shown_once_works_and_can_be_revoked(app, admin_client, agent):
    html = admin_client.post(f"/admin/users/{agent.id}/tokens").get_data(as_text=True)
    token = re.search(r'id="new-token-value" type="text" readonly value="([^"]+)"', html).group(1)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/recipients", headers=headers).status_code == 200
    listing = admin_client.get("/admin/users").get_data(as_text=True)
    assert token not in listing and token[:10] in listing
    stored = db.session.query(ApiToken).one()
    admin_client.post(f"/admin/tokens/{stored.id}/revoke")
    assert app.test_client().get("/api/v1/recipients", headers=headers).status_code == 401


def test_settings_show_the_configuration_with_secrets_masked(app_factory, sink):
    app = app_factory(sink, SMTP_PASSWORD="smtp-hunter2", MAILGUN_API_KEY="key-abc123",
                      QUEUE_URL="redis://:redis-pass@127.0.0.1:6379/5")
    with app.app_context():
        admin = create_user("admin@issuer.example", PASSWORD, "admin")
        client = app.test_client()
        sign_in(client, admin)
        html = client.get("/admin/settings").get_data(as_text=True)
    for secret in ("test-secret", "smtp-hunter2", "key-abc123", "redis-pass"):
        assert secret not in html
    assert "credentials@issuer.example" in html  # SENDER is not a secret
    assert "redis://:••••••@127.0.0.1:6379/5" in html
    row = re.search(r'data-setting="SMTP_PASSWORD">.*?</tr>', html, re.S).group(0)
    assert "(set)" in row and "configured" in row


def test_a_token_speaks_for_an_api_change_even_beside_a_session_cookie(app, agent, agent_client,
                                                                       token):
    from helpdesk.credentials import create_credential

    credential = create_credential("Both", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    recipient_id = credential.recipients[0].id
    cookie_only = agent_client.post(f"/api/v1/recipients/{recipient_id}/resend", json={})
    assert cookie_only.status_code == 401
    with_token = agent_client.post(f"/api/v1/recipients/{recipient_id}/resend", json={},
                                   headers={"Authorization": f"Bearer {token}"})
    assert with_token.status_code == 202, with_token.json


# --- sessions: revocation, password changes, limits --------------------------------------------

def _copy_session(app, client):
    """A second browser holding the same session cookie (a stolen or forgotten one)."""
    other = app.test_client()
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    other.set_cookie(cookie.key, cookie.value)
    return other


def test_signing_out_ends_every_session_of_the_user(app, client, agent):
    assert login(client, agent.email, PASSWORD).status_code == 302
    copy = _copy_session(app, client)
    assert copy.get("/credentials").status_code == 200
    client.post("/logout")
    response = copy.get("/credentials")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, client, agent):
    login(client, agent.email, PASSWORD)
    copy = _copy_session(app, client)
    wrong = client.post("/account/password", data={"current": "not it", "new": "a new one!",
                                                   "confirm": "a new one!"})
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(
        as_text=True)
    response = client.post("/account/password", data={
        "current": PASSWORD, "new": "a brand new password", "confirm": "a brand new password"})
    assert response.status_code == 303
    assert client.get("/credentials").status_code == 200
    assert copy.get("/credentials").status_code == 302
    client.post("/logout")
    assert login(client, agent.email, PASSWORD).status_code == 401
    assert login(client, agent.email, "a brand new password").status_code == 302


def test_the_cli_resets_a_password_and_ends_the_sessions(app, client, agent):
    login(client, agent.email, PASSWORD)
    result = app.test_cli_runner().invoke(
        args=["users", "reset-password", agent.email], input="reset by an admin\n")
    assert result.exit_code == 0, result.output
    assert client.get("/credentials").status_code == 302
    assert login(client, agent.email, "reset by an admin").status_code == 302
    missing = app.test_cli_runner().invoke(
        args=["users", "reset-password", "nobody@issuer.example", "--password", "long enough"])
    assert missing.exit_code != 0 and "no user nobody@issuer.example" in missing.output


def test_a_deactivated_account_loses_its_open_sessions(agent_client, agent):
    agent.active = False
    db.session.commit()
    assert agent_client.get("/credentials").status_code == 302


def test_signing_in_gives_a_new_csrf_secret(app_factory, sink):
    app = app_factory(sink, WTF_CSRF_ENABLED=True)
    with app.app_context():
        agent = create_user("agent@issuer.example", PASSWORD, "agent")
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        with client.session_transaction() as session:
            anonymous = session["csrf_token"]
        response = client.post("/login", data={"email": agent.email, "password": PASSWORD,
                                               "csrf_token": token})
        assert response.status_code == 302
        with client.session_transaction() as session:
            assert session.get("csrf_token") != anonymous


LIMITED = dict(LOGIN_ACCOUNT_MAX_FAILURES=3, LOGIN_ACCOUNT_WINDOW_SECONDS=900)


def test_failed_sign_ins_are_limited_per_account_and_a_reset_lifts_it(app_factory, sink):
    app = app_factory(sink, **LIMITED)
    with app.app_context():
        create_user("agent@issuer.example", PASSWORD, "agent")
        assert login(app.test_client(), "agent@issuer.example", PASSWORD).status_code == 302
        codes = [login(app.test_client(), "Agent@issuer.example", "guess").status_code
                 for _ in range(3)]
        refused = login(app.test_client(), "agent@issuer.example", PASSWORD)
        assert codes == [401, 401, 401] and refused.status_code == 429
        assert "Too many wrong passwords for this account" in refused.get_data(as_text=True)
        # An address with no account is limited the same way: a 429 says nothing about whether
        # the account exists.
        assert [login(app.test_client(), "nobody@issuer.example", "guess").status_code
                for _ in range(4)] == [401, 401, 401, 429]
        reset_password("agent@issuer.example", "a new password")
        assert login(app.test_client(), "agent@issuer.example", "a new password") \
            .status_code == 302


@pytest.mark.parametrize("storage", [
    "database://",  # the default without Redis
    pytest.param(REDIS_URL, marks=pytest.mark.skipif(
        not REDIS_URL, reason="needs Redis (HELPDESK_TEST_REDIS_URL)"), id="redis")])
def test_the_account_limit_holds_across_processes(app_factory, sink, storage):
    email = f"agent-{uuid.uuid4().hex[:12]}@issuer.example"  # Redis outlives test runs
    # Two apps on one database: two web processes, which share nothing else.
    first, second = (app_factory(sink, RATELIMIT_STORAGE_URI=storage, **LIMITED)
                     for _ in range(2))
    with first.app_context():
        create_user(email, PASSWORD, "agent")
        codes = [login(first.test_client(), email, "guess").status_code for _ in range(2)]
    with second.app_context():  # another process, another client address: the same count
        codes.append(login(second.test_client(), email, "guess").status_code)
        codes.append(login(second.test_client(), email, PASSWORD).status_code)
    with first.app_context():
        codes.append(login(first.test_client(), email, PASSWORD).status_code)
    assert codes == [401, 401, 401, 429, 429]


def test_the_account_limit_counts_in_the_process_while_its_storage_is_down(app_factory, sink):
    app = app_factory(sink, RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0", **LIMITED)
    with app.app_context():
        create_user("agent@issuer.example", PASSWORD, "agent")
        assert login(app.test_client(), "agent@issuer.example", PASSWORD).status_code == 302
        assert [login(app.test_client(), "agent@issuer.example", "guess").status_code
                for _ in range(4)] == [401, 401, 401, 429]


def _work_of_one_sign_in(client, email, password, monkeypatch) -> dict:
    """What a sign-in did: the password hashes checked (by method), the SQL statements run and
    the operations on the account's count."""
    import helpdesk.auth
    from sqlalchemy import event

    done = {"hashes": [], "statements": [], "counts": []}
    real_check = helpdesk.auth.check_password_hash
    monkeypatch.setattr(helpdesk.auth, "check_password_hash", lambda stored, given: (
        done["hashes"].append(stored.split("$")[0]) or real_check(stored, given)))
    attempts = helpdesk.auth.account_attempts()
    real_apply = attempts._apply
    monkeypatch.setattr(attempts, "_apply", lambda operation, key: (
        done["counts"].append(operation) or real_apply(operation, key)))

    def statement(conn, cursor, sql, parameters, context, executemany):
        done["statements"].append(sql.split()[0])

    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        assert login(client, email, password).status_code == 401
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
        monkeypatch.undo()
    return done


def test_every_refusal_does_the_same_work_whatever_the_account(app, client, agent, monkeypatch):
    """A deactivated account, a missing one and a wrong password must not be told apart by how
    long the answer takes: each checks one hash of the same method, runs the same statements
    and counts one failure (bench/login.py measures the times)."""
    wrong = _work_of_one_sign_in(client, agent.email, "not the password", monkeypatch)
    missing = _work_of_one_sign_in(client, "nobody@issuer.example", PASSWORD, monkeypatch)
    agent.active = False
    db.session.commit()
    deactivated = _work_of_one_sign_in(client, agent.email, PASSWORD, monkeypatch)
    assert wrong["hashes"] == [agent.password_hash.split("$")[0]]
    assert wrong["counts"] == ["test", "hit"]
    assert missing == wrong and deactivated == wrong


def test_sign_in_works_while_the_limiters_storage_is_down(app_factory, sink):
    app = app_factory(sink, RATELIMIT_ENABLED=True,
                      RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")  # nothing listens there
    with app.app_context():
        create_user("agent@issuer.example", PASSWORD, "agent")
        assert login(app.test_client(), "agent@issuer.example", PASSWORD).status_code == 302
