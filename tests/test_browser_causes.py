"""Journeys that follow a recipient's cause, in a real browser (Playwright, Debian's chromium)
against a real server, a real queue and real mail traffic:

- the allowlist journey: several emails refused at one company by policy lead to the allowlist
  request, a share link their IT reads (each email's date and the server's reason in plain
  words), then a resend once they let the sender through; a typo domain beside it offers no such
  thing;
- the suppressed journey: the email service drops an address on its suppression list (SendGrid's
  signed Event Webhook, posted as SendGrid signs it), the agent removes it from the list through
  the service's API (a local stand-in that checks each request as SendGrid does) and resends.

Every page is watched (console errors, CSP violations, dialogs) and checked with axe-core and
for horizontal scrolling at each screenshot (``browser_checks``)."""
from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from browser_checks import watched_context
from browser_server import LiveServer, Worker, drain_queue
from conftest import PASSWORD
from fake_sendgrid import FakeSendgrid
from helpdesk.auth import create_user
from helpdesk.causes import CAUSES
from helpdesk.credentials import create_credential
from helpdesk.models import Delivery, Recipient, db
from helpdesk.sink import SmtpSink, free_port
from helpdesk.status import STATUSES
from helpdesk_sendgrid.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api",
                             reason="the test extra installs playwright").expect

LIVE_TIMEOUT_MS = 20_000  # live regions poll every few seconds
AGENT = "agent@issuer.example"
SENDER = "credentials@issuer.example"
COMPANY = "initrode.example"
POLICY_REFUSAL = "550 5.7.1 Message rejected: the sender is not on this organisation's allowlist"
TYPO_DOMAIN = "gmial.com"


@dataclass
class Desk:
    app: object
    url: str
    worker: Worker

    def recipient_id(self, email: str) -> int:
        with self.app.app_context():
            return db.session.scalar(db.select(Recipient.id).where(Recipient.email == email))


def sign_in(page) -> None:
    page.goto("/login")
    page.fill("#email", AGENT)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#current-user")).to_have_text(AGENT)


@pytest.fixture
def page_for(browser, watch):
    """``page_for(desk)``: a watched page on that desk; no problem may be seen on it. Ask for it
    after the desk's fixture, so that its pages close before the desk's server stops (pytest
    tears fixtures down in the reverse order of setting them up)."""
    contexts = []

    def open_page(desk: Desk):
        context = watched_context(browser, desk.url, watch)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
    assert watch.problems() == []


# --- the allowlist journey -----------------------------------------------------------------------

@pytest.fixture
def company_desk(app_factory, tmp_path):
    with SmtpSink(refuse_domains={COMPANY: POLICY_REFUSAL, TYPO_DOMAIN: None}) as sink:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        app = app_factory(sink, WTF_CSRF_ENABLED=True, BASE_URL=url, SENDER=SENDER,
                          QUEUE_URL=str(tmp_path / "queue.db"))
        with app.app_context():
            create_credential("Forklift Safety Badge", [
                {"name": "Milton Waddams", "email": f"milton@{COMPANY}"},
                {"name": "Peter Gibbons", "email": f"peter@{COMPANY}"},
                {"name": "Joanna Hale", "email": f"joanna@{COMPANY}"},
                {"name": "Sam Typo", "email": f"sam@{TYPO_DOMAIN}"},
            ], state="published")
            create_user(AGENT, PASSWORD, "agent")
            drain_queue(app)  # the sends, done before the test: the refusals are real replies
        worker = Worker(app)
        with LiveServer(app, port):
            yield Desk(app, url, worker), sink
            worker.stop()


def test_refusals_by_policy_lead_to_the_allowlist_request_a_share_link_and_a_resend(
        browser, company_desk, page_for, watch, shot):
    desk, sink = company_desk
    page = page_for(desk)
    sign_in(page)

    # A typo domain is no company: it points to the fix, never to a share link or a resend.
    page.goto(f"/domains/{TYPO_DOMAIN}")
    expect(page.locator("#typo-domain")).to_contain_text("probably a typo for gmail.com")
    expect(page.locator("#share-form, #resend-bounced-form, #allowlist")).to_have_count(0)
    shot(page, "typo-domain-is-no-company")

    # A recipient at the company: the cause, the server's words, and the allowlist tip first.
    page.goto(f"/recipients/{desk.recipient_id(f'milton@{COMPANY}')}")
    expect(page.locator("#cause")).to_have_attribute("data-cause", "policy")
    expect(page.locator("#cause")).to_contain_text(CAUSES["policy"].label)
    expect(page.locator("#evidence")).to_contain_text(POLICY_REFUSAL)
    tips = page.locator("#actions .tip")
    expect(tips.first).to_have_attribute("data-action", "allowlist")
    expect(tips.first).to_have_class(re.compile(r"\bprimary-tip\b"))
    expect(page.locator("#allowlist-tip")).to_contain_text(f"3 emails to {COMPANY} bounced")
    expect(page.locator("#fix-address-form")).to_have_count(0)  # the address is right
    shot(page, "policy-cause-allowlist-first")

    page.get_by_role("link", name=f"Prepare the request for {COMPANY}").click()
    expect(page.locator("#allowlist")).to_contain_text("refused 3 emails by policy")
    page.locator("#share-form button").click()
    share_url = page.locator("#share-link a").get_attribute("href")
    message = page.locator("#it-message").input_value()
    assert SENDER in message and share_url in message
    shot(page, "allowlist-request-with-share-link")

    visitor = watched_context(browser, desk.url, watch)
    try:
        it_page = visitor.new_page()
        it_page.goto(share_url)
        rows = it_page.locator("#share-table tbody tr")
        expect(rows).to_have_count(3)
        for row in rows.all():  # per email: when, and why in plain words, with the reply
            expect(row).to_have_attribute("data-cause", "policy")
            expect(row.locator("td:nth-child(4) time")).to_have_attribute(
                "datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
            expect(row.locator("td:nth-child(5) .cause")).to_have_text(CAUSES["policy"].label)
            expect(row.locator("td:nth-child(5) .evidence")).to_have_text(POLICY_REFUSAL)
        assert TYPO_DOMAIN not in it_page.content()
        shot(it_page, "it-reads-why-each-email-bounced")

        # Their IT lets the sender through; the agent resends one from its page.
        sink.refuse_domains.pop(COMPANY)
        desk.worker.start()
        page.goto(f"/recipients/{desk.recipient_id(f'milton@{COMPANY}')}")
        page.locator("#resend-form button").click()
        expect(page.locator("#recipient-status")).to_have_attribute(
            "data-status", "not_opened", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#cause")).to_have_attribute("data-cause", "not_opened")
        expect(page.locator("#nudge-form")).to_be_visible()  # what helps now follows the cause
        shot(page, "resent-after-the-allowlist")

        it_page.reload()
        expect(it_page.locator("#share-table tbody tr[data-status=not_opened]")).to_have_count(1)
        expect(it_page.locator("#share-table tbody tr[data-cause=policy]")).to_have_count(2)
    finally:
        visitor.close()


# --- the suppressed journey ----------------------------------------------------------------------

API_KEY = "SG.browser-test"


def signed(key, events: list[dict]) -> tuple[bytes, dict]:
    """A body and the headers SendGrid's Signed Event Webhook sends with it."""
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                  SIGNATURE_HEADER: base64.b64encode(signature).decode()}


@dataclass
class ServiceDesk(Desk):
    api: FakeSendgrid
    key: ec.EllipticCurvePrivateKey

    def report(self, email: str, event: str, **fields) -> None:
        """SendGrid posts one event about the latest delivery to ``email``."""
        with self.app.app_context():
            correlation = db.session.scalar(
                db.select(Delivery.correlation_id).where(Delivery.email == email)
                .order_by(Delivery.id.desc()).limit(1))
        payload = {"email": email, "event": event, "timestamp": int(time.time()),
                   "sg_event_id": f"{event}-{correlation}", "helpdesk_delivery": correlation,
                   **fields}
        body, headers = signed(self.key, [payload])
        answer = requests.post(f"{self.url}/webhooks/sendgrid", data=body, headers=headers,
                               timeout=10)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def service_desk(app_factory, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with FakeSendgrid(api_key=API_KEY) as api:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        app = app_factory(PROVIDER="sendgrid", SENDGRID_API_URL=api.url,
                          SENDGRID_API_KEY=API_KEY, SENDGRID_WEBHOOK_PUBLIC_KEY=public,
                          WTF_CSRF_ENABLED=True, BASE_URL=url, SENDER=SENDER,
                          QUEUE_URL=str(tmp_path / "queue.db"))
        with app.app_context():
            create_credential("Data Science Certificate", [
                {"name": "Ann Archer", "email": "ann@valley.example"}], state="published")
            create_user(AGENT, PASSWORD, "agent")
            drain_queue(app)
        worker = Worker(app)
        with LiveServer(app, port):
            yield ServiceDesk(app, url, worker, api, key)
            worker.stop()


def test_a_suppressed_address_is_removed_from_the_services_list_and_resent(
        service_desk, page_for, shot):
    desk = service_desk
    ann = "ann@valley.example"
    # An earlier hard bounce put Ann on SendGrid's bounce list: it drops the email, and says so.
    desk.api.suppressions["bounces"][ann] = {
        "created": int(time.time()) - 86400, "email": ann, "status": "5.1.1",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist"}
    desk.report(ann, "processed")
    desk.report(ann, "dropped", reason="Bounced Address")

    page = page_for(desk)
    sign_in(page)
    page.goto(f"/recipients/{desk.recipient_id(ann)}")
    expect(page.locator("#recipient-status")).to_have_attribute("data-status", "bounced")
    expect(page.locator("#cause")).to_have_attribute("data-cause", "suppressed")
    expect(page.locator("#evidence")).to_contain_text("Bounced Address")
    tips = page.locator("#actions .tip")
    expect(tips.first).to_have_attribute("data-action", "unsuppress")
    shot(page, "suppressed-cause-unsuppress-first")

    sent_before = len(desk.api.accepted)
    desk.worker.start()
    page.locator("#unsuppress-form button").click()
    expect(page.locator("#flashes")).to_contain_text(
        f"Removed {ann} from the suppression list; sending again.")
    assert desk.api.suppressions["bounces"] == {}  # deleted through the service's API
    deletes = [r["path"] for r in desk.api.requests if r.get("method") == "DELETE"]
    assert deletes == [f"/v3/suppression/bounces/{ann}"]
    deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
    while len(desk.api.accepted) == sent_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(desk.api.accepted) == sent_before + 1  # the resend went to the service
    expect(page.locator("#recipient-status")).to_have_attribute(
        "data-status", "sending", timeout=LIVE_TIMEOUT_MS)
    shot(page, "removed-from-the-list-and-sending")

    desk.report(ann, "delivered", response="250 2.0.0 OK")
    expect(page.locator("#recipient-status")).to_have_attribute(
        "data-status", "not_opened", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#cause")).to_have_attribute("data-cause", "not_opened")
    expect(page.locator("#status-meaning")).to_have_text(STATUSES["not_opened"].meaning)
    deliveries = page.locator("#timeline article.delivery")
    expect(deliveries).to_have_count(2)  # the dropped email stays on the timeline
    shot(page, "delivered-after-the-resend")
