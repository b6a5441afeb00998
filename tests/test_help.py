"""The help center: articles shipped in the package and from plugins, with the status legend and
quick tips generated from the registry, so the two cannot drift."""
from __future__ import annotations

import re

import pytest
from markupsafe import escape

from desk_data import page
from helpdesk import hookimpl, plugins
from helpdesk.causes import CAUSES
from helpdesk.helpcenter import builtin_articles
from helpdesk.status import STATUSES


def test_the_help_center_is_public_and_lists_every_article(client):
    html = page(client.get("/help"))
    for article in builtin_articles():
        assert f'href="/help/{article.slug}"' in html
    titles = re.findall(r'<li><a href="/help/[^"]+">([^<]+)</a>', html)
    assert titles[0] == escape("What the email statuses mean")


def test_the_statuses_article_shows_every_label_and_meaning_from_the_registry(client):
    html = page(client.get("/help/statuses"))
    assert "[[status-legend]]" not in html
    for s in STATUSES.values():
        assert s.label in html
        assert str(escape(s.meaning)) in html
        assert f'id="status-{s.key}"' in html


def test_the_quick_tips_come_from_the_registry(client):
    html = page(client.get("/help/what-to-do"))
    assert "[[quick-tips]]" not in html
    for s in STATUSES.values():
        for tip in s.tips:
            assert str(escape(tip.title)) in html and str(escape(tip.text)) in html


@pytest.mark.parametrize("slug, phrase", [
    ("allowlist", "Create share link"),
    ("providers", "helpdesk_providers(config)"),
    ("what-to-do", "Fix the address and resend"),
])
def test_articles_say_what_their_readers_need(client, slug, phrase):
    assert escape(phrase) in page(client.get(f"/help/{slug}"))


def test_article_search(client):
    html = page(client.get("/help?q=allowlist postmaster"))
    assert 'href="/help/allowlist"' in html and 'href="/help/providers"' not in html
    none = page(client.get("/help?q=zebra-unicorn"))
    assert "No article matches “zebra-unicorn”" in none


def test_an_unknown_article_is_404(client):
    response = client.get("/help/no-such-article")
    assert response.status_code == 404 and "Page not found" in response.get_data(as_text=True)


class PigeonArticles:
    @hookimpl
    def helpdesk_help_articles(self):
        return [{"slug": "pigeons", "title": "Sending by pigeon", "summary": "Feathered mail.",
                 "order": 50, "body": "Pigeons read the legend too.\n\n[[status-legend]]\n\n"
                 "<script>alert(1)</script>\n\n[click](javascript:alert(1))"},
                {"slug": "statuses", "title": "A plugin cannot replace a built-in article",
                 "order": 0, "body": "hijacked"}]


@pytest.fixture
def pigeon(app):
    plugins.plugin_manager(app).register(PigeonArticles(), name="pigeon-articles")
    yield
    plugins.plugin_manager(app).unregister(name="pigeon-articles")


def test_plugins_add_articles(client, pigeon):
    index = page(client.get("/help"))
    assert 'href="/help/pigeons"' in index and "Feathered mail." in index
    html = page(client.get("/help/pigeons"))
    assert "Pigeons read the legend too." in html
    assert STATUSES["bounced"].label in html  # placeholders work in plugin articles too
    assert "<script>alert(1)</script>" not in html and "href=\"javascript:" not in html
    assert "hijacked" not in page(client.get("/help/statuses"))


def test_a_plugin_article_is_found_by_search(client, pigeon):
    assert 'href="/help/pigeons"' in page(client.get("/help?q=feathered"))


def test_the_causes_article_shows_every_cause_and_its_actions_from_the_registry(client):
    html = page(client.get("/help/causes"))
    assert "[[causes]]" not in html
    for cause in CAUSES.values():
        assert str(escape(cause.label)) in html and str(escape(cause.explanation)) in html
        assert f'id="cause-{cause.key}"' in html
        for tip in cause.actions:
            assert str(escape(tip.title)) in html
