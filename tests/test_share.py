"""Share links: a public page with one domain's statuses; tampered or expired links refused."""
from __future__ import annotations

import re

import pytest
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from markupsafe import escape

from conftest import POLICY_DOMAIN, POLICY_REFUSAL
from helpdesk import sharing
from helpdesk.credentials import create_credential
from helpdesk.models import AuditEntry, ShareLink, db
from helpdesk.status import STATUSES


def share_path(app, domain: str, **kwargs) -> str:
    return f"/share/{sharing.create_link(domain, 14, None, **kwargs)[1]}"


def test_a_made_link_opens_its_domain_and_counts_the_view(app):
    link, token = sharing.create_link("Initech.EXAMPLE", 14, None)
    assert link.domain == "initech.example" and token not in link.token_hash
    assert sharing.open_link(token, "Firefox").domain == "initech.example"
    assert link.views == 1 and [v.user_agent for v in link.viewings] == ["Firefox"]
    with pytest.raises(sharing.ShareLinkInvalid):
        sharing.open_link(token + "x", None)


@pytest.mark.parametrize("domain, words", [
    ("gmail.com", "gmail.com is a public mailbox provider"),
    ("outlook.com", "public mailbox provider"),
])
def test_no_link_for_a_public_mailbox_provider(app, domain, words):
    with pytest.raises(sharing.ShareLinkRefused, match=words):
        sharing.create_link(domain, 14, None)
    assert db.session.scalar(select(ShareLink)) is None


def test_a_valid_link_shows_only_that_domain_to_anyone(app, client, desk):
    response = client.get(share_path(app, "gmial.com"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for name in ("Bob Typo", "Dan Blocked", "Eve Blocked"):
        assert name in html
    for other in ("Ada Lovelace", "Hal Hotmial", "hotmial.com", "example.com", "Frank Draft",
                  "Data Science Certificate"):
        assert other not in html
    assert STATUSES["bounced"].label in html and "credentials@issuer.example" in html


def test_the_share_page_has_nothing_private_or_editable(app, agent_client, desk):
    html = agent_client.get(share_path(app, "gmial.com")).get_data(as_text=True)
    assert "<form" not in html and "<textarea" not in html and "<input" not in html
    links = re.findall(r'href="([^"]+)"', html)
    assert all(l.startswith(("/static/", "#", "/share/")) for l in links), links
    assert 'id="main-nav"' not in html


def test_the_share_page_keeps_its_token_to_itself(app, client, desk):
    response = client.get(share_path(app, "gmial.com"))
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]


def test_a_tampered_link_is_refused(app, client, desk):
    token = sharing.create_link("gmial.com", 14, None)[1]
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "nonsense"):
        response = client.get(f"/share/{bad}")
        assert response.status_code == 403
        html = response.get_data(as_text=True)
        assert "not valid" in html and "Ada Lovelace" not in html and "Bob Typo" not in html


def test_an_expired_or_revoked_link_is_refused_with_410(app, client, desk):
    path = share_path(app, "gmial.com", now=datetime.now(timezone.utc) - timedelta(days=15))
    response = client.get(path)
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "expired" in html and "Bob Typo" not in html
    link, token = sharing.create_link("gmial.com", 14, None)
    assert client.get(f"/share/{token}").status_code == 200
    sharing.revoke(link)
    assert client.get(f"/share/{token}").status_code == 410


def test_the_share_page_says_until_when_it_works(app, client, desk):
    html = client.get(share_path(app, "gmial.com")).get_data(as_text=True)
    expires = (datetime.now(timezone.utc) + timedelta(days=14)).strftime("%Y-%m-%d")
    assert re.search(rf'id="share-expiry".*?{expires}', html)


def test_a_link_is_made_by_post_redirect_get_listed_and_revocable(app, agent_client, sink):
    create_credential("Badge", [{"name": "Ivy", "email": "ivy@initech.example"}],
                      state="published")
    response = agent_client.post("/domains/initech.example/share")
    assert response.status_code == 303
    assert response.headers["Location"] == "/domains/initech.example#share-link"
    shown = agent_client.get("/domains/initech.example").get_data(as_text=True)
    url = re.search(r'id="share-link">[^<]*<a href="([^"]+)"', shown).group(1)
    again = agent_client.get("/domains/initech.example").get_data(as_text=True)
    assert 'id="share-link"' not in again  # shown once; a reload makes no second link
    assert db.session.scalar(select(func.count()).select_from(ShareLink)) == 1
    agent_client.get(url.removeprefix("http://localhost"))
    listed = again[again.index('id="share-links"'):]
    assert "agent@issuer.example" in listed
    link = db.session.scalar(select(ShareLink))
    db.session.refresh(link)
    assert link.views == 1
    agent_client.post(f"/domains/initech.example/share/{link.id}/revoke")
    db.session.refresh(link)
    assert link.revoked_at is not None and link.revoked_by == "agent@issuer.example"
    assert agent_client.get(url.removeprefix("http://localhost")).status_code == 410
    assert [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            ][-2:] == ["shared", "revoked"]


def test_no_link_is_made_for_a_public_provider_through_the_page(app, agent_client, desk):
    response = agent_client.post("/domains/example.com/share")
    assert response.status_code == 303  # example.com is no public provider
    gmail = create_credential("G", [{"name": "G", "email": "g@gmail.com"}])
    assert gmail.id
    refused = agent_client.post("/domains/gmail.com/share")
    assert refused.status_code == 400 and "public mailbox provider" in refused.text


def test_each_row_says_when_and_why_in_the_servers_words(app, client, sink):
    create_credential("Safety Badge", [{"name": "Homer", "email": f"homer@{POLICY_DOMAIN}"}],
                      state="published")
    html = client.get(share_path(app, POLICY_DOMAIN)).get_data(as_text=True)
    row = html[html.index('data-cause="policy"'):html.index("</tr>", html.index("Homer"))]
    assert "Blocked by the company&#39;s mail policy" in row
    assert str(escape(POLICY_REFUSAL)) in row
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT', row)
