"""The desk in a real browser: Playwright drives Debian's chromium against a real server (werkzeug
on loopback), a real queue (SQLite, worked by a Huey consumer) and the real SMTP sink, which
refuses the typo domains and, until its IT allowlists the sender, one company's domain.

Every page a test opens is watched: a console error, an uncaught script error, a Content
Security Policy violation or an alert fails the test. Screenshots of each step go to
``test-artifacts/screenshots/``."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser_checks import assert_fits, watched_context
from browser_server import LiveServer, Worker, drain_queue
from conftest import PASSWORD
from desk_data import HOSTILE_IMG
from helpdesk.auth import create_user
from helpdesk.credentials import create_credential
from helpdesk.models import Recipient, db
from helpdesk.sink import SmtpSink, free_port
from helpdesk.status import BOUNCED, STATUSES

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api",
                             reason="the test extra installs playwright").expect

# Live regions poll every 3 to 5 seconds; a status change must show within a few polls.
LIVE_TIMEOUT_MS = 20_000

AGENT = "agent@issuer.example"
SENDER = "credentials@issuer.example"
ORGANISATION = "Example Academy"
COMPANY = "initech.example"  # its mail server refuses our sender until its IT allowlists it
COMPANY_REFUSAL = "550 5.7.1 Sender address rejected: not on the allowlist"


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def company_sink():
    refuse = {"gmial.com": None, "hotmial.com": None, COMPANY: COMPANY_REFUSAL}
    with SmtpSink(refuse_domains=refuse) as sink:
        yield sink


@dataclass
class Desk:
    app: object
    url: str
    worker: Worker
    sink: SmtpSink

    def recipient_id(self, name: str) -> int:
        with self.app.app_context():
            return db.session.scalar(db.select(Recipient.id).where(Recipient.name == name))

    def bounced_names(self) -> set[str]:
        with self.app.app_context():
            return set(db.session.scalars(db.select(Recipient.name)
                                          .where(Recipient.status == BOUNCED)))


def build_data() -> None:
    """Two published credentials, sent for real: a typo at gmial.com and one at hotmial.com,
    three people at a company that blocks the sender, people whose email went through, one
    without an address, and one whose name is an HTML injection attempt."""
    create_credential("Data Science Certificate", [
        {"name": "Ada Lovelace", "email": "ada@example.com"},
        {"name": "Sam Someone", "email": "someone@gmial.com"},
        {"name": "Carol Noaddress", "email": None},
        {"name": HOSTILE_IMG, "email": "img@example.com"},
        {"name": "Ivy Initech", "email": f"ivy@{COMPANY}"},
        {"name": "Jon Initech", "email": f"jon@{COMPANY}"},
    ], state="published")
    create_credential("Leadership Badge", [
        {"name": "Kim Initech", "email": f"kim@{COMPANY}"},
        {"name": "Hal Hotmial", "email": "hal@hotmial.com"},
        {"name": "Lea Lovelace", "email": "lea@example.com"},
    ], state="published")
    create_user(AGENT, PASSWORD, "agent")


@pytest.fixture
def desk(app_factory, company_sink, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = app_factory(company_sink, WTF_CSRF_ENABLED=True, BASE_URL=url, SENDER=SENDER,
                      ORGANISATION=ORGANISATION, QUEUE_URL=str(tmp_path / "queue.db"))
    with app.app_context():
        build_data()
        drain_queue(app)  # the first sends, done before the test starts: settled statuses
    worker = Worker(app)
    with LiveServer(app, port):
        yield Desk(app, url, worker, company_sink)
        worker.stop()


@pytest.fixture
def page(browser, desk, watch):
    context = watched_context(browser, desk.url, watch)
    yield context.new_page()
    context.close()
    assert watch.problems() == []


def sign_in(page) -> None:
    page.goto("/login")
    page.fill("#email", AGENT)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("#current-user")).to_have_text(AGENT)


def mark_page(page) -> None:
    """A marker that disappears if the page reloads or navigates."""
    page.evaluate("window.__noReload = 'still here'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") == "still here"


def status_of(page, scope: str):
    return page.locator(f"{scope} .status").first


def label(key: str) -> str:
    return STATUSES[key].label


# --- the flow ---------------------------------------------------------------------------

def test_fix_a_typo_and_watch_the_status_go_from_sending_to_not_opened(page, desk, shot):
    sign_in(page)
    shot(page, "dashboard")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Credentials").click()
    page.get_by_role("link", name="Data Science Certificate").click()
    expect(page.locator("h1")).to_have_text("Data Science Certificate")

    page.locator("#status-filters a[data-status=bounced]").click()
    expect(page).to_have_url(re.compile(r"status=bounced"))
    rows = page.locator("#recipients-table tbody tr")
    expect(rows).to_have_count(3)  # Sam at the typo, Ivy and Jon at the blocking company
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {"bounced"}
    expect(page.locator("#status-filters [data-count=bounced]")).to_have_text("3")
    shot(page, "filtered-to-bounced")
    with page.expect_download() as download:  # the export follows the filter
        page.locator("#export-csv").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert len(exported.splitlines()) == 1 + 3 and "someone@gmial.com" in exported
    assert "ada@example.com" not in exported

    page.get_by_role("link", name="Sam Someone").click()
    expect(page.locator("#recipient-status")).to_have_attribute("data-status", "bounced")
    expect(page.locator("#timeline [data-event=bounced]")).to_contain_text("550")
    expect(page.locator("#suggestion")).to_contain_text("someone@gmail.com")
    expect(page.locator("#fix-email")).to_have_value("someone@gmail.com")  # filled in for us
    shot(page, "bounced-recipient-with-suggestion")

    page.locator("#fix-address-form").get_by_role("button").click()
    expect(page.locator("#flashes")).to_contain_text("Sending again to someone@gmail.com")
    expect(page.locator("#recipient-email")).to_contain_text("someone@gmail.com")
    expect(status_of(page, "#recipient-status")).to_have_text(label("sending"))
    mark_page(page)
    shot(page, "sending")

    desk.worker.start()  # the queue moves only now, so "Sending" was really seen first
    expect(status_of(page, "#recipient-status")).to_have_text(label("not_opened"),
                                                              timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    expect(page.locator("#recipient-status")).to_have_attribute("data-status", "not_opened")
    expect(page.locator("#live-announcer")).to_have_text(f"Status: {label('not_opened')}")
    # Both emails stay on the timeline: the new one to the fixed address, the bounce before it.
    deliveries = page.locator("#timeline article.delivery")
    expect(deliveries).to_have_count(2)
    expect(deliveries.first).to_contain_text("someone@gmail.com")
    expect(deliveries.first).to_have_attribute("data-status", "not_opened")
    expect(deliveries.last).to_contain_text("someone@gmial.com")
    expect(deliveries.last).to_have_attribute("data-status", "bounced")
    expect(page.locator("#nudge-form")).to_be_visible()  # the not-opened tip is offered now
    shot(page, "not-opened-without-reload")
    assert [m.recipients for m in desk.sink.messages][-1] == ["someone@gmail.com"]


def test_a_share_link_shows_an_anonymous_visitor_only_that_domains_emails(
        browser, page, desk, watch, shot):
    sign_in(page)
    page.goto(f"/domains/{COMPANY}")
    expect(page.locator("#allowlist")).to_be_visible()
    page.locator("#share-form button").click()
    link = page.locator("#share-link a")
    share_url = link.get_attribute("href")
    assert share_url.startswith(f"{desk.url}/share/")
    expect(page.locator("#it-message")).to_have_value(re.compile(re.escape(share_url)))
    shot(page, "share-link-created")

    visitor = watched_context(browser, desk.url, watch)
    try:
        anonymous = visitor.new_page()
        anonymous.goto(share_url)
        expect(anonymous.locator("h1")).to_have_text(f"Credential emails to {COMPANY}")
        emails = anonymous.locator("#share-table tbody tr td:nth-child(2)").all_inner_texts()
        assert sorted(emails) == [f"ivy@{COMPANY}", f"jon@{COMPANY}", f"kim@{COMPANY}"]
        expect(anonymous.locator("#status-counts [data-count=bounced]")).to_have_text("3")
        assert "gmial.com" not in anonymous.content()
        # Nothing to change, and no way into the desk from here.
        expect(anonymous.locator("form, input, textarea, select, button")).to_have_count(0)
        hrefs = anonymous.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
        assert all(h.startswith(desk.url + "/share/") or "#" in h for h in hrefs), hrefs
        expect(anonymous.locator("#current-user")).to_have_count(0)
        shot(anonymous, "anonymous-share-page")

        anonymous.goto("/credentials")  # the same visitor is not signed in anywhere else
        expect(anonymous).to_have_url(re.compile(r"/login"))
    finally:
        visitor.close()


def test_a_recipient_named_like_html_shows_as_text_even_after_a_live_update(
        page, desk, watch, shot):
    sign_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Credentials").click()
    page.get_by_role("link", name="Data Science Certificate").click()
    hostile_link = page.locator("#recipients-table").get_by_role("link", name=HOSTILE_IMG,
                                                                 exact=True)
    expect(hostile_link).to_have_text(HOSTILE_IMG)
    row = f"#recipients-table tr[data-recipient='{desk.recipient_id(HOSTILE_IMG)}']"
    expect(status_of(page, row)).to_have_text(label("not_opened"))
    mark_page(page)

    # A change the page picks up on its own: the live region is parsed and swapped in afresh.
    with desk.app.app_context():
        from helpdesk import publishing

        publishing.resend(db.session.get(Recipient, desk.recipient_id(HOSTILE_IMG)))
    expect(status_of(page, row)).to_have_text(label("sending"), timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    expect(hostile_link).to_have_text(HOSTILE_IMG)
    expect(page.locator("img")).to_have_count(0)
    shot(page, "credential-list-after-live-update")

    hostile_link.click()
    expect(page.locator("h1")).to_have_text(HOSTILE_IMG)
    assert HOSTILE_IMG in page.title()
    expect(page.locator("img")).to_have_count(0)
    shot(page, "recipient-page")

    page.fill("#topbar-q", "img@example.com")
    page.locator("#topbar-q").press("Enter")
    expect(page.locator("#lookup-results h2 a")).to_have_text(HOSTILE_IMG)
    expect(page.locator("img")).to_have_count(0)
    shot(page, "lookup")
    assert watch.dialogs == [] and watch.csp_violations == []


# --- the "done when" journey --------------------------------------------------------------------

def test_a_new_user_finds_fixes_and_resends_every_bounce_and_reads_the_statuses(
        browser, page, desk, watch, shot):
    bounced = desk.bounced_names()
    assert bounced == {"Sam Someone", "Hal Hotmial", "Ivy Initech", "Jon Initech", "Kim Initech"}
    desk.worker.start()
    sign_in(page)
    expect(page.locator("#status-counts [data-count=bounced]")).to_have_text("5")

    # Find every bounced recipient: each credential's bounced count leads to its list.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Credentials").click()
    found = set()
    for index in range(page.locator("#credentials-table tbody tr").count()):
        page.goto("/credentials")
        bounced_link = page.locator("#credentials-table tbody tr").nth(index) \
            .locator("a[href*='status=bounced']")
        if bounced_link.count():
            bounced_link.click()
            found |= set(page.locator("#recipients-table tbody tr td:first-child a")
                         .all_inner_texts())
            shot(page, f"bounced-in-credential-{index + 1}")
    assert found == bounced

    # The typos: the suggested address is filled in; accept it and resend.
    for name, fixed in (("Sam Someone", "someone@gmail.com"), ("Hal Hotmial", "hal@hotmail.com")):
        page.goto(f"/recipients/{desk.recipient_id(name)}")
        expect(page.locator("#fix-email")).to_have_value(fixed)
        expect(page.locator("#allowlist-tip")).to_have_count(0)  # one bounce: not a blocked sender
        page.locator("#fix-address-form").get_by_role("button").click()
        expect(status_of(page, "#recipient-status")).to_have_text(label("not_opened"),
                                                                  timeout=LIVE_TIMEOUT_MS)
    shot(page, "typo-fixed")

    # The company: a recipient there points to the allowlist request for its IT.
    page.goto(f"/recipients/{desk.recipient_id('Ivy Initech')}")
    expect(page.locator("#allowlist-tip")).to_contain_text(f"3 emails to {COMPANY} bounced")
    expect(page.locator("#sender-address")).to_have_text(SENDER)
    shot(page, "allowlist-tip")
    page.get_by_role("link", name=f"Prepare the request for {COMPANY}").click()
    expect(page.locator("#allowlist")).to_be_visible()
    page.locator("#share-form button").click()
    share_url = page.locator("#share-link a").get_attribute("href")
    message = page.locator("#it-message").input_value()
    assert SENDER in message and share_url in message and COMPANY_REFUSAL in message
    mailto = page.locator("#mailto-it").get_attribute("href")
    assert mailto.startswith(f"mailto:postmaster@{COMPANY}?subject=")
    shot(page, "allowlist-request")

    visitor = watched_context(browser, desk.url, watch)
    try:
        it_page = visitor.new_page()
        it_page.goto(share_url)
        expect(it_page.locator("#share-table tbody tr")).to_have_count(3)
        expect(it_page.locator("#share-table tbody tr[data-status=bounced]")).to_have_count(3)
        expect(it_page.locator("form, input, textarea, select, button")).to_have_count(0)
        shot(it_page, "it-reads-the-share-link")

        # Their IT allowlists the sender; the agent resends everything that bounced there.
        desk.sink.refuse_domains.pop(COMPANY)
        page.locator("#resend-bounced-form button").click()
        expect(page.locator("#flashes")).to_contain_text(f"Sending again to 3 bounced "
                                                         f"recipients at {COMPANY}")
        assert [d for d in watch.dialogs if d[0] == "confirm"] == [
            ("confirm", f"Send the email again to the bounced recipients at {COMPANY}?")]

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
        expect(page.locator("h1")).to_have_text("Dashboard")
        mark_page(page)
        expect(page.locator("#status-counts [data-count=bounced]")).to_have_text(
            "0", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#status-counts [data-count=sending]")).to_have_text(
            "0", timeout=LIVE_TIMEOUT_MS)
        assert_not_reloaded(page)
        assert desk.bounced_names() == set()
        shot(page, "dashboard-nothing-bounced")

        it_page.reload()  # their IT sees the emails arrive
        expect(it_page.locator("#share-table tbody tr[data-status=not_opened]")).to_have_count(3)
        shot(it_page, "it-sees-the-emails-arrive")
    finally:
        visitor.close()

    # The help center explains every status.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Help").click()
    page.get_by_role("link", name="What the email statuses mean").click()
    legend = page.locator("article .legend")
    for status in STATUSES.values():
        entry = legend.locator(f"#status-{status.key}")
        expect(entry.locator("dt")).to_have_text(status.label)
        expect(entry.locator("dd")).to_have_text(status.meaning)
    shot(page, "help-statuses")


# --- every page, for errors and looks -----------------------------------------------------------

def test_every_page_loads_without_console_errors_or_csp_violations(page, desk, watch, shot):
    sam = desk.recipient_id("Sam Someone")
    page.goto("/login")
    shot(page, "login")
    sign_in(page)
    pages = [
        ("dashboard", "/", "Dashboard"),
        ("credentials", "/credentials", "Credentials"),
        ("credential", "/credentials/1", "Data Science Certificate"),
        ("recipient", f"/recipients/{sam}", "Sam Someone"),
        ("lookup-typo", "/lookup?q=someone%40gmial.com", "Look up a recipient"),
        ("domains", "/domains", "Domains"),
        ("domain", f"/domains/{COMPANY}", COMPANY),
        ("help", "/help", "Help center"),
        ("help-what-to-do", "/help/what-to-do", None),
        ("help-allowlist", "/help/allowlist", None),
    ]
    for step, path, heading in pages:
        response = page.goto(path)
        assert response.status == 200, (path, response.status)
        if heading:
            expect(page.locator("h1")).to_have_text(heading)
        shot(page, step)
    page.goto("/lookup?q=someone%40gmial.com")
    expect(page.locator("#did-you-mean")).to_contain_text("someone@gmail.com")
    expect(page.locator("#lookup-results [data-status=bounced]")).to_have_count(1)
    page.goto("/")
    with page.expect_response(lambda r: "/live/dashboard" in r.url) as poll:
        pass  # the dashboard polls on its own; that answer must be fine too
    assert poll.value.status == 200
    assert watch.problems() == []


def test_opening_a_message_in_the_outbox_loads_its_pixel_and_the_recipient_turns_opened(
        page, desk, shot):
    desk.app.extensions["helpdesk_sink"] = desk.sink  # as `helpdesk demo` runs it
    ada = desk.recipient_id("Ada Lovelace")
    sign_in(page)
    page.goto(f"/recipients/{ada}")
    expect(page.locator("#recipient-status")).to_contain_text(STATUSES["not_opened"].label)
    page.goto("/outbox")
    page.locator("tr", has_text="ada@example.com").get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("Data Science Certificate")
    page.wait_for_load_state("networkidle")  # the message's images, its pixel among them
    shot(page, "message-opened")
    page.goto(f"/recipients/{ada}")
    expect(page.locator("#recipient-status")).to_contain_text(STATUSES["opened"].label)
    expect(page.locator("#timeline")).to_contain_text("tracking pixel")


# --- editing, deleting, publishing (issue 13) ---------------------------------------------------

@pytest.mark.parametrize("width", [1280, 390])
def test_an_agent_corrects_an_opened_recipient_and_publishes_a_draft_on_purpose(
        page, desk, shot, width):
    page.set_viewport_size({"width": width, "height": 900})
    with desk.app.app_context():
        create_credential("Safety Course", [{"name": "Pat Draft", "email": "pat@example.com"},
                                            {"name": "Quinn Draft", "email": "quinn@example.com"}])
    sign_in(page)
    ada = desk.recipient_id("Ada Lovelace")
    page.goto(f"/recipients/{ada}")
    page.locator("#edit-recipient").click()
    expect(page.locator("h1")).to_have_text("Edit the recipient")
    page.fill("#edit-email", "ada@gmial.com")
    shot(page, f"edit-{width}")
    page.locator("#save-recipient").click()
    expect(page.locator("#typo-review")).to_contain_text("Did you mean ada@gmail.com?")
    shot(page, f"edit-typo-review-{width}")
    page.locator("#use-suggestion").click()
    expect(page.locator("#flashes")).to_contain_text("Sending again to ada@gmail.com.")
    expect(page.locator("#recipient-email")).to_contain_text("ada@gmail.com")
    expect(page.locator("#audit-trail li").first).to_contain_text(f"{AGENT} resent Ada Lovelace")
    shot(page, f"edited-and-resent-{width}")

    pat = desk.recipient_id("Pat Draft")
    page.goto(f"/recipients/{pat}")
    expect(page.locator("#draft-note")).to_contain_text("“Safety Course” is a draft")
    expect(page.locator("#send-now-form")).to_have_count(0)
    page.locator("#publish-and-send").click()
    expect(page.locator("#confirm")).to_contain_text("Publishing it emails 2 recipients at once.")
    shot(page, f"publish-confirm-{width}")
    page.locator("#confirm-button").click()
    expect(page.locator("#flashes")).to_contain_text("Published “Safety Course”; 2 emails queued.")

    page.get_by_role("link", name="Quinn Draft").click()
    page.locator("#delete-recipient").click()
    expect(page.locator("h1")).to_have_text("Delete Quinn Draft <quinn@example.com>?")
    page.locator("#confirm-button").click()
    expect(page.locator("#flashes")).to_contain_text("Deleted Quinn Draft <quinn@example.com>.")
    expect(page.get_by_role("link", name="Quinn Draft")).to_have_count(0)
    shot(page, f"after-delete-{width}")


@pytest.mark.parametrize("width", [1280, 390])
def test_an_agent_filters_all_recipients_and_resends_a_subset(page, desk, shot, width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page)
    page.locator("#status-counts [data-status=bounced] a").click()
    expect(page).to_have_url(re.compile(r"/recipients\?status=bounced"))
    rows = page.locator("#recipients-table tbody tr")
    expect(rows).to_have_count(5)  # Sam, Ivy, Jon, Kim and Hal across both credentials
    assert_fits(page)
    shot(page, f"recipients-bounced-{width}")
    page.fill("#f-domain", COMPANY)
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(3)
    expect(page.locator("#recipients-table [data-label=Reason]").first).to_contain_text(
        "policy", ignore_case=True)
    page.locator("#bulk-all").check()
    page.locator("#bulk-submit").click()
    expect(page.locator("#flashes")).to_contain_text("Sending again to 3 of the 3 recipients chosen")
    assert_fits(page)
    shot(page, f"recipients-resent-{width}")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_dashboard_chart_counts_recipients_and_each_bar_leads_to_them(page, desk, shot, width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page)
    chart = page.locator("#status-chart")
    # Each bar says in words what it counts: recipients now, not events.
    bars = chart.get_by_role("link")
    expect(bars).to_have_count(len(STATUSES))
    bounced = chart.get_by_role("link", name=f"{label('bounced')}: 5 recipients")
    expect(bounced).to_have_count(1)
    expect(chart.get_by_role("link", name=f"{label('not_provided')}: 1 recipient")).to_have_count(1)
    for status in STATUSES.values():
        expect(chart.locator(f"a[data-status={status.key}] text").first).to_have_text(status.label)
    assert chart.locator(".chart-label").all_text_contents() == ["0", "1", "2", "3", "4", "5"]
    assert_fits(page)
    shot(page, f"dashboard-chart-{width}")
    bounced.click()
    expect(page).to_have_url(re.compile(r"/recipients\?status=bounced$"))
    expect(page.locator("#recipients-table tbody tr")).to_have_count(5)


@pytest.mark.parametrize("width", [1280, 390])
def test_share_links_are_records_listed_viewed_and_revoked(browser, page, desk, watch, shot,
                                                           width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page)
    # A typo's domain is nobody's organisation: no share link is offered there.
    page.goto("/domains/gmial.com")
    expect(page.locator("#share-form")).to_have_count(0)

    page.goto(f"/domains/{COMPANY}")
    page.locator("#share-form button").first.click()
    expect(page.locator("#flashes")).to_contain_text("Share link created: it works until")
    share_url = page.locator("#share-link a").get_attribute("href")
    links = page.locator("#share-links tbody tr")
    expect(links).to_have_count(1)
    expect(links.first.locator("[data-label='Made by']")).to_have_text(AGENT)
    expect(links.first.locator("[data-label=Views]")).to_have_text("0")
    # Created by POST, shown after a redirect: a reload makes no second link and shows the
    # link itself no more.
    page.reload()
    expect(links).to_have_count(1)
    expect(page.locator("#share-link")).to_have_count(0)
    shot(page, f"share-link-listed-{width}")

    visitor = watched_context(browser, desk.url, watch, width)
    try:
        it_page = visitor.new_page()
        it_page.goto(share_url)
        expect(it_page.locator("#share-expiry")).to_contain_text("This page works until")
        rows = it_page.locator("#share-table tbody tr")
        expect(rows).to_have_count(3)
        for i in range(3):  # each row says when and why in words, not only a status
            expect(rows.nth(i).locator("td").nth(3).locator("time")).to_have_count(1)
            expect(rows.nth(i).locator("td").nth(4)).to_contain_text("mail policy")
        shot(it_page, f"share-page-{width}")

        page.reload()  # the view is logged
        expect(links.first.locator("[data-label=Views]")).to_contain_text("1")
        page.get_by_role("button", name=re.compile(r"Revoke share link \d+")).click()
        expect(page.locator("#flashes")).to_contain_text("revoked: it no longer opens")
        expect(links.first.locator("[data-label=State]")).to_have_text(f"revoked by {AGENT}")
        assert [d for d in watch.dialogs if d[0] == "confirm"][-1][1].startswith(
            "Revoke share link #")
        shot(page, f"share-link-revoked-{width}")

        assert it_page.goto(share_url).status == 410  # it stops working at once, and says so
        expect(it_page.locator("main")).to_contain_text("expired or was withdrawn")
        expect(it_page.locator("#share-table")).to_have_count(0)
    finally:
        visitor.close()
    watch.console_errors[:] = [e for e in watch.console_errors
                               if "responded with a status of 410" not in e]


def import_into_a_new_credential(page, title: str, csv_text: str) -> None:
    """Send a CSV file to the import, for a new credential, as a user does: its review shows."""
    page.goto("/import")
    page.select_option("#import-credential", "new")
    page.fill("#import-title", title)
    page.set_input_files("#import-file", files=[{
        "name": "people.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}])
    page.locator("#import-form button[type=submit]").click()


# Every verdict a row can get, and a broken row that does not stop the rest.
MIXED_CSV = ("name,email\n"
             "Ann Accepted,ann@example.org\n"
             "Tia Typo,tia@gmial.com\n"
             "Nora Noaddress,\n"
             "Ivan Invalid,not-an-address\n"
             "Ann Again,ann@example.org\n"
             '"Bob"x,bob@example.org\n'
             "Cid Last,cid@example.org\n")


@pytest.mark.parametrize("width", [1280, 390])
def test_a_csv_import_names_every_rows_verdict_at_once_and_sends_nothing_before_the_review(
        page, desk, shot, width):
    page.set_viewport_size({"width": width, "height": 900})
    sent_before = len(desk.sink.messages)
    sign_in(page)
    import_into_a_new_credential(page, "Mixed Course", MIXED_CSV)

    # The review: nothing is imported yet, every row is accounted for in one go.
    expect(page.locator("#import-review-summary")).to_contain_text("Nothing is imported yet.")
    counts = {kind: page.locator(f"#verdict-counts [data-count={kind}]")
              for kind in ("accepted", "typo", "not_provided", "invalid", "duplicate",
                           "unreadable")}
    for kind, n in {"accepted": 2, "typo": 1, "not_provided": 1, "invalid": 1, "duplicate": 1,
                    "unreadable": 1}.items():
        expect(counts[kind]).to_have_text(str(n))
    broken = page.locator("#verdict-unreadable tr[data-line='7']")
    expect(broken.locator("[data-label=Why]")).to_contain_text("a quote in the middle of a cell")
    expect(broken).not_to_contain_text("expected")  # plain words, not the parser's
    expect(page.locator("#verdict-duplicate tr[data-line='6']")).to_be_visible()
    typo = page.locator("#verdict-typo tr[data-line='3']")
    expect(typo).to_contain_text("did you mean tia@gmail.com?")
    assert_fits(page)
    shot(page, f"import-review-{width}")
    assert len(desk.sink.messages) == sent_before

    typo.get_by_role("checkbox").uncheck()  # this one really is at gmial.com, say
    page.locator("#import-confirm").click()
    expect(page).to_have_url(re.compile(r"/imports/\d+$"))
    expect(page.locator("#import-summary")).to_contain_text("5 imported of 7 rows")
    assert_fits(page)
    shot(page, f"import-summary-{width}")

    page.get_by_role("link", name="See the recipients").click()
    expect(page.locator("h1")).to_have_text("Mixed Course")
    rows = page.locator("#recipients-table tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator("#recipients-table")).to_contain_text("tia@gmial.com")  # as kept
    expect(page.locator("#recipients-table")).not_to_contain_text("Ann Again")
    expect(page.locator("#recipients-table")).not_to_contain_text("bob@example.org")
    assert len(desk.sink.messages) == sent_before  # a new credential is a draft: nothing sent


@pytest.mark.parametrize("width", [1280, 390])
def test_times_show_in_the_zone_chosen_once_and_remembered(browser, desk, watch, shot, width):
    import zoneinfo
    from datetime import datetime

    from helpdesk import times

    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    sam = desk.recipient_id("Sam Someone")
    in_tokyo = watched_context(browser, desk.url, watch, width, timezone_id="Asia/Tokyo")
    try:
        page = in_tokyo.new_page()
        sign_in(page)
        page.goto("/account")
        select = page.locator("#time_zone")
        expect(select).to_have_value("Asia/Tokyo")  # the browser's zone, suggested
        options = select.locator("option").all_text_contents()
        assert 300 < len(options) < 500 and not any("Kiev" in o for o in options)
        shot(page, f"account-{width}")
        page.locator("#save-time-zone").click()
        expect(page.locator("#flashes")).to_contain_text("Times are now shown in Asia/Tokyo")
    finally:
        in_tokyo.close()

    # Another browser, in another zone: the choice holds.
    elsewhere = watched_context(browser, desk.url, watch, width, timezone_id="America/New_York")
    try:
        page = elsewhere.new_page()
        sign_in(page)
        page.goto(f"/recipients/{sam}")
        moment = page.locator("#timeline time").first
        when = datetime.fromisoformat(moment.get_attribute("datetime"))
        expect(moment).to_have_attribute("title", times.exact(when, tokyo))
        assert moment.get_attribute("title").endswith(" JST")
        expect(moment).to_have_text(re.compile(r"ago|just now"))  # relative where people scan
        shot(page, f"recipient-in-tokyo-time-{width}")
        page.goto("/account")
        expect(page.locator("#time_zone")).to_have_value("Asia/Tokyo")
        expect(page.locator("#time-zone-help")).to_contain_text("JST")
    finally:
        elsewhere.close()
    assert watch.problems() == []


@pytest.mark.parametrize("width", [1280, 390])
def test_a_deleted_credential_asks_first_and_stays_in_the_admins_audit_log(
        browser, page, desk, watch, shot, width):
    from helpdesk.causes import CAUSES

    page.set_viewport_size({"width": width, "height": 900})
    with desk.app.app_context():
        create_user("admin@issuer.example", PASSWORD, "admin")
    sign_in(page)
    # The recipient's page leads to the help for its status and for its cause.
    page.goto(f"/recipients/{desk.recipient_id('Hal Hotmial')}")
    page.locator("#help-status").click()
    expect(page).to_have_url(re.compile(r"/help/statuses#status-bounced$"))
    expect(page.locator("#status-bounced")).to_be_in_viewport()
    page.go_back()
    page.locator("#help-cause").click()
    expect(page).to_have_url(re.compile(r"/help/causes#cause-typo$"))
    expect(page.locator("#cause-typo dt")).to_have_text(CAUSES["typo"].label)

    lea = desk.recipient_id("Lea Lovelace")  # one of its recipients
    page.goto("/credentials")
    page.get_by_role("link", name="Leadership Badge").click()
    page.locator("#delete-credential").click()
    expect(page.locator("#confirm")).to_contain_text("its 3 recipients and their delivery history")
    shot(page, f"delete-credential-confirm-{width}")
    page.locator("#confirm-cancel").click()  # nothing happens without the confirmation
    expect(page.locator("h1")).to_have_text("Leadership Badge")
    page.locator("#delete-credential").click()
    page.locator("#confirm-button").click()
    expect(page.locator("#flashes")).to_contain_text("Deleted “Leadership Badge”.")
    expect(page.get_by_role("link", name="Leadership Badge")).to_have_count(0)
    assert page.goto(f"/recipients/{lea}").status == 404  # its recipients went with it
    watch.console_errors[:] = [e for e in watch.console_errors
                               if "responded with a status of 404" not in e]

    admin = watched_context(browser, desk.url, watch, width)
    try:
        admin_page = admin.new_page()
        admin_page.goto("/login")
        admin_page.fill("#email", "admin@issuer.example")
        admin_page.fill("#password", PASSWORD)
        admin_page.get_by_role("button", name="Sign in").click()
        admin_page.goto("/admin/audit?action=deleted")
        entry = admin_page.locator("tbody tr").first
        expect(entry.locator("[data-label=Who]")).to_have_text(AGENT)
        expect(entry.locator("[data-label=What]")).to_contain_text(
            "deleted “Leadership Badge” (#2) with 3 recipients")
        expect(entry.locator("a")).to_have_count(0)  # nothing to link to any more
        shot(admin_page, f"audit-after-delete-{width}")
    finally:
        admin.close()
