"""Finding recipients: what one search box matches, and that an address or a domain is found
through the indexes alone (a million recipients must not be read for one address)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, db
from helpdesk.queries import RecipientFilter, lookup, ordered, recipient_page, search_condition

from test_costs import captured_statements


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


@pytest.mark.parametrize("sort", ["id", "-id", "name", "-name", "email", "-email", "status"])
def test_pages_past_the_middle_read_from_the_end_give_the_same_rows(app, sort):
    # Names repeat (ties broken by id) and some have no address (last, whatever the order).
    create_credential("Paged", [{"name": f"P{n % 4}", "email": None if n % 5 == 0 else
                                 f"p{(n * 7) % 23}@valley.example"} for n in range(23)])
    f = RecipientFilter.from_args({"sort": sort})
    whole = [r.id for r in db.session.scalars(ordered(select(Recipient), f))]
    pages = [[r.id for r in recipient_page(db.session, replace(f, page=n), 5)[0].items]
             for n in range(1, 7)]
    assert [i for p in pages for i in p] == whole and pages[-1] == []
    if sort == "email":
        assert pages[4][-1] == whole[-1] and db.session.get(Recipient, whole[-1]).email is None


def test_the_last_page_reads_backwards_not_past_every_row(app):
    create_credential("Paged", [{"name": f"P{n}", "email": f"p{n}@valley.example"}
                                for n in range(40)])
    with captured_statements() as seen:
        recipient_page(db.session, RecipientFilter(sort="id", page=4), 12)
    page_query = next(s for s, _ in seen if "ORDER BY" in s and "FROM recipient" in s)
    assert "DESC" in page_query  # rows 37..40 as the first 4 of the reverse order
