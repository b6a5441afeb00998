"""Every page of the desk, at a laptop's width and a phone's, for an anonymous visitor, an agent
and an admin: zero axe-core violations, no horizontal scrolling, no console error or CSP
violation, and a screenshot of each in ``test-artifacts/screenshots/``."""
from __future__ import annotations

import re

import pytest

from browser_checks import WIDTHS, page_problems, watched_context
from test_browser import (AGENT, COMPANY, PASSWORD, build_data, company_sink, desk,  # noqa: F401
                          import_into_a_new_credential)
from helpdesk.auth import create_user
from helpdesk.credentials import create_credential
from helpdesk.models import Credential, Recipient, db
from helpdesk.sharing import create_link
from helpdesk.status import STATUSES

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api",
                             reason="the test extra installs playwright").expect

ADMIN = "admin@issuer.example"
TYPO_CSV = "name,email\nNew Person,new.person@example.org\nTypo Person,typo@gmial.com\n"


def ids(app) -> dict[str, int]:
    with app.app_context():
        def recipient(name):
            return db.session.scalar(db.select(Recipient.id).where(Recipient.name == name))

        def credential(title):
            return db.session.scalar(db.select(Credential.id).where(Credential.title == title))

        return {"sam": recipient("Sam Someone"), "carol": recipient("Carol Noaddress"),
                "science": credential("Data Science Certificate"),
                "draft": credential("Safety Course")}


def more_data(app) -> str:
    """A draft, an admin, and a share link for the company (its token)."""
    with app.app_context():
        create_credential("Safety Course", [{"name": "Pat Draft", "email": "pat@example.com"}])
        create_user(ADMIN, PASSWORD, "admin")
        _, token = create_link(COMPANY, 14, None)
        return token


def sign_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Dashboard")


PHONE_TOP_BAR_PX = 80  # the brand (two lines at most) and the menu button


def look(page, shot, name: str, problems: list[str]) -> None:
    shot(page, name, check=False)
    problems += page_problems(page)
    top_bar = page.locator("header").bounding_box()["height"]
    if page.viewport_size["width"] < 640 and top_bar > PHONE_TOP_BAR_PX:
        problems.append(f"{page.url}: the top bar takes {top_bar:.0f}px of a phone's screen")


def visit(page, shot, name: str, path: str, problems: list[str], status: int = 200) -> None:
    response = page.goto(path)
    assert response.status == status, (path, response.status)
    look(page, shot, name, problems)


def expected_refusals(watch, *codes: int) -> list[str]:
    """The console errors the browser logs for the error pages this test asked for."""
    return [e for e in watch.console_errors
            if any(f"responded with a status of {code} " in e for code in codes)]


# Every page the tour visits, by who visits it: (name, path, the answer's status). The paths
# are filled with the ids of ``tour_ids``.
ANONYMOUS_PAGES = [
    ("login", "/login", 200),
    ("help", "/help", 200),
    *[(f"help-{slug}", f"/help/{slug}", 200)
      for slug in ("statuses", "what-to-do", "causes", "allowlist", "providers")],
    ("help-search", "/help?q=what+does+sending+mean", 200),
    ("share", "/share/{token}", 200),
    ("share-unknown", "/share/not-a-token", 403),
    ("not-found", "/no-such-page", 404),
]
AGENT_PAGES = [
    ("dashboard", "/", 200),
    ("credentials", "/credentials", 200),
    ("credential", "/credentials/{science}", 200),
    ("credential-bounced", "/credentials/{science}?status=bounced", 200),
    ("credential-draft", "/credentials/{draft}", 200),
    ("credential-new", "/credentials/new", 200),
    ("credential-publish", "/credentials/{draft}/publish", 200),
    ("credential-delete", "/credentials/{draft}/delete", 200),
    ("credential-import", "/credentials/{science}/import", 200),
    ("recipients", "/recipients", 200),
    ("recipients-bounced", "/recipients?status=bounced", 200),
    ("recipient-bounced", "/recipients/{sam}", 200),
    ("recipient-no-address", "/recipients/{carol}", 200),
    ("recipient-edit", "/recipients/{sam}/edit", 200),
    ("recipient-delete", "/recipients/{sam}/delete", 200),
    ("lookup-typo", "/lookup?q=someone%40gmial.com", 200),
    ("lookup-name", "/lookup?q=Initech", 200),
    ("lookup-nothing", "/lookup?q=nobody-at-all", 200),
    ("domains", "/domains", 200),
    ("domain", f"/domains/{COMPANY}", 200),
    ("typos", "/typos", 200),
    ("import", "/import", 200),
    ("import-summary", "/imports/{import_run}", 200),
    ("account", "/account", 200),
    ("password", "/account/password", 200),
    ("outbox", "/outbox", 200),
    ("outbox-message", "/outbox/0", 200),
    ("admin-refused", "/admin/users", 403),
]
ADMIN_PAGES = [
    ("dashboard", "/", 200),
    ("admin", "/admin/", 200),  # leads to the users
    ("users", "/admin/users", 200),
    ("settings", "/admin/settings", 200),
    ("audit", "/admin/audit", 200),
    ("recipient", "/recipients/{sam}", 200),
]
# What answers a GET but is no page to look at, and why.
NOT_PAGES = {
    "static": "the style sheet, the script, the icons",
    "openapi": "JSON: the API's description",
    "api.causes": "JSON", "api.credential": "JSON", "api.recipients": "JSON",
    "api.recipient": "JSON", "api.statuses": "JSON",
    "pages.dashboard_live": "a fragment the dashboard polls (the tour sees it in the page)",
    "pages.credential_live": "a fragment the credential's page polls",
    "pages.recipient_live": "a fragment the recipient's page polls",
    "pages.export_csv": "a CSV download", "recipients.export": "a CSV download",
    "imports.left_out_rows": "a CSV download",
    "tracking.pixel": "the tracking pixel, a GIF",
}


def toured_endpoints(app) -> set[str]:
    """The endpoints the tour's paths lead to (any id will do to find them)."""
    urls = app.url_map.bind("localhost")
    found = set()
    for _, path, status in ANONYMOUS_PAGES + AGENT_PAGES + ADMIN_PAGES:
        if status != 404:
            endpoint, _ = urls.match(re.sub(r"\{\w+\}", "1", path).split("?")[0], "GET")
            found.add(endpoint)
    return found


def test_the_tour_visits_every_page_the_app_serves(app):
    served = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    assert served - toured_endpoints(app) - set(NOT_PAGES) == set(), \
        "pages the tour does not visit: add them to the tour, or to NOT_PAGES with why"
    assert set(NOT_PAGES) <= served, "NOT_PAGES names what the app no longer serves"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_is_accessible_and_fits_the_window(browser, desk, watch, shot, width):
    desk.app.extensions["helpdesk_sink"] = desk.sink  # the outbox, as `helpdesk demo` runs it
    token = more_data(desk.app)
    n = {**ids(desk.app), "token": token}
    problems: list[str] = []

    def tour(page, prefix: str, pages) -> None:
        for name, path, status in pages:
            visit(page, shot, prefix + name, path.format(**n), problems, status)

    anonymous = watched_context(browser, desk.url, watch, width)
    tour(anonymous.new_page(), "", ANONYMOUS_PAGES)
    anonymous.close()

    agent = watched_context(browser, desk.url, watch, width)
    page = agent.new_page()
    sign_in(page, AGENT)
    # The pages a form leads to: the import's review of a typo, then its summary.
    import_into_a_new_credential(page, "Imported Course", TYPO_CSV)
    expect(page.locator("main")).to_contain_text("typo@gmial.com")
    look(page, shot, "agent-import-review", problems)
    page.locator("#import-confirm").click()
    expect(page).to_have_url(re.compile(r"/imports/\d+$"))
    n["import_run"] = int(page.url.rsplit("/", 1)[1])
    tour(page, "agent-", AGENT_PAGES)
    agent.close()

    admin = watched_context(browser, desk.url, watch, width)
    page = admin.new_page()
    sign_in(page, ADMIN)
    tour(page, "admin-", ADMIN_PAGES)
    admin.close()
    assert problems == [], "\n".join(problems)
    refusals = expected_refusals(watch, 403, 404)
    assert len(refusals) == 3  # the unknown share link, the unknown page, the agent at /admin
    assert [p for p in watch.problems() if p not in refusals] == []


def menu_state(page) -> str | None:
    return page.locator("#menu-button").get_attribute("aria-expanded")


def test_the_top_bar_folds_on_a_phone_and_opens_by_keyboard_and_by_tap(browser, desk, watch, shot):
    phone = watched_context(browser, desk.url, watch, 390, has_touch=True, is_mobile=True)
    page = phone.new_page()
    sign_in(page, AGENT)
    menu, button = page.locator("#topbar-menu"), page.locator("#menu-button")
    credentials_link = page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Credentials")
    expect(button).to_be_visible()
    assert menu_state(page) == "false"
    expect(menu).to_be_hidden()
    assert page.locator("header").bounding_box()["height"] < PHONE_TOP_BAR_PX  # was 225 px
    shot(page, "folded")

    # By keyboard: Tab reaches the button, Enter opens, the next Tab is the first link, Escape
    # folds the menu and gives the button back the focus, Space opens it again.
    for _ in range(4):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "menu-button":
            break
    assert page.evaluate("document.activeElement.id") == "menu-button"
    page.keyboard.press("Enter")
    assert menu_state(page) == "true"
    expect(credentials_link).to_be_visible()
    expect(page.locator("#current-user")).to_be_visible()  # who is signed in, beside Sign out
    shot(page, "open")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Dashboard"
    page.keyboard.press("Escape")
    assert menu_state(page) == "false"
    expect(menu).to_be_hidden()
    assert page.evaluate("document.activeElement.id") == "menu-button"
    page.keyboard.press(" ")
    assert menu_state(page) == "true"

    # By tap: fold, open, follow a link; the next page starts folded.
    button.tap()
    expect(menu).to_be_hidden()
    button.tap()
    credentials_link.tap()
    expect(page.locator("h1")).to_have_text("Credentials")
    assert menu_state(page) == "false"
    expect(credentials_link).to_be_hidden()
    phone.close()

    # On a laptop there is nothing to fold.
    laptop = watched_context(browser, desk.url, watch, 1280)
    page = laptop.new_page()
    sign_in(page, AGENT)
    expect(page.locator("#menu-button")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Credentials")).to_be_visible()
    laptop.close()

    # Without the script (or with it blocked), the phone's menu simply stays open.
    no_script = watched_context(browser, desk.url, watch, 390, java_script_enabled=False)
    page = no_script.new_page()
    page.goto("/login")
    expect(page.locator("#menu-button")).to_be_hidden()
    expect(page.locator("#topbar-menu")).to_be_visible()
    no_script.close()
    assert watch.problems() == []


def test_a_status_shows_its_meaning_to_the_keyboard_and_to_a_tap(browser, desk, watch, shot):
    bounced = STATUSES["bounced"]
    laptop = watched_context(browser, desk.url, watch, 1280)
    page = laptop.new_page()
    sign_in(page, AGENT)
    page.goto("/recipients?status=bounced")
    row = page.locator("#recipients-table tbody tr").first
    meaning = row.locator(".status-meaning")
    expect(meaning).to_be_hidden()
    # By keyboard: the status is the next stop after the row's credential link.
    row.locator("td[data-label=Credential] a").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == bounced.label
    page.keyboard.press("Enter")
    expect(meaning).to_be_visible()
    expect(meaning).to_have_text(bounced.meaning)
    shot(page, "meaning-by-keyboard")
    page.keyboard.press("Enter")
    expect(meaning).to_be_hidden()
    laptop.close()

    # By tap, on a phone, on a credential's list and on the page a company's IT is sent.
    token = more_data(desk.app)
    phone = watched_context(browser, desk.url, watch, 390, has_touch=True, is_mobile=True)
    page = phone.new_page()
    sign_in(page, AGENT)
    page.goto(f"/credentials/{ids(desk.app)['science']}?status=bounced")
    row = page.locator("#recipients-table tbody tr").first
    row.locator("summary.status").tap()
    expect(row.locator(".status-meaning")).to_be_visible()
    expect(row.locator(".status-meaning")).to_have_text(bounced.meaning)
    shot(page, "meaning-by-tap")
    page.goto(f"/share/{token}")
    row = page.locator("#share-table tbody tr").first
    row.locator("summary.status").tap()
    expect(row.locator(".status-meaning")).to_have_text(bounced.meaning)
    expect(row.locator(".status-meaning")).to_be_visible()
    shot(page, "meaning-on-the-share-page")
    phone.close()
    assert watch.problems() == []


def test_the_recipients_filters_fold_on_a_phone_until_used(browser, desk, watch, shot):
    phone = watched_context(browser, desk.url, watch, 390, has_touch=True, is_mobile=True)
    page = phone.new_page()
    sign_in(page, AGENT)
    page.goto("/recipients")
    domain = page.locator("#f-domain")
    expect(domain).to_be_hidden()
    first_row = page.locator("#recipients-table tbody tr").first
    assert first_row.bounding_box()["y"] < 900  # the list starts on the first screen
    shot(page, "folded")
    page.locator("#filters-toggle").tap()
    expect(domain).to_be_visible()
    domain.fill(COMPANY)
    page.get_by_role("button", name="Show").tap()
    expect(page.locator("#recipients-table tbody tr")).to_have_count(3)
    expect(domain).to_be_visible()  # filters in use stay open
    expect(domain).to_have_value(COMPANY)
    shot(page, "filtered")
    phone.close()

    laptop = watched_context(browser, desk.url, watch, 1280)
    page = laptop.new_page()
    sign_in(page, AGENT)
    page.goto("/recipients")
    expect(page.locator("#f-domain")).to_be_visible()  # room enough: always open
    laptop.close()
    assert watch.problems() == []
