"""Domains: recipients grouped by domain, the allowlist request, resending, share links."""
from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from conftest import POLICY_DOMAIN
from desk_data import page
from helpdesk.credentials import create_credential
from helpdesk.models import db


def test_domains_are_listed_most_bounces_first_with_counts_and_bounce_rate(agent_client, desk):
    html = page(agent_client.get("/domains"))
    order = re.findall(r'<tr data-domain="([^"]+)"', html)
    assert order[:2] == ["gmial.com", "hotmial.com"]
    assert set(order) == {"gmial.com", "hotmial.com", "example.com", "acme.example"}
    gmial = html[html.index('data-domain="gmial.com"'):html.index('data-domain="hotmial.com"')]
    # Three bounces at a misspelled domain: no company to ask, a typo to fix.
    assert "likely a typo for gmail.com" in gmial and "needs allowlisting" not in gmial
    assert 'data-bounce-rate="1.000"' in gmial
    example = html[html.index('data-domain="example.com"'):]
    assert 'data-bounce-rate="0.000"' in example


def test_a_company_over_the_alert_is_flagged_for_allowlisting(agent_client, company):
    html = page(agent_client.get("/domains"))
    globex = html[html.index('data-domain="globex.example"'):]
    assert "needs allowlisting" in globex[:600]


def test_domain_search(agent_client, desk):
    html = page(agent_client.get("/domains?q=acme"))
    assert re.findall(r'<tr data-domain="([^"]+)"', html) == ["acme.example"]


@pytest.fixture
def company(app, sink):
    """Three recipients at a company whose server refuses senders not on its allowlist."""
    return create_credential("Safety Badge", [
        {"name": n, "email": f"{n.lower()}@{POLICY_DOMAIN}"} for n in ("Homer", "Lenny", "Carl")],
        state="published")


def test_a_company_refusing_by_policy_gets_the_allowlist_request(agent_client, company):
    html = page(agent_client.get(f"/domains/{POLICY_DOMAIN}"))
    assert 'id="allowlist"' in html and "refused 3 emails by policy" in html
    assert '<code id="sender-address">credentials@issuer.example</code>' in html
    message = re.search(r'<textarea id="it-message"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert "allowlist the sender address credentials@issuer.example" in message
    assert f"refused 3 of these emails sent to addresses at {POLICY_DOMAIN}" in message
    assert "550 5.7.1" in message  # the server's own reply, quoted
    mailto = re.search(r'id="mailto-it" href="([^"]+)"', html).group(1)
    assert mailto.startswith(f"mailto:postmaster@{POLICY_DOMAIN}?subject=")
    assert "credentials@issuer.example" in unquote(mailto.replace("&amp;", "&"))
    assert "Resend the 3 emails that bounced here" in html
    assert html.count('data-cause="policy"') == 3


def test_one_refusal_by_policy_is_enough_to_ask(agent_client, sink):
    create_credential("Badge", [{"name": "Moe", "email": f"moe@{POLICY_DOMAIN}"}],
                      state="published")
    assert 'id="allowlist"' in page(agent_client.get(f"/domains/{POLICY_DOMAIN}"))


@pytest.mark.parametrize("domain, bounced", [("gmial.com", 3), ("hotmial.com", 1)])
def test_a_typo_domain_points_to_the_fix_and_offers_no_company_actions(agent_client, desk,
                                                                        domain, bounced):
    html = page(agent_client.get(f"/domains/{domain}"))
    assert 'id="typo-domain"' in html and 'id="fix-typos"' in html
    for company_only in ('id="allowlist"', 'id="share-form"', 'id="resend-bounced-form"'):
        assert company_only not in html
    response = agent_client.post(f"/domains/{domain}/share")
    assert response.status_code == 400
    assert "looks like a typo for" in response.get_data(as_text=True)


def test_domain_lists_only_its_recipients_with_status_filters(agent_client, desk):
    html = page(agent_client.get("/domains/example.com?status=not_opened"))
    table = html[html.index('id="recipients-table"'):]
    assert "Ada Lovelace" in table and "Bob Typo" not in table


def test_resend_all_bounced_at_a_domain(agent_client, desk, company, sink):
    sink.refuse_domains.pop(POLICY_DOMAIN)  # their IT allowlisted the sender
    response = agent_client.post(f"/domains/{POLICY_DOMAIN}/resend", follow_redirects=True)
    html = page(response)
    assert f"Sending again to 3 bounced recipients at <bdi>{POLICY_DOMAIN}</bdi>" in html
    db.session.expire_all()
    assert {r.status for r in company.recipients} == {"not_opened"}
    assert desk.recipient("Hal Hotmial").status == "bounced"


def test_create_share_link_puts_it_in_the_message(agent_client, company):
    html = page(agent_client.post(f"/domains/{POLICY_DOMAIN}/share", follow_redirects=True))
    link = re.search(r'id="share-link">[^<]*<a href="([^"]+)"', html).group(1)
    assert link.startswith("http://localhost/share/")
    message = re.search(r'<textarea id="it-message"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert link in message and "works until" in message
    assert "Share link created" in html


def test_unknown_domain_is_404(agent_client, desk):
    assert agent_client.get("/domains/nowhere.example").status_code == 404
    assert agent_client.post("/domains/nowhere.example/share").status_code == 404
