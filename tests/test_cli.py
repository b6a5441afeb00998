"""`helpdesk users create` and `helpdesk tokens create`, as the Contract says."""
from __future__ import annotations

import hashlib

from sqlalchemy import select

from helpdesk.models import ApiToken, User, db


def test_users_create_with_a_password_option(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "Ann@Issuer.Example", "--role", "admin",
              "--password", "a long password"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert (user.email, user.role.value) == ("ann@issuer.example", "admin")
    assert user.password_hash != "a long password" and user.check_password("a long password")


def test_users_create_reads_the_password_from_stdin_when_not_a_terminal(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "bo@issuer.example"],
                                          input="piped password\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert user.role.value == "agent" and user.check_password("piped password")


def test_users_create_refuses_a_duplicate_and_a_short_password(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "cy@issuer.example", "--password", "long enough"])
    again = runner.invoke(args=["users", "create", "cy@issuer.example", "--password", "long enough"])
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(args=["users", "create", "di@issuer.example", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_tokens_create_prints_the_token_alone_and_stores_its_hash(app, agent, client):
    result = app.test_cli_runner().invoke(args=["tokens", "create", agent.email],
                                          catch_exceptions=False)
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and len(token) > 30
    stored = db.session.scalar(select(ApiToken))
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (stored.token_hash, stored.prefix)
    ok = client.get("/api/v1/recipients", headers={"Authorization": f"Bearer {token}"})
    bad = client.get("/api/v1/recipients", headers={"Authorization": f"Bearer {token}x"})
    assert ok.status_code == 200 and bad.status_code == 401


def test_tokens_create_for_an_unknown_user_fails(app):
    result = app.test_cli_runner().invoke(args=["tokens", "create", "nobody@issuer.example"])
    assert result.exit_code != 0 and "no user" in result.output

