"""The help center: articles shipped in the package and from plugins, with the status legend and
quick tips generated from the registry, so the two cannot drift."""
from __future__ import annotations

import re

import pytest
from markupsafe import escape

from desk_data import page
from helpdesk import hookimpl, plugins
from helpdesk.causes import CAUSES, STATUS_CAUSES
from helpdesk import helpcenter
from helpdesk.credentials import create_credential
from helpdesk.helpcenter import Document, builtin_articles, search, stem
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


def test_the_quick_tips_come_from_the_causes_registry(client):
    html = page(client.get("/help/what-to-do"))
    assert "[[quick-tips]]" not in html
    for s in STATUSES.values():
        section = html[html.index(f'id="tips-{s.key}"'):]
        section = section[:section.index("</section>")]
        for key in STATUS_CAUSES[s.key]:
            cause = CAUSES[key]
            assert str(escape(cause.label)) in section
            if cause.primary:
                assert str(escape(cause.primary.title)) in section
                assert str(escape(cause.primary.text)) in section
    bounced = html[html.index('id="tips-bounced"'):]
    # A policy refusal leads with the allowlist request, a typo with the fix: not one bounce tip.
    assert 'data-cause="policy"' in bounced and "Ask their IT to allowlist" in bounced
    assert "Correct the typo and resend" in bounced


@pytest.mark.parametrize("slug, phrase", [
    ("allowlist", "Create share link"),
    ("providers", "helpdesk_providers(config)"),
    ("what-to-do", "Fix the address and resend"),
])
def test_articles_say_what_their_readers_need(client, slug, phrase):
    assert escape(phrase) in page(client.get(f"/help/{slug}"))


def test_article_search(client):
    html = page(client.get("/help?q=allowlist postmaster"))
    results = html[html.index('id="help-results"'):html.index('id="articles-title"')]
    assert results.index('href="/help/allowlist"') < results.index('href="/help/causes#')
    none = page(client.get("/help?q=zebra-unicorn"))
    assert "Nothing in the help center matches “zebra-unicorn”" in none


def result_links(client, query: str) -> list[str]:
    html = page(client.get("/help", query_string={"q": query}))
    results = html[html.index('id="help-results"'):html.index('id="articles-title"')]
    return re.findall(r'<li data-kind="\w+"><a href="([^"]+)"', results)


@pytest.mark.parametrize("question, first", [
    ("what does sending mean", "/help/statuses#status-sending"),
    ("What does “not opened” mean?", "/help/statuses#status-not_opened"),
    ("mailbox full", "/help/causes#cause-mailbox_full"),
    ("suppression list", "/help/causes#cause-suppressed"),
    ("typo", "/help/causes#cause-typo"),
    ("how do I ask IT to allowlist the sender", "/help/allowlist"),
])
def test_search_finds_the_registries_meanings_and_tips_first_where_they_answer(
        client, question, first):
    assert result_links(client, question)[0] == first


class EmuArticle:
    @hookimpl
    def helpdesk_help_articles(self):
        return [{"slug": "emus", "title": "Flightless mail", "body":
                 "Read [the guide](https://example.org/ostrich-manual) on **emus**.\n\n"
                 "[[status-legend]]"}]


def test_search_reads_the_rendered_text_not_the_markdown(app, client):
    plugins.plugin_manager(app).register(EmuArticle(), name="emu-article")
    try:
        # A link's target is not on the page: not found; its text and the legend are.
        assert "/help/emus" not in result_links(client, "ostrich")
        assert result_links(client, "guide emus")[0] == "/help/emus"
        assert "/help/emus" in result_links(client, "flightless bounced")
    finally:
        plugins.plugin_manager(app).unregister(name="emu-article")


def test_a_search_of_only_common_words_finds_nothing(client):
    assert result_links(client, "what is the") == []


# --- ranking (pure) -----------------------------------------------------------------------------

def doc(title: str, headings: str = "", body: str = "") -> Document:
    return Document("article", title, title.lower().replace(" ", "-"), None, headings, body)


def test_a_word_in_the_title_ranks_above_one_in_a_heading_above_one_in_the_body():
    filler = "Something else entirely, said at some length to make a body. " * 3
    docs = [doc("Body", body=f"{filler} Greylisting happens. {filler}"),
            doc("Greylisting", body=filler + filler),
            doc("Heading", headings="About greylisting", body=filler + filler)]
    assert [h.document.title for h in search(docs, "greylisting")] == \
        ["Greylisting", "Heading", "Body"]


def test_more_mentions_rank_higher_and_every_word_beats_some():
    docs = [doc("One", body="A bounce happened. " + "Other words here. " * 5),
            doc("Many", body="A bounce, a bounce and another bounce. " + "Other words. " * 4),
            doc("Both", body="A bounce at a typo domain. " + "Other words here. " * 4)]
    assert [h.document.title for h in search(docs, "bounce")][0] == "Many"
    assert [h.document.title for h in search(docs, "bounce typo")][0] == "Both"


def test_a_rare_word_counts_more_than_a_common_one():
    docs = [doc(f"Common {i}", body="email email email") for i in range(5)] + \
        [doc("Rare", body="email quarantine")]
    assert search(docs, "email quarantine")[0].document.title == "Rare"


def test_words_are_matched_by_their_stem_and_the_excerpt_is_the_matching_sentence():
    assert {stem(w) for w in ("sending", "sends", "send")} == {"send"}
    assert stem("bounced") == stem("bounces") == stem("bounce")
    assert stem("addresses") == stem("address") and stem("statuses") == stem("status")
    hits = search([doc("A", body="Nothing here. The emails were bounced twice. The end.")],
                  "bounce")
    assert hits[0].excerpt == "The emails were bounced twice."


def test_a_status_found_by_its_name_is_shown_by_its_meaning_not_by_a_tip():
    from helpdesk.causes import CAUSES
    from helpdesk.helpcenter import registry_documents
    from helpdesk.status import STATUSES

    hits = search(registry_documents(STATUSES.values(), CAUSES.values()),
                  "what does sending mean")
    assert hits[0].document.title == STATUSES["sending"].label
    assert STATUSES["sending"].meaning.startswith(hits[0].excerpt.rstrip("…"))


def test_the_recipient_page_links_to_the_help_for_its_status_and_cause(agent_client, sink):
    credential = create_credential("Badge", [{"name": "Ann", "email": "ann@gmial.com"}],
                                   state="published")
    recipient = credential.recipients[0]
    html = page(agent_client.get(f"/recipients/{recipient.id}"))
    status = re.search(r'id="help-status" href="([^"]+)"', html).group(1)
    cause = re.search(r'id="help-cause" href="([^"]+)"', html).group(1)
    assert status == f"/help/statuses#status-{recipient.status}"
    assert cause == f"/help/causes#cause-{recipient.cause}"
    # The anchors exist on those articles.
    assert f'id="status-{recipient.status}"' in page(agent_client.get("/help/statuses"))
    assert f'id="cause-{recipient.cause}"' in page(agent_client.get("/help/causes"))


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
    assert result_links(client, "feathered")[0] == "/help/pigeons"


def test_the_causes_article_shows_every_cause_and_its_actions_from_the_registry(client):
    html = page(client.get("/help/causes"))
    assert "[[causes]]" not in html
    for cause in CAUSES.values():
        assert str(escape(cause.label)) in html and str(escape(cause.explanation)) in html
        assert f'id="cause-{cause.key}"' in html
        for tip in cause.actions:
            assert str(escape(tip.title)) in html


def test_core_articles_name_no_provider(app):
    # SMTP is also the protocol, which any article may speak of; every other name is a service.
    names = {name for name in plugins.providers(app) if name != "smtp"}
    assert {"sendgrid", "mailgun"} <= names
    for article in builtin_articles():
        text = f"{article.title} {article.summary} {article.body}".lower()
        assert not [n for n in names if re.search(rf"\b{re.escape(n)}\b", text)], article.slug


class PigeonProvider:
    @hookimpl
    def helpdesk_providers(self, config):
        return [type("Pigeon", (), {"name": "pigeon", "send": lambda self, message: None})()]


def test_the_providers_article_lists_those_installed(app, client):
    html = page(client.get("/help/providers"))
    assert "[[providers]]" not in html
    for name in plugins.providers(app):
        assert f"<code>{name}</code>" in html
    assert "<code>pigeon</code>" not in html
    plugins.plugin_manager(app).register(PigeonProvider(), name="pigeon-provider")
    plugins.reset_providers(app)
    try:
        assert "<code>pigeon</code>" in page(client.get("/help/providers"))
    finally:
        plugins.plugin_manager(app).unregister(name="pigeon-provider")
        plugins.reset_providers(app)
