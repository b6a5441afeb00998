"""The recipients view across credentials: filters, the reason column, keyset pages, export of
the filtered set, bulk actions; and the search behind it and lookup."""
from __future__ import annotations

import csv
import io
import re

from sqlalchemy import func, select

from desk_data import page
from helpdesk.credentials import create_credential
from helpdesk.models import AuditEntry, Recipient, db
from helpdesk import queries


def names(html: str) -> list[str]:
    return re.findall(r'<td data-label="Name"><a href="/recipients/\d+"><bdi>([^<]*)</bdi></a>', html)


def test_the_view_lists_every_credentials_recipients_with_their_reason(agent_client, desk):
    html = page(agent_client.get("/recipients"))
    assert "Frank Draft" in names(html) and "Ada Lovelace" in names(html)
    assert 'data-count="bounced">4<' in html
    bounced = page(agent_client.get("/recipients?status=bounced&sort=name"))
    assert names(bounced) == ["Bob Typo", "Dan Blocked", "Eve Blocked", "Hal Hotmial"]
    assert 'data-label="Reason"><span class="cause"' in bounced
    assert "#1 Data Science Certificate" in bounced


def test_the_status_counts_are_one_group_by_over_the_filtered_set(app, agent_client, desk):
    from sqlalchemy import event

    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    # A filter the tallies do not keep (a domain and a search): counted in one GROUP BY.
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        html = page(agent_client.get("/recipients?domain=gmial.com&q=blocked&status=bounced"))
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    grouped = [s for s in statements if "GROUP BY recipient.status" in s]
    assert len(grouped) == 1 and "email_domain" in grouped[0]
    assert "recipient_search" in grouped[0] or "LIKE" in grouped[0]
    # Counted over the filtered set, every status's tab beside the one chosen.
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', html))
    assert counts["bounced"] == "2" and sum(map(int, counts.values())) == 2
    # A domain alone, or nothing, reads the tallies: the same figures.
    domain = dict(re.findall(r'data-count="(\w+)">(\d+)<',
                             page(agent_client.get("/recipients?domain=gmial.com"))))
    assert domain["bounced"] == "3" and sum(map(int, domain.values())) == 3
    everyone = dict(re.findall(r'data-count="(\w+)">(\d+)<',
                               page(agent_client.get("/recipients"))))
    assert int(everyone["bounced"]) == 4 and sum(map(int, everyone.values())) == \
        db.session.scalar(select(func.count()).select_from(Recipient))


def test_filters_combine_domain_credential_search_and_dates(agent_client, desk):
    assert names(page(agent_client.get("/recipients?domain=gmial.com&sort=name"))) == [
        "Bob Typo", "Dan Blocked", "Eve Blocked"]
    assert names(page(agent_client.get("/recipients?credential=%232&sort=name"))) == [
        "Frank Draft", "Grace Draft"]
    assert names(page(agent_client.get("/recipients?q=blocked&sort=name"))) == [
        "Dan Blocked", "Eve Blocked"]
    assert names(page(agent_client.get("/recipients?since=2000-01-01&until=2000-01-02"))) == []
    cause = desk.recipient("Bob Typo").cause
    assert "Bob Typo" in names(page(agent_client.get(f"/recipients?cause={cause}")))
    for bad in ("status=lost", "cause=nope", "since=yesterday", "sort=colour",
                "credential=abc", "after=nonsense"):
        response = agent_client.get(f"/recipients?{bad}")
        assert response.status_code == 400, bad


def test_pages_follow_by_keyset_without_repeating_or_skipping(app, agent_client):
    create_credential("Big", [{"name": f"Person {n:02}", "email": f"p{n}@valley.example"}
                              for n in range(55)])
    seen, url = [], "/recipients?sort=name"
    while url:
        html = page(agent_client.get(url))
        seen += names(html)
        found = re.search(r'rel="next" id="next-page" href="([^"]+)"', html)
        url = found and found.group(1).replace("&amp;", "&")
    assert seen == [f"Person {n:02}" for n in range(55)]


def test_the_export_has_the_whole_filtered_set(agent_client, desk):
    response = agent_client.get("/recipients/export.csv?domain=gmial.com")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == list(queries.CSV_HEADER)
    assert sorted(r[2] for r in rows[1:]) == ["Bob Typo", "Dan Blocked", "Eve Blocked"]


def test_bulk_resend_of_the_ticked_rows_and_of_the_whole_filter(agent_client, desk, sink):
    dan = desk.recipient("Dan Blocked")
    response = agent_client.post("/recipients/bulk", data={
        "action": "resend", "scope": "chosen", "ids": [str(dan.id)]}, follow_redirects=True)
    assert "Skipped 1 recipient whom resending unchanged cannot help" in response.text
    response = agent_client.post("/recipients/bulk", data={
        "action": "resend", "scope": "chosen", "ids": [str(dan.id)], "include_all": "on"},
        follow_redirects=True)
    assert "Sending again to 1 of the 1 recipients chosen." in response.text
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "resent", AuditEntry.recipient_id == dan.id)) == 1
    response = agent_client.post("/recipients/bulk?credential=2", data={
        "action": "resend", "scope": "all"}, follow_redirects=True)
    assert "None of the 2 recipients chosen has a usable address in a published credential: " \
           "nothing was sent." in response.text
    db.session.expire_all()
    assert [d.kind for d in dan.deliveries] == ["send", "resend"]


def test_bulk_delete_asks_first(agent_client, desk):
    asked = agent_client.post("/recipients/bulk?domain=gmial.com", data={
        "action": "delete", "scope": "all"})
    assert asked.status_code == 200 and "Delete 3 recipients?" in asked.text
    assert db.session.scalar(select(func.count()).select_from(Recipient)
                             .where(Recipient.email_domain == "gmial.com")) == 3
    agent_client.post("/recipients/bulk?domain=gmial.com", data={
        "action": "delete", "scope": "all", "confirmed": "yes"})
    assert db.session.scalar(select(func.count()).select_from(Recipient)
                             .where(Recipient.email_domain == "gmial.com")) == 0


def test_the_dashboard_cards_lead_to_the_view(agent_client, desk):
    html = page(agent_client.get("/"))
    assert 'href="/recipients?status=bounced"' in html


# --- search and lookup --------------------------------------------------------------------------

def test_a_name_search_goes_through_the_index(app, desk):
    statement = select(Recipient.id).where(queries.search_condition("lovelace"))
    sql = str(statement.compile(db.engine))
    if db.engine.dialect.name == "sqlite":
        assert "recipient_search MATCH" in sql
        literal = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row) for row in db.session.execute(
            db.text(f"EXPLAIN QUERY PLAN {literal}")))
        assert "VIRTUAL TABLE INDEX" in plan
    ids = db.session.scalars(statement).all()
    assert ids == [desk.recipient("Ada Lovelace").id]
    # renamed: the index follows
    ada = desk.recipient("Ada Lovelace")
    ada.name = "Ada King"
    db.session.commit()
    assert db.session.scalars(statement).all() == []
    assert db.session.scalars(select(Recipient.id).where(
        queries.search_condition("king"))).all() == [ada.id]


def test_lookup_by_number_finds_that_credential_only(agent_client, desk):
    create_credential("Cohort 1", [{"name": "Person 1", "email": "one@valley.example"}])
    one = page(agent_client.get("/lookup?q=1"))
    assert "Ada Lovelace" in one and "Person 1" not in one
    two = page(agent_client.get("/lookup?q=%232"))
    assert "Frank Draft" in two and "Ada Lovelace" not in two


def test_lookup_finds_an_address_since_corrected(agent_client, desk):
    bob = desk.recipient("Bob Typo")
    agent_client.post(f"/recipients/{bob.id}/resend", data={"email": "bob@gmail.com"})
    html = page(agent_client.get("/lookup?q=bob%40gmial.com"))
    assert f'href="/recipients/{bob.id}"' in html
