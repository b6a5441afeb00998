"""Amazon SES for ``helpdesk demo --provider ses``: a local stand-in for the SES v2 API that hands
every email to the demo's SMTP sink and publishes the events SES would (Send, then Delivery, a
Permanent Bounce with the server's reply, or a DeliveryDelay) as signed SNS notifications to the
app's webhook, with a local stand-in for the SNS host that serves the signing certificate over
HTTPS (``LocalSnsHost``, which the tests use too).

The SNS host's TLS certificate and the signing certificate come from a certificate authority
made at start; only the demo's provider is told to trust it and to dial the local host
(``attach``). Production providers trust the system's store and dial the real host.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import tempfile
import threading
import uuid
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from helpdesk.demo_service import HttpStandIn, SmtpAnswer

from .certificates import SnsFetcher
from .webhook import string_to_sign

REGION = "us-east-1"
SNS_HOST = f"sns.{REGION}.amazonaws.com"
CERT_PATH = "/SimpleNotificationService-01d088a6f77103d0fe307c0069e40ed6.pem"
AUTHORITY = "helpdesk local test authority"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(subject: str, key, issuer_key, *, ca: bool = False,
                 hosts: tuple[str, ...] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AUTHORITY)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def now_iso() -> str:
    """The time as SNS and SES write it: ``2017-08-05T00:41:02.669Z``."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class LocalSnsHost:
    """An HTTPS server on loopback with a certificate for ``sns.<region>.amazonaws.com`` from a
    certificate authority of its own: it serves the signing certificate at ``CERT_PATH`` and
    answers ``?Action=ConfirmSubscription`` (kept in ``confirmations``); ``sign`` signs an SNS
    message as SNS does."""

    def __init__(self, host: str = SNS_HOST):
        authority_key = _key()
        self.authority = _certificate(AUTHORITY, authority_key, authority_key, ca=True)
        self.signing_key = _key()
        self.signing_certificate = _pem(_certificate("sns.amazonaws.com", self.signing_key,
                                                     authority_key))
        self.certificate_url = f"https://{host}{CERT_PATH}"
        self.confirmations: list[dict] = []
        self.certificate_fetches = 0
        server_key = _key()
        server = _certificate(host, server_key, authority_key, hosts=(host,))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:  # ssl loads a chain from files only
            chain = Path(folder) / "server.pem"
            chain.write_bytes(server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()) + _pem(server))
            context.load_cert_chain(chain)
        self._lock = threading.Lock()
        handler = type("Handler", (_SnsHandler,), {"host": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="local-sns")

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "LocalSnsHost":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalSnsHost":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fetcher(self, **kwargs) -> SnsFetcher:
        """A fetcher that dials this server for the SNS host and trusts only its authority."""
        trust = ssl.create_default_context(cadata=_pem(self.authority).decode())
        return SnsFetcher(resolve=lambda host, port: ("127.0.0.1", self.port),
                          ssl_context=trust, **kwargs)

    def sign(self, envelope: dict, version: str = "1", key=None) -> dict:
        """The message with its ``SignatureVersion`` and ``Signature``, as SNS signs it."""
        envelope = {"SigningCertURL": self.certificate_url, **envelope,
                    "SignatureVersion": version}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.signing_key).sign(string_to_sign(envelope),
                                                   padding.PKCS1v15(), algorithm)
        envelope["Signature"] = base64.b64encode(signature).decode()
        return envelope


class _SnsHandler(BaseHTTPRequestHandler):
    host: LocalSnsHost

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == CERT_PATH:
            with self.host._lock:
                self.host.certificate_fetches += 1
            return self._reply(200, self.host.signing_certificate)
        if url.path == "/" and query.get("Action") == "ConfirmSubscription":
            with self.host._lock:
                self.host.confirmations.append(query)
            return self._reply(200, (
                "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
                f"{query.get('TopicArn')}:{uuid.uuid4()}</SubscriptionArn>"
                "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>").encode())
        return self._reply(404, b"<Error><Code>NotFound</Code></Error>")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SesStandIn(HttpStandIn):
    name = "ses"
    topic = f"arn:aws:sns:{REGION}:000000000000:helpdesk-demo-events"
    configuration_set = "helpdesk-demo"

    def __init__(self, sink_host: str, sink_port: int, webhook_url: str):
        super().__init__(sink_host, sink_port, webhook_url)
        self.sns = LocalSnsHost()

    @property
    def settings(self) -> dict:
        return {"SES_REGION": REGION, "SES_ENDPOINT_URL": self.url,
                "SES_CONFIGURATION_SET": self.configuration_set,
                "SES_SNS_TOPIC_ARNS": [self.topic]}

    def start(self) -> None:
        self.sns.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        self.sns.stop()

    def attach(self, provider) -> None:
        provider.sns = self.sns.fetcher()
        # The demo process only: the SDK's credential chain finds a key for the stand-in,
        # which signs nothing real and reaches no AWS service.
        os.environ["AWS_ACCESS_KEY_ID"] = "AKIAHELPDESKDEMO0000"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "helpdesk-demo-secret-for-the-local-stand-in"

    def answer(self, method, path, headers, body):
        if (method, path) != ("POST", "/v2/email/outbound-emails"):
            return 404, {"message": "Not found"}
        request = json.loads(body)
        message_id = f"0100018c{uuid.uuid4().hex[:8]}-{uuid.uuid4()}-000000"
        to = request["Destination"]["ToAddresses"][0]
        address = parseaddr(to)[1]
        simple = request["Content"]["Simple"]
        tags = {"ses:configuration-set": [request.get("ConfigurationSetName", "")],
                **{t["Name"]: [t["Value"]] for t in request.get("EmailTags", [])}}
        mail = {"timestamp": now_iso(), "source": request["FromEmailAddress"],
                "sendingAccountId": "000000000000", "messageId": message_id,
                "destination": [address], "headersTruncated": False, "tags": tags}
        self._publish({"eventType": "Send", "mail": mail, "send": {}})
        self.deliver(request["FromEmailAddress"], to, simple["Subject"]["Data"],
                     simple["Body"]["Text"]["Data"], simple["Body"]["Html"]["Data"],
                     {h["Name"]: h["Value"] for h in simple.get("Headers", [])},
                     lambda answer: self._publish(self._event(mail, address, answer)))
        return 200, {"MessageId": message_id}

    @staticmethod
    def _event(mail: dict, address: str, answer: SmtpAnswer) -> dict:
        reply = f"{answer.code} {answer.text}"
        if answer.accepted:
            return {"eventType": "Delivery", "mail": mail, "delivery": {
                "timestamp": now_iso(), "processingTimeMillis": 120, "recipients": [address],
                "smtpResponse": reply, "reportingMTA": "a8-70.smtp-out.amazonses.com"}}
        if answer.permanent:
            return {"eventType": "Bounce", "mail": mail, "bounce": {
                "bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": address, "action": "failed",
                                       "status": answer.text.split(" ")[0],
                                       "diagnosticCode": f"smtp; {reply}"}],
                "timestamp": now_iso(), "feedbackId": str(uuid.uuid4()),
                "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"}}
        return {"eventType": "DeliveryDelay", "mail": mail, "deliveryDelay": {
            "timestamp": now_iso(), "delayType": "TransientCommunicationFailure",
            "expirationTime": now_iso(),
            "delayedRecipients": [{"emailAddress": address, "status": answer.text.split(" ")[0],
                                   "diagnosticCode": f"smtp; {reply}"}]}}

    def _publish(self, record: dict) -> None:
        """Post one SES event as the SNS topic's signed notification, later."""
        envelope = self.sns.sign({
            "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": self.topic,
            "Subject": "Amazon SES Email Event Notification", "Message": json.dumps(record),
            "Timestamp": now_iso(),
            "UnsubscribeURL": f"https://{SNS_HOST}/?Action=Unsubscribe&SubscriptionArn="
                              f"{self.topic}:{uuid.uuid4()}"})
        self.later(lambda: self.post_event(json.dumps(envelope).encode(), {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": envelope["MessageId"], "x-amz-sns-topic-arn": self.topic}))
