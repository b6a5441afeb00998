"""Sending: five thousand credential emails through the SMTP provider into the embedded sink
(``helpdesk.sink.SmtpSink``, aiosmtpd on loopback).

Measured two ways, each against the same baseline timed in the same round:

(a) ``SmtpProvider.send`` alone over the 5,000 messages: the provider's own overhead (building
    the MIME message, checking its connection, reading the server's answers);
(b) the whole send path: a credential published with 5,000 recipients on SQLite, then
    ``helpdesk.sending.send_batch`` over its delivery ids in batches of ``BATCH_SIZE`` as the
    worker runs it (claiming, rendering both email templates, sending, recording every answer
    as an event and the recipients' statuses).

Baselines, each over one ``smtplib`` connection to the same sink: (1) a bare loop sending the
same messages as bytes serialised in advance; (2) a loop that builds each ``EmailMessage`` with
the standard modern policy (``email.policy.default``; the SMTP provider's own reuses the header
classes, see ``helpdesk_smtp.POLICY``) and sends it. Goals: (b) at
least 0.2 of (1), which is what MIME building leaves room for, and at least 0.8 of (2): the
claim, the lease and recording each answer before the next message cost little beside building
and sending it.

The four take turns batch by batch (``BATCH_SIZE`` messages each), so that a machine whose load
changes from one minute to the next slows them alike and the ratios stay comparable.

    python bench/send.py [--messages 5000] [--rounds 3] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import smtplib
import statistics
import sys
import tempfile
import time
from email.policy import SMTP, default
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, verdict  # noqa: E402

GOAL_RATIO_BARE = 0.2
GOAL_RATIO_BUILDING = 0.8


def build_app(workdir: Path, sink):
    from helpdesk import create_app

    return create_app({
        "INSTANCE_PATH": str(workdir / "instance"), "SECRET_KEY": "bench-secret",
        "DATABASE_URL": f"sqlite:///{workdir / 'helpdesk.db'}",
        # A queue nobody reads: publishing queues the sends, the bench runs them itself.
        "QUEUE_URL": str(workdir / "queue.db"),
        "PROVIDER": "smtp", "SMTP_HOST": sink.host, "SMTP_PORT": sink.port,
        "SENDER": "credentials@issuer.example", "BASE_URL": "https://desk.issuer.example",
        "RATELIMIT_ENABLED": False,
    })


def publish(app, count: int, round_number: int) -> list[int]:
    """A credential published with ``count`` recipients; the ids of its queued deliveries."""
    from sqlalchemy import select

    from helpdesk.credentials import create_credential
    from helpdesk.models import Delivery, Recipient, db

    with app.app_context():
        credential = create_credential(
            f"Data Protection Practitioner, round {round_number}",
            [{"name": f"Participant {i} Example", "email": f"participant{i}@d{i % 50}.example"}
             for i in range(count)], state="published")
        return db.session.scalars(select(Delivery.id).join(Recipient)
                                  .where(Recipient.credential_id == credential.id)
                                  .order_by(Delivery.id)).all()


def messages_of(app, delivery_ids: list[int]):
    """The Message each delivery would send (rendered by the app, not timed)."""
    from sqlalchemy import select

    from helpdesk.sending import build_message
    from helpdesk.models import Delivery, db

    with app.app_context():
        deliveries = db.session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))
                                        .order_by(Delivery.id)).all()
        return [build_message(d) for d in deliveries]


def run_bare(conn: smtplib.SMTP, envelopes: list[tuple[str, str, bytes]]) -> float:
    start = time.perf_counter()
    for envelope_from, to, data in envelopes:
        conn.sendmail(envelope_from, [to], data)
    return time.perf_counter() - start


def run_building(conn: smtplib.SMTP, messages, sender_name: str) -> float:
    from helpdesk_smtp import build_email, verp_address

    start = time.perf_counter()
    for m in messages:
        # The standard modern policy, not the provider's own (which reuses header classes):
        # what building an EmailMessage costs as the email package comes.
        conn.sendmail(verp_address(m.sender, m.correlation_id), [m.to],
                      build_email(m, sender_name, policy=default).as_bytes(policy=SMTP))
    return time.perf_counter() - start


def run_provider(app, messages) -> float:
    from helpdesk import plugins

    with app.app_context():
        provider = plugins.provider("smtp")
        start = time.perf_counter()
        outcomes = [provider.send(m).outcome for m in messages]
        elapsed = time.perf_counter() - start
    if set(outcomes) != {"accepted"}:
        raise SystemExit(f"the provider did not accept every message: {set(outcomes)}")
    return elapsed


def run_send_path(app, batch: list[int], profile: cProfile.Profile | None) -> float:
    from helpdesk.sending import send_batch

    with app.app_context():
        start = time.perf_counter()
        if profile:
            profile.enable()
        counts = send_batch(batch)
        if profile:
            profile.disable()
        elapsed = time.perf_counter() - start
    if counts != {"accepted": len(batch)}:
        raise SystemExit(f"send_batch did not send every delivery: {counts}")
    return elapsed


def check_recorded(app, delivery_ids: list[int]) -> None:
    from sqlalchemy import func, select

    from helpdesk.models import Delivery, DeliveryEvent, db

    with app.app_context():
        answered = db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
            DeliveryEvent.delivery_id.in_(delivery_ids), DeliveryEvent.type == "accepted"))
        unsent = db.session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.id.in_(delivery_ids), Delivery.sent_at.is_(None)))
    if answered != len(delivery_ids) or unsent:
        raise SystemExit(f"send_batch did not record every answer: {answered} answers "
                         f"recorded, {unsent} unsent")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="profile the whole send path (b) and print its hot spots")
    args = parser.parse_args(argv)

    from helpdesk.models import db
    from helpdesk.publishing import BATCH_SIZE
    from helpdesk.sink import SmtpSink
    from helpdesk_smtp import build_email, verp_address

    workdir = Path(tempfile.mkdtemp(prefix="hd-bench-send-"))
    profile = cProfile.Profile() if args.profile else None
    rates: dict[str, list[float]] = {"bare": [], "building": [], "provider": [],
                                     "send_path": []}
    with SmtpSink() as sink:
        app = build_app(workdir, sink)
        with app.app_context():
            db.create_all()
        sender_name = app.config["SENDER_NAME"]
        for round_number in range(1, args.rounds + 1):
            ids = publish(app, args.messages, round_number)
            messages = messages_of(app, ids)
            envelopes = [(verp_address(m.sender, m.correlation_id), m.to,
                          build_email(m, sender_name).as_bytes(policy=SMTP)) for m in messages]
            caught = len(sink.messages)
            seconds = dict.fromkeys(rates, 0.0)
            conn = smtplib.SMTP(sink.host, sink.port)
            conn.ehlo()
            for start in range(0, len(ids), BATCH_SIZE):
                part = slice(start, start + BATCH_SIZE)
                seconds["bare"] += run_bare(conn, envelopes[part])
                seconds["building"] += run_building(conn, messages[part], sender_name)
                seconds["provider"] += run_provider(app, messages[part])
                seconds["send_path"] += run_send_path(app, ids[part], profile)
            conn.quit()
            check_recorded(app, ids)
            if len(sink.messages) - caught != 4 * args.messages:
                raise SystemExit("the sink did not catch every message")
            for name, elapsed in seconds.items():
                rates[name].append(args.messages / elapsed)
            print(f"  round {round_number}: " + ", ".join(
                f"{name} {args.messages / s:,.0f}/s" for name, s in seconds.items()))

    size = statistics.median(len(e[2]) for e in envelopes)
    print(f"send: {args.messages:,} messages (median {size:,.0f} bytes) into the embedded sink, "
          f"{args.rounds} rounds (median, range); {machine()}")

    def line(label: str, name: str) -> str:
        values = rates[name]
        return (f"  {label:34}: {statistics.median(values):7,.0f} messages/s "
                f"({min(values):,.0f}–{max(values):,.0f})")

    bare = statistics.median(rates["bare"])
    building = statistics.median(rates["building"])
    print(line("(1) bare smtplib loop", "bare"))
    print(line("(2) loop building each message", "building"))
    provider_ratio = statistics.median(rates["provider"]) / bare
    print(line("(a) SmtpProvider.send", "provider") + f"; ratio to (1) {provider_ratio:.2f}")
    path = statistics.median(rates["send_path"])
    print(line("(b) send_batch (claim, render, send, record)", "send_path")
          + f"; ratio to (1) {path / bare:.2f} ({verdict(path / bare, GOAL_RATIO_BARE)}), "
          f"to (2) {path / building:.2f} ({verdict(path / building, GOAL_RATIO_BUILDING)})")
    if profile:
        print("\nhot spots of (b), by cumulative time:")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
