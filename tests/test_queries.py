"""Finding recipients: what one search box matches, and that an address or a domain is found
through the indexes alone (a million recipients must not be read for one address)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, db
from helpdesk.queries import lookup, search_condition


@pytest.fixture
def people(app):
    return create_credential("Search", [
        {"name": "Ann Lee", "email": "Ann.Lee@valley.example"},
        {"name": "Bo Gmial", "email": "bo@gmial.com"},
        {"name": "Cy Young", "email": "cy@hill.example"}])


def found(q: str) -> set[str]:
    return {r.name for r in lookup(db.session, q)}


def test_one_box_finds_by_address_name_domain_and_credential(people):
    assert found("Ann.Lee@valley.example") == {"Ann Lee"}
    assert found("ann.lee@") == {"Ann Lee"}  # domains are stored lower-case, local parts not
    assert found("hill.example") == {"Cy Young"}
    assert found("@gmial.com") == {"Bo Gmial"}
    assert found("young") == {"Cy Young"}
    assert found("gmial") == {"Bo Gmial"}  # part of an address
    assert found(str(people.id)) == {"Ann Lee", "Bo Gmial", "Cy Young"}
    assert found("nobody@nowhere.example") == set()


@pytest.mark.parametrize("q", ["ann.lee@valley.example", "hill.example", "@gmial.com"])
def test_an_address_or_a_domain_is_found_through_indexes_alone(people, q):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("reads SQLite's query plan")
    sql = select(Recipient.id).where(search_condition(q)).compile(
        db.engine, compile_kwargs={"literal_binds": True})
    plan = " | ".join(row[-1] for row in db.session.execute(
        db.text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "SCAN recipient" not in plan, plan
