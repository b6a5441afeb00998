"""Share links: a public page with one domain's statuses; tampered or expired links refused."""
from __future__ import annotations

import re

import pytest
from itsdangerous import TimestampSigner
from markupsafe import escape

from conftest import POLICY_DOMAIN, POLICY_REFUSAL
from helpdesk import sharing
from helpdesk.credentials import create_credential
from helpdesk.status import STATUSES


def share_path(app, domain: str) -> str:
    return f"/share/{sharing.make_share_token(app.config['SECRET_KEY'], domain)}"


def test_a_made_link_reads_back_its_domain():
    token = sharing.make_share_token("k", "Gmial.COM")
    assert sharing.read_share_token("k", token, 1) == "gmial.com"


def test_a_link_signed_with_another_key_is_invalid():
    token = sharing.make_share_token("other", "gmial.com")
    with pytest.raises(sharing.ShareLinkInvalid):
        sharing.read_share_token("k", token, 1)


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
    token = sharing.make_share_token(app.config["SECRET_KEY"], "gmial.com")
    payload, rest = token.split(".", 1)
    forged = sharing.make_share_token("guess", "example.com").split(".", 1)[0] + "." + rest
    for bad in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "nonsense"):
        response = client.get(f"/share/{bad}")
        assert response.status_code == 403
        html = response.get_data(as_text=True)
        assert "not valid" in html and "Ada Lovelace" not in html and "Bob Typo" not in html


def fifteen_days_later(monkeypatch):
    """Move the signer's clock on: a token made now is read fifteen days from now."""
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 15 * 86400)


def test_an_expired_link_is_refused_with_410(app, client, desk, monkeypatch):
    path = share_path(app, "gmial.com")
    app.config["SHARE_LINK_DAYS"] = 14
    fifteen_days_later(monkeypatch)
    response = client.get(path)
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "expired" in html and "Bob Typo" not in html


def test_a_link_expires_after_share_link_days(monkeypatch):
    token = sharing.make_share_token("k", "gmial.com")
    fifteen_days_later(monkeypatch)
    with pytest.raises(sharing.ShareLinkExpired):
        sharing.read_share_token("k", token, 14)
    assert sharing.read_share_token("k", token, 16) == "gmial.com"


def test_each_row_says_when_and_why_in_the_servers_words(app, client, sink):
    create_credential("Safety Badge", [{"name": "Homer", "email": f"homer@{POLICY_DOMAIN}"}],
                      state="published")
    html = client.get(share_path(app, POLICY_DOMAIN)).get_data(as_text=True)
    row = html[html.index('data-cause="policy"'):html.index("</tr>", html.index("Homer"))]
    assert "Blocked by the company&#39;s mail policy" in row
    assert str(escape(POLICY_REFUSAL)) in row
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT', row)
