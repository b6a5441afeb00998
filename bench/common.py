"""What the benchmark scripts share: the machine's description, timing figures, signed webhook
bodies shaped like the providers' own, and bulk seeding of the database. The load tests import
it too (by path), so a benchmark and a test post the very same requests."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
# SendGrid's events for one message, in the order they usually happen.
SENDGRID_LIFECYCLE = ("processed", "delivered", "open", "click")


def machine() -> str:
    """nproc, the CPU model and the Python version: where the figures came from."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()} "
            f"({sys.implementation.name}), {platform.system()} {platform.release()}")


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def timings(fn: Callable[[], Any], repeat: int, warmup: int = 2) -> list[float]:
    """Seconds each of ``repeat`` calls took, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(samples: Sequence[float]) -> str:
    return (f"median {statistics.median(samples) * 1000:.2f} ms, "
            f"p95 {percentile(samples, 0.95) * 1000:.2f} ms")


def verdict(ratio: float, goal: float, higher_is_better: bool = True) -> str:
    met = ratio >= goal if higher_is_better else ratio <= goal
    sign = ">=" if higher_is_better else "<="
    return f"goal {sign} {goal:g}: {'met' if met else 'NOT met'}"


# --- SendGrid ---------------------------------------------------------------------------------

class SendgridSigner:
    """A fresh P-256 key pair, signing bodies the way SendGrid's Signed Event Webhook does."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SENDGRID_SIGNATURE: base64.b64encode(signature).decode(),
                SENDGRID_TIMESTAMP: stamp, "Content-Type": "application/json"}


def sendgrid_event(name: str, correlation_id: str, email: str, when: float,
                   event_id: str | None = None) -> dict:
    """One event as SendGrid's Event Webhook posts it (custom args flattened into it)."""
    event = {"email": email, "timestamp": int(when), "event": name,
             "sg_event_id": event_id or uuid.uuid4().hex,
             "sg_message_id": f"{correlation_id[:22]}.filter0001.1-1",
             "helpdesk_delivery": correlation_id, "category": ["credential"]}
    if name == "delivered":
        event["response"] = "250 2.0.0 OK"
    if name in ("open", "click"):
        event["useragent"] = "Mozilla/5.0"
        event["ip"] = "192.0.2.1"
    if name == "click":
        event["url"] = "https://issuer.example/credential"
    return event


def sendgrid_batches(deliveries: Sequence[tuple[str, str]], batch_size: int, batches: int,
                     duplicates: float = 0.2, seed: int = 1) -> tuple[list[list[dict]], int]:
    """``batches`` event batches of ``batch_size`` for the (correlation id, address) pairs:
    each batch has ``duplicates`` of its events repeated (from itself or an earlier batch, as a
    provider's retries do) and is shuffled. Returns the batches and how many events are unique."""
    rng = random.Random(seed)
    unique_per_batch = batch_size - int(batch_size * duplicates)
    fresh = _lifecycle_events(deliveries, rng)
    seen: list[dict] = []
    out = []
    for _ in range(batches):
        batch = [next(fresh) for _ in range(unique_per_batch)]
        pool = seen + batch
        batch += [rng.choice(pool) for _ in range(batch_size - unique_per_batch)]
        rng.shuffle(batch)
        seen.extend(batch[:unique_per_batch])
        out.append(batch)
    return out, unique_per_batch * batches


def _lifecycle_events(deliveries: Sequence[tuple[str, str]], rng: random.Random):
    """Events of each delivery in turn (processed, delivered, maybe opened and clicked, or a
    bounce), endlessly: a delivery's events get fresh ids each round."""
    now = time.time() - 3600
    while True:
        for correlation_id, email in deliveries:
            names = list(SENDGRID_LIFECYCLE) if rng.random() < 0.8 else ["processed", "bounce"]
            for offset, name in enumerate(names):
                yield sendgrid_event(name, correlation_id, email, now + offset)


# --- Mailgun ----------------------------------------------------------------------------------

def mailgun_body(signing_key: str, event: str, correlation_id: str, email: str, when: float,
                 event_id: str | None = None, token: str | None = None,
                 timestamp: int | None = None) -> bytes:
    """One signed Mailgun webhook request body (JSON, one event)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(signing_key.encode(), f"{stamp}{token}".encode(),
                         hashlib.sha256).hexdigest()
    data = {"event": event, "id": event_id or uuid.uuid4().hex[:22], "timestamp": when,
            "recipient": email, "user-variables": {"helpdesk_delivery": correlation_id},
            "message": {"headers": {"message-id": f"{correlation_id}@mg.example"}}}
    if event == "failed":
        data.update(severity="permanent", reason="bounce",
                    **{"delivery-status": {"code": 550, "message": "5.1.1 no such user"}})
    return json.dumps({"signature": {"timestamp": stamp, "token": token,
                                     "signature": signature},
                       "event-data": data}).encode()


# --- seeding ----------------------------------------------------------------------------------

def seed_deliveries(count: int, provider: str, domains: int = 50,
                    credential_title: str = "Bench credential") -> list[tuple[str, str]]:
    """A published credential with ``count`` recipients, each with one queued delivery (in
    the current app context). Returns the (correlation id, address) of each delivery."""
    from sqlalchemy import insert, select

    from helpdesk.models import (Credential, CredentialState, Delivery, Recipient, db,
                                 utcnow)

    now = utcnow()
    credential = Credential(title=credential_title, state=CredentialState.published,
                            published_at=now)
    db.session.add(credential)
    db.session.flush()
    recipients = [{"credential_id": credential.id, "name": f"Recipient {i}",
                   "email": f"r{i}@d{i % domains}.example", "email_domain": f"d{i % domains}.example",
                   "status": "sending", "nudges": 0, "created_at": now, "updated_at": now}
                  for i in range(count)]
    db.session.execute(insert(Recipient), recipients)
    ids = db.session.scalars(select(Recipient.id).where(Recipient.credential_id == credential.id)
                             .order_by(Recipient.id)).all()
    pairs = [(uuid.uuid4().hex, r["email"]) for r in recipients]
    db.session.execute(insert(Delivery), [
        {"recipient_id": rid, "email": email, "provider": provider, "correlation_id": cid,
         "status": "sending", "attempts": 1, "kind": "send", "created_at": now,
         "send_due_at": now, "sent_at": now}
        for rid, (cid, email) in zip(ids, pairs)])
    db.session.commit()
    return pairs


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def messages_already_in(folders: list[Path]) -> set[str]:
    """Fingerprints of every message in some scoring sets (``fingerprint``), so that a new set
    copies none of them again."""
    return {fingerprint(p.read_bytes()) for folder in folders
            for p in (folder / "messages").rglob("*") if p.is_file()}


def fingerprint(raw: bytes) -> str:
    """A message's bytes, line ends aside (a CRLF copy is the same message)."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()
