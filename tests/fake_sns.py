"""A local stand-in for an Amazon SNS host, for the SES webhook's tests: a certificate authority
made for the test, an HTTPS server on loopback with a certificate for ``sns.<region>.
amazonaws.com`` from that authority, serving a signing certificate and answering subscription
confirmations, and a signer that makes SNS messages exactly as SNS signs them (SignatureVersion
1, SHA1, or 2, SHA256, RSA PKCS#1 v1.5 over the canonical fields).

    with FakeSnsHost() as sns:
        provider.sns = sns.fetcher()        # dials the fake, trusts the test's authority
        body = sns.notification(TOPIC, ses_record)   # a signed Notification, as bytes
        sns.certificate_fetches, sns.confirmations
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import tempfile
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from fake_api import FakeApi
from helpdesk_ses.certificates import SnsFetcher
from helpdesk_ses.webhook import string_to_sign

DATA = Path(__file__).parent / "data" / "ses"
REGION = "us-east-1"
HOST = f"sns.{REGION}.amazonaws.com"
CERT_PATH = "/SimpleNotificationService-01d088a6f77103d0fe307c0069e40ed6.pem"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool = False,
                 hosts: tuple[str, ...] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(h) for h in hosts]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class FakeSnsHost(FakeApi):
    def __init__(self, hosts: tuple[str, ...] = (HOST,)):
        super().__init__()
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca = _certificate("helpdesk test authority", ca_key, "helpdesk test authority",
                               ca_key, ca=True)
        server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        server = _certificate(hosts[0], server_key, "helpdesk test authority", ca_key,
                              hosts=hosts)
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signing_certificate = _pem(_certificate("sns.amazonaws.com", self.signing_key,
                                                     "helpdesk test authority", ca_key))
        self.confirmations: list[dict] = []
        self.certificate_fetches = 0
        with tempfile.TemporaryDirectory() as folder:  # ssl loads a chain from files only
            chain = Path(folder) / "server.pem"
            chain.write_bytes(server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()) + _pem(server))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(chain)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts only the test's authority."""
        return ssl.create_default_context(cadata=_pem(self.ca).decode())

    def fetcher(self, **kwargs) -> SnsFetcher:
        """A fetcher that dials this server for any host and trusts the test's authority."""
        return SnsFetcher(resolve=lambda host, port: ("127.0.0.1", self.port),
                          ssl_context=self.trust(), timeout=5, **kwargs)

    def get(self, request, raw: bytes) -> None:
        url = urlsplit(request.path)
        if url.path == CERT_PATH:
            with self._lock:
                self.certificate_fetches += 1
            return request.reply(200, self.signing_certificate.decode())
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/" and query.get("Action") == "ConfirmSubscription":
            with self._lock:
                self.confirmations.append(query)
            return request.reply(200, "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>"
                                      f"<SubscriptionArn>{query.get('TopicArn')}:"
                                      f"{uuid.uuid4()}</SubscriptionArn>"
                                      "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>")
        return request.reply(404, "<Error><Code>NotFound</Code></Error>")

    # --- messages, signed as SNS signs them ---------------------------------------------------

    def sign(self, envelope: dict, version: str = "1", key=None) -> dict:
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        envelope = {**envelope, "SignatureVersion": version}
        signature = (key or self.signing_key).sign(string_to_sign(envelope),
                                                   padding.PKCS1v15(), algorithm)
        envelope["Signature"] = base64.b64encode(signature).decode()
        return envelope

    def envelope(self, kind: str, topic: str, message: str, **fields) -> dict:
        """An SNS message exactly as the SNS developer guide's HTTP/HTTPS examples show it
        (``tests/data/ses/sns_*.json``), made new: its own id, topic, message and time."""
        name = "notification" if kind == "Notification" else "subscription_confirmation"
        envelope = json.loads((DATA / f"sns_{name}.json").read_text())
        envelope.update(MessageId=str(uuid.uuid4()), TopicArn=topic, Message=message,
                        Timestamp=dt.datetime.now(dt.timezone.utc).isoformat(
                            timespec="milliseconds").replace("+00:00", "Z"),
                        SigningCertURL=f"https://{HOST}{CERT_PATH}")
        if kind == "Notification":
            envelope["UnsubscribeURL"] = (f"https://{HOST}/?Action=Unsubscribe&"
                                          f"SubscriptionArn={topic}:{uuid.uuid4()}")
        else:
            envelope["Type"] = kind
            token = uuid.uuid4().hex * 4
            envelope["Token"] = token
            envelope["SubscribeURL"] = (f"https://{HOST}/?Action=ConfirmSubscription&"
                                        f"TopicArn={topic}&Token={token}")
        envelope.update(fields)
        return envelope

    def notification(self, topic: str, record: dict | str, version: str = "1",
                     **fields) -> dict:
        message = record if isinstance(record, str) else json.dumps(record)
        return self.sign(self.envelope("Notification", topic, message, **fields), version)

    def confirmation(self, topic: str, version: str = "1", **fields) -> dict:
        message = (f"You have chosen to subscribe to the topic {topic}.\nTo confirm the "
                   "subscription, visit the SubscribeURL included in this message.")
        return self.sign(self.envelope("SubscriptionConfirmation", topic, message, **fields),
                         version)
