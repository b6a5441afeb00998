"""A real server under concurrent load: gunicorn (several workers and threads) on loopback, on
the test database (SQLite, or PostgreSQL when HELPDESK_TEST_DATABASE_URL is set). Clients post
signed SendGrid batches (P-256) and Mailgun events (HMAC), duplicated and shuffled, at the same
time, while agents sign in and page through the desk and the API. Afterwards: no 5xx, every
unique event stored exactly once, and every status equal to the fold of its stored events."""
from __future__ import annotations

import importlib.util
import itertools
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from helpdesk.auth import create_token, create_user
from helpdesk.credentials import create_credential
from helpdesk.models import Credential, CredentialState, Delivery, DeliveryEvent, Recipient, db
from helpdesk.sink import free_port
from helpdesk import plugins
from helpdesk.contract import capabilities
from helpdesk.status import DeliveryOutcome, delivery_status, email_status

from conftest import PASSWORD, PG_URL
from processes import stop

pytestmark = [pytest.mark.load, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
AGENT = "agent@issuer.example"
RECIPIENTS_PER_PROVIDER = 120
DOMAINS = [f"d{i}.example" for i in range(8)]
SENDGRID_BATCHES = 30
SENDGRID_BATCH_SIZE = 100
DUPLICATES = 0.2


def _bench_common():
    """bench/common.py, by path: the load test posts the very requests the benchmarks do."""
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _bench_common()


class Server:
    """``gunicorn 'helpdesk:create_app()'`` as a subprocess, configured through HELPDESK_*."""

    def __init__(self, tmp_path: Path, settings: dict[str, object]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "gunicorn.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        env.update({f"HELPDESK_{k}": str(v) for k, v in settings.items()})
        self.process = subprocess.Popen(
            [GUNICORN, "helpdesk:create_app()", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "3", "--worker-class", "gthread", "--threads", "4",
             "--timeout", "60", "--log-level", "warning"],
            env=env, cwd=tmp_path, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/api/v1/statuses", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        raise AssertionError(f"gunicorn did not answer within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        stop(self.process, signal.SIGTERM)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


class Tally:
    """Every answer's status code, by what asked (thread-safe)."""

    def __init__(self):
        self.codes: dict[str, Counter] = defaultdict(Counter)
        self.stored: Counter = Counter()
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def add(self, kind: str, response: requests.Response) -> None:
        with self._lock:
            self.codes[kind][response.status_code] += 1
            if response.status_code >= 500:
                self.errors.append(f"{kind} {response.request.method} {response.url}: "
                                   f"{response.status_code} {response.text[:300]}")
            if kind == "webhook" and response.status_code == 200:
                self.stored[response.url.rsplit("/", 1)[1]] += response.json()["stored"]

    def fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


def run_threads(targets) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
        assert not t.is_alive(), "a client thread hung"


@pytest.fixture
def desk(tmp_path, app_factory):
    """The database seeded through the app (credentials published to SendGrid and to Mailgun,
    their deliveries queued where no worker reads them), then a gunicorn serving it."""
    signer = common.SendgridSigner()
    mailgun_key = secrets.token_hex(24)
    settings = {
        "DATABASE_URL": PG_URL or f"sqlite:///{tmp_path / 'helpdesk.db'}",
        "QUEUE_URL": str(tmp_path / "queue.db"),  # nobody consumes it: deliveries stay queued
        "SECRET_KEY": secrets.token_hex(16),
        "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key,
        "MAILGUN_WEBHOOK_SIGNING_KEY": mailgun_key,
        "SENDER": "credentials@issuer.example",
        "BASE_URL": "http://127.0.0.1",
    }
    app = app_factory(**settings)
    deliveries: dict[str, list[tuple[str, str]]] = {}
    with app.app_context():
        agent = create_user(AGENT, PASSWORD, "agent")
        token = create_token(agent)
        credential_ids = []
        for provider in ("sendgrid", "mailgun"):
            app.config["PROVIDER"] = provider
            people = [{"name": f"{provider.title()} Person {i}",
                       "email": f"{provider}{i}@{DOMAINS[i % len(DOMAINS)]}"}
                      for i in range(RECIPIENTS_PER_PROVIDER)]
            people.append({"name": "No Address", "email": None})
            credential = create_credential(f"Load {provider}", people, state="published")
            credential_ids.append(credential.id)
            deliveries[provider] = db.session.execute(
                select(Delivery.correlation_id, Delivery.email).join(Recipient)
                .where(Recipient.credential_id == credential.id)).all()
            assert len(deliveries[provider]) == RECIPIENTS_PER_PROVIDER
        recipient_ids = db.session.scalars(select(Recipient.id)).all()
    server = Server(tmp_path, settings)
    try:
        server.wait_ready()
        yield {"app": app, "url": server.url, "server": server, "signer": signer,
               "mailgun_key": mailgun_key, "token": token, "deliveries": deliveries,
               "credential_ids": credential_ids, "recipient_ids": recipient_ids}
    finally:
        server.stop()


def mailgun_events(deliveries, seed: int = 2) -> list[tuple[str, str, str, float, str]]:
    """(event, correlation id, address, when, event id) for each delivery's life at Mailgun."""
    rng = random.Random(seed)
    now = time.time() - 3600
    out = []
    for correlation_id, email in deliveries:
        names = rng.choice([["accepted", "delivered", "opened"], ["accepted", "delivered"],
                            ["accepted", "failed"]])
        out += [(name, correlation_id, email, now + offset, secrets.token_hex(11))
                for offset, name in enumerate(names)]
    return out


def test_webhooks_and_agents_at_once_lose_nothing_and_fold_right(desk):
    url, tally = desk["url"], Tally()
    rng = random.Random(3)

    sendgrid_batches, sendgrid_unique = common.sendgrid_batches(
        desk["deliveries"]["sendgrid"], SENDGRID_BATCH_SIZE, SENDGRID_BATCHES, DUPLICATES)
    sendgrid_ids = {e["sg_event_id"] for batch in sendgrid_batches for e in batch}
    assert len(sendgrid_ids) == sendgrid_unique

    mailgun = mailgun_events(desk["deliveries"]["mailgun"])
    # A provider's retries: some events again (re-signed, as a new delivery attempt of the
    # webhook), all in a shuffled order.
    mailgun_posts = mailgun + rng.sample(mailgun, int(len(mailgun) * DUPLICATES))
    rng.shuffle(mailgun_posts)
    mailgun_ids = {event_id for *_, event_id in mailgun}

    sendgrid_work = iter(sendgrid_batches)
    mailgun_work = iter(mailgun_posts)
    take = threading.Lock()
    posting_done = threading.Event()

    def next_item(work):
        with take:
            return next(work, None)

    def post_sendgrid():
        with requests.Session() as http:
            while (batch := next_item(sendgrid_work)) is not None:
                body = common.json.dumps(batch).encode()
                tally.add("webhook", http.post(f"{url}/webhooks/sendgrid", data=body,
                                               headers=desk["signer"].headers(body), timeout=60))

    def post_mailgun():
        with requests.Session() as http:
            while (item := next_item(mailgun_work)) is not None:
                name, correlation_id, email, when, event_id = item
                body = common.mailgun_body(desk["mailgun_key"], name, correlation_id, email,
                                           when, event_id=event_id)
                tally.add("webhook", http.post(
                    f"{url}/webhooks/mailgun", data=body, timeout=60,
                    headers={"Content-Type": "application/json"}))

    def agent(seed: int):
        page_rng = random.Random(seed)
        with requests.Session() as http:
            login = http.get(f"{url}/login", timeout=30)
            tally.add("page", login)
            csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login.text)
            if csrf is None:
                tally.fail("no CSRF token on /login")
                return
            signed_in = http.post(f"{url}/login", allow_redirects=False, timeout=30, data={
                "csrf_token": csrf.group(1), "email": AGENT, "password": PASSWORD})
            tally.add("login", signed_in)
            if signed_in.status_code != 302:
                tally.fail(f"sign-in answered {signed_in.status_code}")
                return
            bearer = {"Authorization": f"Bearer {desk['token']}"}
            for turn in itertools.count():
                if posting_done.is_set() and turn >= 10:
                    break
                credential_id = page_rng.choice(desk["credential_ids"])
                domain = page_rng.choice(DOMAINS)
                pages = [
                    ("page", f"/credentials/{credential_id}", {}),
                    ("page", f"/credentials/{credential_id}?status=bounced", {}),
                    ("page", f"/credentials/{credential_id}/live?status=opened&page=2", {}),
                    ("page", f"/lookup?q={domain}", {}),
                    ("page", f"/recipients/{page_rng.choice(desk['recipient_ids'])}", {}),
                    ("page", "/", {}),
                    ("api", f"/api/v1/recipients?domain={domain}&per_page=100", bearer),
                    ("api", f"/api/v1/recipients?status=bounced&credential_id={credential_id}",
                     bearer),
                    ("api", f"/api/v1/recipients/{page_rng.choice(desk['recipient_ids'])}",
                     bearer),
                ]
                kind, path, headers = page_rng.choice(pages)
                tally.add(kind, http.get(f"{url}{path}", headers=headers, timeout=60))

    def posters():
        run_threads([post_sendgrid] * 2 + [post_mailgun] * 3)
        posting_done.set()

    started = time.monotonic()
    run_threads([posters] + [lambda s=s: agent(s) for s in range(3)])
    elapsed = time.monotonic() - started

    # A request posted again byte for byte carries a Mailgun token already seen: refused, and
    # nothing stored.
    name, correlation_id, email, when, event_id = mailgun[0]
    replay = common.mailgun_body(desk["mailgun_key"], name, correlation_id, email, when,
                                 event_id=event_id)
    first = requests.post(f"{url}/webhooks/mailgun", data=replay, timeout=30,
                          headers={"Content-Type": "application/json"})
    again = requests.post(f"{url}/webhooks/mailgun", data=replay, timeout=30,
                          headers={"Content-Type": "application/json"})
    assert (first.status_code, first.json()["stored"]) == (200, 0)  # a duplicate event
    assert again.status_code == 406, again.text

    codes = {kind: dict(counter) for kind, counter in tally.codes.items()}
    print(f"\n{elapsed:.1f} s; status codes: {codes}; stored: {dict(tally.stored)}")
    assert not tally.errors, "\n".join(tally.errors[:10]) + "\n" + desk["server"].output()
    assert codes["webhook"] == {200: SENDGRID_BATCHES + len(mailgun_posts)}
    assert codes["login"] == {302: 3}
    assert set(codes["page"]) == {200} and set(codes["api"]) == {200}, codes

    with desk["app"].app_context():
        db.session.remove()
        stored = Counter()
        for provider, event_id in db.session.execute(
                select(DeliveryEvent.provider, DeliveryEvent.provider_event_id)
                .where(DeliveryEvent.type != "queued")):
            stored[(provider, event_id)] += 1
        assert {k for k, n in stored.items() if n > 1} == set()
        assert {e for p, e in stored if p == "sendgrid"} == sendgrid_ids
        assert {e for p, e in stored if p == "mailgun"} == mailgun_ids
        assert_statuses_are_the_fold_of_their_events()
    # Each unique event was reported stored by exactly one answer, whichever batch won.
    assert tally.stored == {"sendgrid": sendgrid_unique, "mailgun": len(mailgun_ids)}


def assert_statuses_are_the_fold_of_their_events() -> None:
    """Recompute every delivery's and recipient's status from the stored events alone."""
    types = defaultdict(list)
    for delivery_id, event_type in db.session.execute(
            select(DeliveryEvent.delivery_id, DeliveryEvent.type)
            .where(DeliveryEvent.delivery_id.is_not(None))):
        types[delivery_id].append(event_type)
    outcomes = defaultdict(list)
    wrong_deliveries = []
    reporting = {name for name, provider in plugins.providers().items()
                 if capabilities(provider).reports_deliveries}
    for d in db.session.execute(select(Delivery.id, Delivery.recipient_id, Delivery.email,
                                       Delivery.status, Delivery.provider).order_by(Delivery.id)):
        folded = delivery_status(types[d.id], reports_deliveries=d.provider in reporting)
        if folded != d.status:
            wrong_deliveries.append((d.id, d.status, folded))
        outcomes[d.recipient_id].append(DeliveryOutcome(d.email, folded))
    assert wrong_deliveries == []
    wrong_recipients = []
    rows = db.session.execute(select(Recipient.id, Recipient.email, Recipient.status,
                                     Credential.state).join(Credential))
    seen = Counter()
    for r in rows:
        folded = email_status(email=r.email, published=r.state == CredentialState.published,
                              deliveries=outcomes[r.id])
        seen[folded] += 1
        if folded != r.status:
            wrong_recipients.append((r.id, r.status, folded))
    assert wrong_recipients == []
    # The traffic reached every status a webhook can give, and the address-less ones stayed put.
    assert {"not_opened", "bounced", "opened", "not_provided"} <= set(seen), seen
