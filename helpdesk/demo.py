"""``helpdesk demo``: the embedded SMTP sink, a worker and the web app in one process, with a
demo organisation whose statuses come from real SMTP traffic: the sink refuses the misspelled
domains (bounces), greylists one (a deferral that keeps it sending), accepts the rest (not
opened), and a stand-in mail app loads the tracking pixel of some messages (opened). One
recipient reports the email as spam, and a follow-up goes to her and to the full mailbox: an
email service with a suppression list (its stand-in's signed webhooks say so) drops both."""
from __future__ import annotations

import re
import secrets
import threading
import time
import urllib.request
from datetime import timedelta

import click
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select
from werkzeug.serving import make_server

from . import plugins
from .credentials import create_credential
from .queue import huey_of
from .plugins import make_plugin_manager, reset_providers
from .models import Delivery, Recipient, Role, User, db, utcnow
from .sink import SmtpSink, free_port
from .status import BOUNCED, NOT_OPENED, SENDING

DEMO_USER = "demo@example.org"
# Misspelled domains the sink refuses as unknown, and a company whose mail server blocks us.
TYPO_DOMAINS = ("gmial.com", "hotmial.com", "yaho.com", "outlok.com")
BLOCKING_DOMAIN = "globex.example"
GREYLISTING_DOMAIN = "slowmail.example"
# A mail server whose mailbox for the recipient is full (the cause "mailbox full").
FULL_MAILBOX_DOMAIN = "fullbox.example"
OPENERS = ("ada@example.com", "mary@example.net", "hedy@example.com")
COMPLAINER = "rosalind@example.net"  # marks the email as spam in her mail app
FOLLOW_UP = "Data Science Certificate — reissued"

RECIPIENTS = [
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace.hopper@gmial.com"),
    ("Alan Turing", "alan@example.org"),
    ("Katherine Johnson", "katherine@hotmial.com"),
    ("Mary Jackson", "mary@example.net"),
    ("Hedy Lamarr", "hedy@example.com"),
    ("Margaret Hamilton", "margaret@yaho.com"),
    ("Dorothy Vaughan", None),
    ("Edsger Dijkstra", "edsger@example.org"),
    ("Barbara Liskov", "barbara@outlok.com"),
    ("Frances Allen", "frances@slowmail.example"),
    ("Claude Shannon", "not an address"),
    ("John Backus", "john@fullbox.example"),
    ("Rosalind Franklin", COMPLAINER),
]
GLOBEX = [("Homer Simpson", "homer@globex.example"), ("Lenny Leonard", "lenny@globex.example"),
          ("Carl Carlson", "carl@globex.example"), ("Frank Grimes", "frank@globex.example")]


def seed(app: Flask) -> None:
    """Create the demo organisation's credentials; publishing queues real sends."""
    create_credential("Data Science Certificate — Spring cohort",
                      [{"name": n, "email": e} for n, e in RECIPIENTS], state="published")
    create_credential("Safety Training Badge — Globex plant",
                      [{"name": n, "email": e} for n, e in GLOBEX], state="published")
    create_credential("Cloud Architecture Badge", [{"name": "Ken Thompson",
                                                    "email": "ken@example.org"}])
    create_credential("Leadership Program", [{"name": "Radia Perlman",
                                              "email": "radia@example.com"}],
                      state="scheduled", scheduled_at=utcnow() + timedelta(days=3))
    create_credential("Internal Onboarding (no email)", [{"name": "Linus Torvalds",
                                                          "email": "linus@example.org"}],
                      state="published", send_email=False)


def reset_demo_user() -> str:
    """The demo login, with a new random password each run (printed, never stored plain)."""
    password = secrets.token_urlsafe(9)
    user = db.session.scalar(select(User).where(User.email == DEMO_USER))
    if user is None:
        user = User(email=DEMO_USER, role=Role.admin)
        db.session.add(user)
    user.set_password(password)
    db.session.commit()
    return password


def play_recipients(app: Flask, sink: SmtpSink, service, timeout: float = 60) -> None:
    """Play the recipients' mail apps: once the first sends are out, load the tracking pixel
    of the openers' messages over HTTP, as an email client showing images would; the
    complainer reports hers as spam (the service hears it as from a feedback loop). Then the
    follow-up goes to her and to the full mailbox."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            waiting = db.session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.status == SENDING, Delivery.attempts == 0))
            db.session.rollback()
            if not waiting:
                break
            time.sleep(0.5)
    for message in list(sink.messages):
        if any(r in OPENERS for r in message.recipients):
            found = re.search(r'src="([^"]*/t/[^"]+\.gif)"', message.html)
            if found:
                urllib.request.urlopen(found.group(1), timeout=10).read()
    with app.app_context():
        # Once her email arrived and the full mailbox's bounce came back: then the service
        # knows of both when the follow-up reaches it.
        while time.monotonic() < deadline and db.session.scalar(
                select(func.count()).select_from(Recipient).where(
                    Recipient.email.in_((COMPLAINER, "john@fullbox.example")),
                    Recipient.status.in_((NOT_OPENED, BOUNCED)))) < 2:
            db.session.rollback()
            time.sleep(0.5)
        service.report_spam(COMPLAINER)
        create_credential(FOLLOW_UP, [{"name": "Rosalind Franklin", "email": COMPLAINER},
                                      {"name": "John Backus", "email": "john@fullbox.example"}],
                          state="published")


def _why_no_demo(provider: str) -> str:
    """Why the demo cannot run with ``provider``: it is not registered, or its plugin has no
    stand-in for its service (the demo never sends to a real one)."""
    # The factory imports the commands, which import this module: asked for when needed, it is
    # no import cycle.
    from .app import create_app

    probe = create_app()
    with probe.app_context():
        registered = sorted(plugins.providers())
        reset_providers(probe)
    if provider not in registered:
        return (f"no provider {provider!r} is registered (there are {', '.join(registered)}; "
                "`helpdesk providers` says where each comes from)")
    return (f"the provider {provider!r} is registered, but its plugin offers no stand-in for "
            "its email service (the helpdesk_demo_service hook), and the demo never sends to a "
            f"real one: to send through it, run the app and `helpdesk worker` with "
            f"HELPDESK_PROVIDER={provider}")


def run_demo(host: str, port: int, smtp_port: int | None, provider: str = "smtp") -> None:
    # The factory imports the commands, which import this module: asked for when the demo
    # runs, it is no import cycle.
    from .app import create_app

    sink = SmtpSink(port=smtp_port or free_port(),
                    refuse_domains={**{d: None for d in TYPO_DOMAINS},
                                    BLOCKING_DOMAIN: "550 5.7.1 Message rejected: the sender is "
                                                     "not on this organisation's allowlist",
                                    FULL_MAILBOX_DOMAIN: "552 5.2.2 Mailbox full, try again "
                                                         "after the owner deletes mail"},
                    defer_domains=(GREYLISTING_DOMAIN,))
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    # The provider's plugin stands in for its email service, in front of the sink.
    service = make_plugin_manager().hook.helpdesk_demo_service(
        name=provider, sink=sink, webhook_url=f"{base_url}/webhooks/{provider}")
    if service is None:
        raise click.ClickException(_why_no_demo(provider))
    app = create_app({"PROVIDER": provider, "BASE_URL": base_url, "SEND_RETRY_DELAY": 20,
                      "ORGANISATION": "Example Academy",
                      "SENDER_NAME": "Example Academy credentials", **service.settings})
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as error:
        raise click.ClickException(f"cannot serve on {host}:{port} ({error}); "
                                   "try --port with another number") from None
    sink.start()
    service.start()
    app.extensions["helpdesk_sink"] = sink
    with app.app_context():
        service.attach(plugins.provider())
        upgrade()
        fresh = db.session.scalar(select(func.count()).select_from(Delivery)) == 0
        password = reset_demo_user()
        if fresh:
            seed(app)
    threading.Thread(target=server.serve_forever, daemon=True, name="web").start()
    if fresh:
        threading.Thread(target=play_recipients, args=(app, sink, service), daemon=True,
                         name="demo-mail-app").start()
    click.echo(f"""
helpdesk demo
  Open      {base_url}/
  Sign in   {DEMO_USER}  /  {password}
  Database  {app.config['SQLALCHEMY_DATABASE_URI']}
  Provider  {provider}
  SMTP sink {sink.host}:{sink.port} (refuses {', '.join(TYPO_DOMAINS)}, {BLOCKING_DOMAIN}
            and {FULL_MAILBOX_DOMAIN})
Press Ctrl+C to stop.
""")
    consumer = huey_of(app).create_consumer(workers=2, worker_type="thread", periodic=True)
    try:
        consumer.run()  # in the main thread: it owns the signal handlers for a clean stop
    finally:
        server.shutdown()
        service.stop()
        sink.stop()
        reset_providers(app)
