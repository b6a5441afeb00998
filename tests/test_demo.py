"""`helpdesk demo` on a fresh instance: one command serves the app with demo data whose bounces,
not-opened and opened recipients come from real SMTP traffic, sent directly or through a
provider's local stand-in for its email service, whose events come back as its webhooks."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from helpdesk.sink import free_port
from processes import stop


@pytest.fixture(params=["smtp", "sendgrid", "mailgun", "postmark", "ses"])
def demo(tmp_path, request):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    env["HELPDESK_QUEUE_URL"] = str(tmp_path / "queue.db")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "helpdesk"), "demo", "--port",
                             str(port), "--provider", request.param], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Press Ctrl+C" in line or proc.poll() is not None:
            break
    output = "".join(lines)
    login = re.search(r"Sign in\s+(\S+)\s+/\s+(\S+)", output)
    assert login, output
    yield f"http://127.0.0.1:{port}", login.group(1), login.group(2), request.param
    stop(proc)


def test_demo_serves_real_statuses(demo):
    base, email, password, provider = demo
    session = requests.Session()
    page = session.get(f"{base}/login")
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    signed_in = session.post(f"{base}/login", data={"email": email, "password": password,
                                                    "csrf_token": csrf})
    assert signed_in.status_code == 200 and "Sign out" in signed_in.text

    def statuses() -> set[str]:
        listing = session.get(f"{base}/api/v1/recipients", params={"per_page": 200})
        assert listing.status_code == 200, listing.text
        return {item["status"] for item in listing.json()["items"]}

    all_six = {"bounced", "not_opened", "opened", "sending", "not_sent", "not_provided"}
    deadline = time.monotonic() + 60
    while statuses() != all_six and time.monotonic() < deadline:
        time.sleep(0.5)
    assert statuses() == all_six
    # Each failure shows its own cause, from the sink's real replies.
    listing = session.get(f"{base}/api/v1/recipients", params={"per_page": 200}).json()
    causes = {item["email"]: item["cause"] for item in listing["items"]}
    assert causes["grace.hopper@gmial.com"] == "typo"
    assert causes["not an address"] == "invalid_address"
    if provider in ("smtp", "sendgrid", "mailgun"):  # their reports carry the server's reply
        assert causes["homer@globex.example"] == "policy"
    if provider == "sendgrid":
        # Rosalind reported the first email as spam, John's mailbox was full: the follow-up to
        # both is dropped from the service's suppression list, each told by a signed webhook.
        def causes_of(*emails) -> dict[str, list[tuple[str, str]]]:
            items = session.get(f"{base}/api/v1/recipients", params={"per_page": 200}).json()
            return {e: sorted((i["cause"], i["evidence"] or "") for i in items["items"]
                              if i["email"] == e) for e in emails}

        expected = {"rosalind@example.net": [("complained", "the recipient marked the email "
                                                            "as spam"),
                                             ("suppressed", "Spam Reporting Address")],
                    "john@fullbox.example": [("mailbox_full", "552 5.2.2 Mailbox full, try "
                                                              "again after the owner deletes "
                                                              "mail"),
                                             ("suppressed", "Bounced Address")]}
        deadline = time.monotonic() + 60
        while causes_of(*expected) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert causes_of(*expected) == expected
    elif provider in ("smtp", "mailgun"):  # no suppression list: the follow-up is sent too
        assert "mailbox_full" in [i["cause"] for i in listing["items"]
                                  if i["email"] == "john@fullbox.example"]
    outbox = session.get(f"{base}/outbox")
    assert outbox.status_code == 200 and "Your credential" in outbox.text
