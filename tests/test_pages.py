"""The desk's pages through the test client: what an agent sees and what each action does."""
from __future__ import annotations

import csv
import io
import re

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from conftest import POLICY_REFUSAL
from desk_data import HOSTILE_IMG, HOSTILE_SCRIPT, page
from helpdesk.causes import CAUSES
from helpdesk.credentials import create_credential
from helpdesk.models import Delivery, db
from helpdesk.status import STATUSES


def count_in(html: str, status: str) -> int:
    return int(re.search(rf'data-count="{status}">(\d+)<', html).group(1))


def deliveries(recipient) -> int:
    return db.session.scalar(select(func.count()).where(Delivery.recipient_id == recipient.id))


# --- dashboard ----------------------------------------------------------------------------------

def test_dashboard_counts_each_status_with_its_icon_and_label(agent_client, desk):
    html = page(agent_client.get("/"))
    assert count_in(html, "bounced") == 4
    assert count_in(html, "not_opened") == 4
    assert count_in(html, "not_provided") == 1
    assert count_in(html, "not_sent") == 2
    for s in STATUSES.values():
        assert s.label in html and f'href="#{s.icon}"' in html


def test_dashboard_charts_recipients_by_status_and_bounce_domains_as_svg(agent_client, desk):
    html = page(agent_client.get("/"))
    chart = html[html.index('id="status-chart"'):html.index('id="bounce-domains"')]
    # One bar a status, counting recipients (not events), each named in words and leading to
    # those recipients.
    bars = re.findall(r'<a href="/recipients\?status=(\w+)" data-status="\1" '
                      r'aria-label="([^"]+)">', chart)
    assert [key for key, _ in bars] == list(STATUSES)
    assert dict(bars)["bounced"] == "Email is bounced: 4 recipients"
    assert dict(bars)["not_provided"] == "Email is not provided: 1 recipient"
    for s in STATUSES.values():
        assert f'class="chart-text">{s.label}</text>' in chart
    # An axis from nought past the largest count (4 bounced, 4 not opened).
    assert re.findall(r'class="chart-label" aria-hidden="true">([\d,]+)<', chart) == [
        "0", "1", "2", "3", "4"]
    domains = html[html.index('id="bounce-domains"'):html.index('id="recent-problems"')]
    assert "gmial.com</a>: 3 bounced" in domains and "hotmial.com</a>: 1 bounced" in domains
    assert domains.index("gmial.com") < domains.index("hotmial.com")


def test_dashboard_lists_recent_problems_with_a_way_to_act(agent_client, desk):
    html = page(agent_client.get("/"))
    problems = html[html.index('id="recent-problems"'):]
    for name in ("Bob Typo", "Dan Blocked", "Eve Blocked", "Hal Hotmial"):
        assert name in problems
    assert "Ada Lovelace" not in problems  # not opened is not a problem yet
    assert "Frank Draft" not in problems  # a draft is not a problem
    # Each problem's button is its cause's primary action: a typo's fix, not a generic one.
    bob = problems[problems.index("Bob Typo"):]
    assert 'data-cause="typo"' in bob[:1500]
    assert 'data-action="fix_address"' in bob[:2000] and CAUSES["typo"].primary.title in bob


def test_dashboard_empty_state(agent_client):
    html = page(agent_client.get("/"))
    assert "No problems" in html and "No bounces" in html


def test_live_fragment_shows_a_status_change_without_reload(agent_client, desk, sink):
    first = page(agent_client.get("/live/dashboard"))
    version = re.search(r'data-version="(\w+)"', first).group(1)
    assert page(agent_client.get("/live/dashboard")).count(version) == 1  # stable when unchanged
    bob = desk.recipient("Bob Typo")
    agent_client.post(f"/recipients/{bob.id}/resend", data={"email": "bob@gmail.com"})
    second = page(agent_client.get("/live/dashboard"))
    assert version not in second
    assert count_in(second, "bounced") == 3


# --- credentials --------------------------------------------------------------------------------

def test_credentials_list_shows_counts_per_status(agent_client, desk):
    html = page(agent_client.get("/credentials"))
    assert "Data Science Certificate" in html and "Leadership Badge" in html
    assert f'href="/credentials/{desk.course.id}?status=bounced"' in html
    # A draft's email has not gone out yet: the list says when it will.
    rows = {title: row for row in html.split("<tr")[2:]
            for title in ("Data Science Certificate", "Leadership Badge") if title in row}
    assert '<td data-label="Email">sent</td>' in rows["Data Science Certificate"]
    assert '<td data-label="Email">sent when published</td>' in rows["Leadership Badge"]


def test_credential_page_filters_by_status_with_live_counts(agent_client, desk):
    html = page(agent_client.get(f"/credentials/{desk.course.id}?status=bounced"))
    table = html[html.index('id="recipients-table"'):]
    assert table.count('data-status="bounced"') == 4
    assert "Ada Lovelace" not in table
    assert count_in(html, "bounced") == 4 and count_in(html, "not_opened") == 4
    assert "Showing 1–4 of 4" in html


def test_credential_page_searches_name_address_and_domain(agent_client, desk):
    cid = desk.course.id
    assert "Ada Lovelace" in page(agent_client.get(f"/credentials/{cid}?q=lovelace"))
    by_domain = page(agent_client.get(f"/credentials/{cid}?q=gmial.com"))
    table = by_domain[by_domain.index('id="recipients-table"'):]
    assert table.count("<tr data-recipient") == 3
    # the counts follow the search
    assert count_in(by_domain, "bounced") == 3 and count_in(by_domain, "not_opened") == 0
    nothing = page(agent_client.get(f"/credentials/{cid}?q=nobody-like-this"))
    assert "No recipient" in nothing and "matches “nobody-like-this”" in nothing


def test_search_treats_like_wildcards_as_text(agent_client, desk):
    html = page(agent_client.get(f"/credentials/{desk.course.id}?q=%25"))
    assert 'id="recipients-table"' not in html


def test_credential_page_sorts_and_pages(app, agent_client, desk):
    app.config["PAGE_SIZE"] = 3
    cid = desk.course.id
    first = page(agent_client.get(f"/credentials/{cid}?sort=email"))
    emails = re.findall(r"<td><bdi>([^<@\s]+@[^<\s]+)", first)
    assert emails == ["ada@example.com", "bob@gmial.com", "dan@gmial.com"]
    assert "Page 1 of 3" in first and 'rel="next"' in first
    third = page(agent_client.get(f"/credentials/{cid}?sort=email&page=3"))
    assert re.findall(r"<td><bdi>([^<@\s]+@[^<\s]+)", third) == [
        "img@example.com", "script@example.com"]
    assert 'rel="prev"' in third and 'rel="next"' not in third
    descending = page(agent_client.get(f"/credentials/{cid}?sort=-email"))
    assert re.findall(r"<td><bdi>([^<@\s]+@[^<\s]+)", descending)[0] == "script@example.com"
    assert 'aria-sort="descending"' in descending


@pytest.mark.parametrize("query, message", [
    ("status=lost", "unknown status"),
    ("sort=shoe", "unknown sort"),
    ("page=0", "page must be a whole number"),
    ("page=x", "page must be a whole number"),
])
def test_bad_filters_are_400_with_the_reason(agent_client, desk, query, message):
    response = agent_client.get(f"/credentials/{desk.course.id}?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_export_csv_is_the_filtered_list_with_formulas_defused(agent_client, desk):
    response = agent_client.get(f"/credentials/{desk.course.id}/export.csv?status=not_opened")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["email"] for r in rows} == {"ada@example.com", "img@example.com",
                                          "script@example.com", "formula@example.com"}
    formula = next(r for r in rows if r["email"] == "formula@example.com")
    assert formula["name"] == "'=HYPERLINK(\"http://evil.example\")"
    assert {r["status_label"] for r in rows} == {STATUSES["not_opened"].label}
    assert {(r["cause"], r["cause_label"]) for r in rows} == {("not_opened",
                                                                "Delivered, not opened")}
    hostile = next(r for r in rows if r["email"] == "img@example.com")
    assert hostile["name"] == HOSTILE_IMG  # CSV keeps text as it is


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("Ada", "Ada"), ("", ""), (None, ""), ("a=b", "a=b"),
])
def test_csv_safe(value, expected):
    from helpdesk.importer import csv_safe

    assert csv_safe(value) == expected


def test_resend_all_in_a_status_sends_each_again(agent_client, desk, sink):
    before = len(sink.messages)
    response = agent_client.post(f"/credentials/{desk.course.id}/resend",
                                 data={"status": "not_opened"}, follow_redirects=True)
    html = page(response)
    assert "Sending again to 4 recipients" in html
    assert len(sink.messages) == before + 4
    assert deliveries(desk.recipient("Ada Lovelace")) == 2


def test_resend_all_refuses_a_status_that_cannot_be_resent(agent_client, desk):
    response = agent_client.post(f"/credentials/{desk.course.id}/resend",
                                 data={"status": "opened"})
    assert response.status_code == 400


def test_resend_all_is_offered_only_for_a_filtered_resendable_status(agent_client, desk):
    cid = desk.course.id
    assert 'id="resend-status-form"' not in page(agent_client.get(f"/credentials/{cid}"))
    bounced = page(agent_client.get(f"/credentials/{cid}?status=bounced"))
    # All four bounced at misspelled domains: resending them unchanged is on purpose only.
    assert "Send again to these 4 anyway" in bounced
    assert 'id="resend-status-form"' not in page(
        agent_client.get(f"/credentials/{cid}?status=not_provided"))


def test_unknown_credential_is_404(agent_client):
    assert agent_client.get("/credentials/999").status_code == 404


# --- recipients ---------------------------------------------------------------------------------

def test_recipient_timeline_shows_each_event_with_time_provider_and_reply(agent_client, desk):
    bob = desk.recipient("Bob Typo")
    html = page(agent_client.get(f"/recipients/{bob.id}"))
    timeline = html[html.index('id="timeline"'):]
    assert 'data-event="queued"' in timeline and 'data-event="bounced"' in timeline
    assert "550 5.1.1 &lt;bob@gmial.com&gt;: Recipient address rejected" in timeline
    assert "(smtp)" in timeline and "<time datetime=" in timeline
    assert escape(STATUSES["bounced"].meaning) in html


def test_bounce_offers_the_fix_with_the_suggestion_filled_in(agent_client, desk):
    bob = desk.recipient("Bob Typo")
    html = page(agent_client.get(f"/recipients/{bob.id}"))
    assert "Did you mean <strong>bob@gmail.com</strong>" in html
    assert re.search(r'id="fix-email"[^>]*value="bob@gmail.com"', html)


def test_fixing_the_address_resends_to_it(agent_client, desk, sink):
    bob = desk.recipient("Bob Typo")
    response = agent_client.post(f"/recipients/{bob.id}/resend", data={"email": "bob@gmail.com"})
    assert response.status_code == 303
    db.session.refresh(bob)
    assert bob.email == "bob@gmail.com" and bob.status == "not_opened"
    assert sink.messages[-1].recipients == ["bob@gmail.com"]
    html = page(agent_client.get(f"/recipients/{bob.id}"))
    assert "Resend to <bdi>bob@gmail.com</bdi>" in html and "Send to <bdi>bob@gmial.com</bdi>" in html


def test_a_malformed_fixed_address_is_refused_and_changes_nothing(agent_client, desk, sink):
    bob = desk.recipient("Bob Typo")
    before = len(sink.messages)
    response = agent_client.post(f"/recipients/{bob.id}/resend", data={"email": "bob@@x"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Not sent:" in html and 'value="bob@@x"' in html
    db.session.expire_all()
    assert desk.recipient("Bob Typo").email == "bob@gmial.com"
    assert deliveries(bob) == 1 and len(sink.messages) == before


def test_a_drafts_recipient_offers_publishing_not_a_silent_send(agent_client, desk, sink):
    frank = desk.recipient("Frank Draft")
    html = page(agent_client.get(f"/recipients/{frank.id}"))
    assert 'id="send-now-form"' not in html and 'id="publish-and-send"' in html
    assert "its emails go out to every recipient when it is published" in html
    response = agent_client.post(f"/recipients/{frank.id}/resend")
    assert response.status_code == 400
    assert "“Leadership Badge” is a draft: publish it to send its emails" in response.text
    db.session.refresh(frank)
    assert frank.credential.state.value == "draft" and not frank.deliveries
    assert not [m for m in sink.messages if "frank@acme.example" in m.recipients]


def test_a_first_send_says_send_not_sending_again(agent_client, sink):
    from helpdesk.credentials import create_credential

    quiet = create_credential("Quiet", [{"name": "Ann", "email": "ann@valley.example"}],
                              state="published", send_email=False)
    ann = quiet.recipients[0]
    html = page(agent_client.get(f"/recipients/{ann.id}"))
    form = html[html.index('id="send-now-form"'):]
    assert ">Send</button>" in form[:600]
    html = page(agent_client.post(f"/recipients/{ann.id}/resend", follow_redirects=True))
    assert "Sending to <bdi>ann@valley.example</bdi>." in html and "again" not in html.split("flashes")[1][:200]
    db.session.refresh(ann)
    assert ann.status == "not_opened" and [d.kind for d in ann.deliveries] == ["send"]


def test_not_opened_offers_a_nudge_with_the_last_send_date(agent_client, desk, sink):
    ada = desk.recipient("Ada Lovelace")
    html = page(agent_client.get(f"/recipients/{ada.id}"))
    nudge = html[html.index('id="nudge-form"'):]
    assert "Last sent <time datetime=" in nudge
    agent_client.post(f"/recipients/{ada.id}/resend", data={"kind": "nudge"})
    db.session.refresh(ada)
    assert [d.kind for d in ada.deliveries] == ["send", "nudge"]


def test_a_recipient_without_address_is_asked_for_one(agent_client, desk):
    carol = desk.recipient("Carol Noaddress")
    html = page(agent_client.get(f"/recipients/{carol.id}"))
    assert 'id="fix-address-form"' in html and "No email has been sent" in html


def test_a_refusal_by_policy_leads_with_the_allowlist_request(app, agent_client, sink):
    homer = create_credential("Safety Badge", [{"name": "Homer", "email": "homer@globex.example"}],
                              state="published").recipients[0]
    html = page(agent_client.get(f"/recipients/{homer.id}"))
    assert 'data-cause="policy"' in html and str(escape(POLICY_REFUSAL)) in html
    tips = html[html.index('id="actions"'):]
    assert tips.index('id="allowlist-tip"') < tips.index('id="resend-form"')
    assert 'id="fix-address-form"' not in tips  # the address is right: fixing it bounces again
    assert "credentials@issuer.example" in tips  # the real SENDER
    assert 'href="/domains/globex.example#allowlist"' in tips


def test_a_typo_domain_leads_with_the_fix_never_the_allowlist(app, agent_client, desk):
    dan = desk.recipient("Dan Blocked")  # three bounces at gmial.com: a typo, not a company
    html = page(agent_client.get(f"/recipients/{dan.id}"))
    assert 'data-cause="typo"' in html
    assert 'id="allowlist-tip"' not in html
    assert 'value="dan@gmail.com"' in html[html.index('id="fix-address-form"'):]


def test_recipient_live_fragment_follows_the_status(agent_client, desk):
    frank = desk.recipient("Frank Draft")
    before = page(agent_client.get(f"/recipients/{frank.id}/live"))
    assert 'id="recipient-live"' in before and 'data-status="not_sent"' in before
    agent_client.post(f"/credentials/{desk.draft.id}/publish")
    after = page(agent_client.get(f"/recipients/{frank.id}/live"))
    assert 'data-status="not_opened"' in after
    assert 'data-announce="Status: Email is not opened"' in after


def test_bad_resend_kind_is_400(agent_client, desk):
    ada = desk.recipient("Ada Lovelace")
    assert agent_client.post(f"/recipients/{ada.id}/resend",
                             data={"kind": "spam"}).status_code == 400


# --- lookup -------------------------------------------------------------------------------------

@pytest.mark.parametrize("q, names", [
    ("ada@example.com", {"Ada Lovelace"}),
    ("Lovelace", {"Ada Lovelace"}),
    ("gmial.com", {"Bob Typo", "Dan Blocked", "Eve Blocked"}),
    ("acme.example", {"Frank Draft", "Grace Draft"}),
])
def test_lookup_finds_by_address_name_and_domain(agent_client, desk, q, names):
    html = page(agent_client.get("/lookup", query_string={"q": q}))
    found = set(re.findall(r'<h2><a href="/recipients/\d+"><bdi>([^<]+)</bdi></a>', html))
    assert found == names


def test_lookup_finds_by_credential_id(agent_client, desk):
    html = page(agent_client.get("/lookup", query_string={"q": str(desk.draft.id)}))
    assert "Frank Draft" in html and "Grace Draft" in html
    assert 'id="lookup-credential"' in html


def test_lookup_shows_the_status_the_cause_and_its_tips_primary_first(agent_client, desk):
    html = page(agent_client.get("/lookup?q=bob@gmial.com"))
    assert escape(STATUSES["bounced"].meaning) in html
    assert CAUSES["typo"].label in html
    titles = [tip.title for tip in CAUSES["typo"].actions]
    assert [html.index(t) for t in titles] == sorted(html.index(t) for t in titles)


def test_lookup_explains_each_status_and_cause_found_once(agent_client, desk):
    html = page(agent_client.get("/lookup?q=gmial.com"))
    results = re.findall(r'<li class="card result" data-recipient="\d+" data-status="(\w+)"', html)
    causes = re.findall(r'<span class="cause" data-cause="(\w+)"', html)
    explained = re.findall(r'data-advice-status="(\w+)" data-advice-cause="(\w+)"', html)
    assert len(results) == 3 and len(set(zip(results, causes))) < 3  # two share a cause
    assert explained == list(dict.fromkeys(zip(results, causes)))
    assert html.count('<ol class="tips"') == len(explained)
    for status, cause in explained:
        assert f'href="#advice-{status}-{cause}"' in html


def test_lookup_suggests_a_likely_typo(agent_client, desk):
    html = page(agent_client.get("/lookup?q=someone@gmial.com"))
    assert 'id="did-you-mean"' in html and "someone@gmail.com" in html
    assert "No recipient matches" in html


def test_lookup_from_the_top_bar_on_every_page(agent_client, desk):
    assert 'id="topbar-q"' in page(agent_client.get("/credentials"))


def test_lookup_empty(agent_client):
    assert "Type an email address" in page(agent_client.get("/lookup"))


# --- escaping, errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/credentials/{cid}", "/recipients/{rid}", "/lookup?q=example.com",
                                  "/domains/example.com", "/credentials/{cid}/live"])
def test_hostile_names_are_escaped(agent_client, desk, path):
    rid = desk.recipient(HOSTILE_IMG).id
    html = page(agent_client.get(path.format(cid=desk.course.id, rid=rid)))
    if path == "/":
        return  # the dashboard lists only problems; the hostile names are not among them
    assert HOSTILE_IMG not in html and HOSTILE_SCRIPT not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html or "&lt;script&gt;" in html


def test_hostile_recipient_page_is_escaped(agent_client, desk):
    for name in (HOSTILE_IMG, HOSTILE_SCRIPT):
        html = page(agent_client.get(f"/recipients/{desk.recipient(name).id}"))
        assert name not in html
        assert "<script>alert" not in html


def test_error_pages_are_html_for_people_and_json_under_api(agent_client):
    response = agent_client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "Page not found" in response.get_data(as_text=True)
    api = agent_client.get("/api/no-such-thing")
    assert api.status_code == 404 and "error" in api.get_json()


def test_a_server_error_is_a_clear_500_page(app, agent_client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom-for-test")
    def boom():
        raise RuntimeError("kaboom")

    response = agent_client.get("/boom-for-test")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong on our side" in html and "kaboom" not in html


def test_actions_flash_what_they_did(agent_client, desk):
    ada = desk.recipient("Ada Lovelace")
    html = page(agent_client.post(f"/recipients/{ada.id}/resend", follow_redirects=True))
    assert 'id="flashes"' in html and "Sending again to <bdi>ada@example.com</bdi>" in html


def test_optional_nav_entries_appear_only_when_their_pages_exist(agent_client):
    html = page(agent_client.get("/"))
    assert ("Fix typos" in html) == ("typos.index" in agent_client.application.view_functions)


# --- publishing a draft -------------------------------------------------------------------------

def test_publishing_a_draft_from_its_page_sends_the_emails(agent_client, sink):
    from helpdesk.credentials import create_credential

    draft = create_credential("Draft badge", [{"name": "Ann", "email": "ann@valley.example"},
                                              {"name": "Bob", "email": "bob@gmial.com"}])
    html = page(agent_client.get(f"/credentials/{draft.id}"))
    assert 'id="publish-link"' in html and "Publish and send…" in html
    confirm = page(agent_client.get(f"/credentials/{draft.id}/publish"))
    assert "Publishing it emails 2 recipients at once." in confirm
    assert ">Publish and send 2 emails</button>" in confirm and not sink.messages
    response = agent_client.post(f"/credentials/{draft.id}/publish")
    assert response.status_code == 303
    html = page(agent_client.get(response.headers["Location"]))
    assert "2 emails queued" in html and 'id="publish-link"' not in html
    assert count_in(html, "not_opened") == 1 and count_in(html, "bounced") == 1
    assert [m.recipients for m in sink.messages] == [["ann@valley.example"]]
    again = agent_client.post(f"/credentials/{draft.id}/publish", follow_redirects=True)
    assert "already published" in again.get_data(as_text=True)
    assert len(sink.messages) == 1
