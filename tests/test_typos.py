"""The fix-typos page: bounced recipients whose address has a suggestion, with real bounces from
the SMTP sink (it refuses gmial.com and hotmial.com with a 550)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from helpdesk import demo, typos
from helpdesk.addresses import check_address, domain_history
from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, db
from helpdesk.plugins import reset_providers
from helpdesk.sink import SmtpSink


def recipient(email: str) -> Recipient:
    db.session.expire_all()
    return db.session.scalar(select(Recipient).where(Recipient.email == email))


def listed(client) -> list[tuple[str, str]]:
    """(address, suggestion) of every row on the page."""
    page = client.get("/typos").get_data(as_text=True)
    return re.findall(r"<td><bdi>([^<]+)</bdi><br>.*?<strong class=\"suggestion\">([^<]+)</strong>", page,
                      re.S)


@pytest.fixture
def bounced(app, sink):
    create_credential("Data Science Certificate", [
        {"name": "Ann Lee", "email": "ann@gmial.com"},
        {"name": "Bob Ray", "email": "bob@hotmial.com"},
        {"name": "Cid Roe", "email": "cid@example.com"},
    ], state="published")
    assert recipient("ann@gmial.com").status == "bounced"  # a real 550 from the sink
    return sink


def test_the_page_lists_bounced_recipients_with_a_suggestion(bounced, agent_client):
    response = agent_client.get("/typos")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert listed(agent_client) == [("ann@gmial.com", "ann@gmail.com"),
                                    ("bob@hotmial.com", "bob@hotmail.com")]
    assert "Ann Lee" in page and "cid@example.com" not in page
    assert "550 5.1.1 &lt;ann@gmial.com&gt;: Recipient address rejected: no such domain" in page
    assert "confidence 80%" in page
    assert 'class="status status-bounced"' in page
    assert page.count('name="csrf_token"') == 1 + 2 * 2 + 1  # sign out, two rows, accept all


def test_a_suggestion_the_history_has_since_overtaken_is_listed_without_a_confidence(
        bounced, agent_client):
    # gmial.com starts taking mail (someone registered it): a new recipient there is delivered,
    # so the suggester no longer corrects it, while Ann's stored typo waits for refresh_typos.
    del bounced.refuse_domains["gmial.com"]
    create_credential("Follow-up", [{"name": "Zed Poe", "email": "zed@gmial.com"}],
                      state="published")
    assert recipient("zed@gmial.com").status == "not_opened"
    domain_history(fresh=True)  # the cached minute has passed
    assert check_address("ann@gmial.com").suggestion is None
    response = agent_client.get("/typos")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("ann@gmial.com", "ann@gmail.com") in listed(agent_client)
    row = page[page.index("ann@gmial.com"):page.index("bob@hotmial.com")]
    assert "confidence" not in row
    assert "confidence 80%" in page[page.index("bob@hotmial.com"):]


def test_accept_resends_to_the_suggestion_and_keeps_the_bounced_delivery(bounced, agent_client):
    ann = recipient("ann@gmial.com")
    response = agent_client.post(f"/typos/{ann.id}/accept", data={"suggestion": "ann@gmail.com"},
                                 follow_redirects=True)
    assert "Sent again to <bdi>ann@gmail.com</bdi>." in response.get_data(as_text=True)
    ann = recipient("ann@gmail.com")
    assert ann.status == "not_opened"
    assert [(d.email, d.kind, d.status) for d in ann.deliveries] == [
        ("ann@gmial.com", "send", "bounced"), ("ann@gmail.com", "resend", "not_opened")]
    assert ["ann@gmail.com"] in [m.recipients for m in bounced.messages]
    assert listed(agent_client) == [("bob@hotmial.com", "bob@hotmail.com")]


def test_accept_of_a_suggestion_that_no_longer_applies_sends_nothing(bounced, agent_client):
    ann = recipient("ann@gmial.com")
    response = agent_client.post(f"/typos/{ann.id}/accept",
                                 data={"suggestion": "ann@evil.example"}, follow_redirects=True)
    assert "Not sent: <bdi>ann@evil.example is not the suggestion for ann@gmial.com any more</bdi>." in \
        response.get_data(as_text=True)
    assert len(recipient("ann@gmial.com").deliveries) == 1


def test_reject_hides_the_suggestion_for_that_address_only(bounced, agent_client):
    ann = recipient("ann@gmial.com")
    response = agent_client.post(f"/typos/{ann.id}/reject", follow_redirects=True)
    assert "No more suggestions for <bdi>ann@gmial.com</bdi>." in response.get_data(as_text=True)
    assert listed(agent_client) == [("bob@hotmial.com", "bob@hotmail.com")]
    assert recipient("ann@gmial.com").typo_dismissed_for == "ann@gmial.com"
    # A new mistyped address, bounced again, is suggested again.
    agent_client.post(f"/recipients/{ann.id}/resend", data={"email": "ann@hotmial.com"})
    assert recipient("ann@hotmial.com").status == "bounced"
    assert ("ann@hotmial.com", "ann@hotmail.com") in listed(agent_client)


def test_accept_all_fixes_every_listed_address_in_one_action(bounced, agent_client):
    response = agent_client.post("/typos/accept-all", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Corrected and sent again to 2 recipients." in page
    assert "No bounced address looks mistyped." in page
    assert recipient("ann@gmail.com").status == "not_opened"
    assert recipient("bob@hotmail.com").status == "not_opened"
    assert recipient("cid@example.com").deliveries[-1].kind == "send"  # untouched


def test_the_list_pages(bounced):
    first, second = typos.typo_page(1, per_page=1), typos.typo_page(2, per_page=1)
    assert (first.total, first.pages, first.has_next, second.has_previous) == (2, 2, True, True)
    assert [f.recipient.email for f in first.items + second.items] == ["ann@gmial.com",
                                                                      "bob@hotmial.com"]
    assert typos.typo_page(9, per_page=1).number == 2  # past the end: the last page


def test_the_page_needs_a_signed_in_user(bounced, client):
    assert client.get("/typos").status_code in (302, 401)
    ann = recipient("ann@gmial.com")
    client.post(f"/typos/{ann.id}/accept", data={"suggestion": "ann@gmail.com"})
    assert recipient("ann@gmial.com").status == "bounced"


def test_one_action_fixes_a_bounced_demo_recipient_at_a_misspelled_domain(agent_client):
    with SmtpSink(refuse_domains=demo.TYPO_DOMAINS) as demo_sink:
        app = agent_client.application
        app.config.update(SMTP_HOST=demo_sink.host, SMTP_PORT=demo_sink.port)
        reset_providers(app)
        demo.seed(app)
        grace = recipient("grace.hopper@gmial.com")
        assert grace.status == "bounced"
        agent_client.post(f"/typos/{grace.id}/accept",
                          data={"suggestion": "grace.hopper@gmail.com"})
        grace = recipient("grace.hopper@gmail.com")
        assert grace.status == "not_opened"
        assert [m.recipients for m in demo_sink.messages if "grace" in m.recipients[0]] == [
            ["grace.hopper@gmail.com"]]
        assert {a for a, _ in listed(agent_client)} == {
            "katherine@hotmial.com", "margaret@yaho.com", "barbara@outlok.com"}
