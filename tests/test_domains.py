"""Domains: recipients grouped by domain, the allowlist request, resending, share links."""
from __future__ import annotations

import re
from urllib.parse import unquote

from desk_data import page
from helpdesk.models import db


def test_domains_are_listed_most_bounces_first_with_counts_and_bounce_rate(agent_client, desk):
    html = page(agent_client.get("/domains"))
    order = re.findall(r'<tr data-domain="([^"]+)"', html)
    assert order[:2] == ["gmial.com", "hotmial.com"]
    assert set(order) == {"gmial.com", "hotmial.com", "example.com", "acme.example"}
    gmial = html[html.index('data-domain="gmial.com"'):html.index('data-domain="hotmial.com"')]
    assert "needs allowlisting" in gmial and 'data-bounce-rate="1.000"' in gmial
    example = html[html.index('data-domain="example.com"'):]
    assert 'data-bounce-rate="0.000"' in example


def test_domain_search(agent_client, desk):
    html = page(agent_client.get("/domains?q=acme"))
    assert re.findall(r'<tr data-domain="([^"]+)"', html) == ["acme.example"]


def test_domain_over_the_alert_shows_the_allowlist_request(agent_client, desk):
    html = page(agent_client.get("/domains/gmial.com"))
    assert 'id="allowlist"' in html
    assert '<code id="sender-address">credentials@issuer.example</code>' in html
    message = re.search(r'<textarea id="it-message"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert "allowlist the sender address credentials@issuer.example" in message
    assert "refused 3 of these emails sent to addresses at gmial.com" in message
    assert "550 5.1.1" in message  # the server's own reply, quoted
    mailto = re.search(r'id="mailto-it" href="([^"]+)"', html).group(1)
    assert mailto.startswith("mailto:postmaster@gmial.com?subject=")
    assert "credentials@issuer.example" in unquote(mailto.replace("&amp;", "&"))
    assert "Resend all 3 bounced here" in html


def test_domain_under_the_alert_has_no_allowlist_request(agent_client, desk):
    html = page(agent_client.get("/domains/hotmial.com"))
    assert 'id="allowlist"' not in html and "Resend all 1 bounced here" in html


def test_domain_lists_only_its_recipients_with_status_filters(agent_client, desk):
    html = page(agent_client.get("/domains/example.com?status=not_opened"))
    table = html[html.index('id="recipients-table"'):]
    assert "Ada Lovelace" in table and "Bob Typo" not in table


def test_resend_all_bounced_at_a_domain(agent_client, desk, sink):
    sink.refuse_domains.pop("gmial.com")  # their IT allowlisted the sender
    response = agent_client.post("/domains/gmial.com/resend", follow_redirects=True)
    html = page(response)
    assert "Sending again to 3 bounced recipients at gmial.com" in html
    db.session.expire_all()
    for name in ("Bob Typo", "Dan Blocked", "Eve Blocked"):
        assert desk.recipient(name).status == "not_opened"
    assert desk.recipient("Hal Hotmial").status == "bounced"


def test_create_share_link_puts_it_in_the_message(agent_client, desk):
    html = page(agent_client.post("/domains/gmial.com/share"))
    link = re.search(r'id="share-link">[^<]*<a href="([^"]+)"', html).group(1)
    assert link.startswith("http://localhost/share/")
    message = re.search(r'<textarea id="it-message"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert link in message and "works until" in message
    assert "Share link created" in html


def test_unknown_domain_is_404(agent_client, desk):
    assert agent_client.get("/domains/nowhere.example").status_code == 404
    assert agent_client.post("/domains/nowhere.example/share").status_code == 404
