"""A local stand-in for an Amazon SNS host, for the SES webhook's tests: the SES plugin's own
(``helpdesk_ses.demo.LocalSnsHost``: an HTTPS server on loopback with a certificate for
``sns.us-east-1.amazonaws.com`` from a certificate authority made for the run, serving the
signing certificate and answering subscription confirmations), plus messages shaped exactly as
the SNS developer guide's HTTP/HTTPS examples (``tests/data/ses/sns_*.json``), signed as SNS
signs them.

    with FakeSnsHost() as sns:
        provider.sns = sns.fetcher()        # dials the fake, trusts only its authority
        envelope = sns.notification(TOPIC, ses_record)   # a signed Notification
        sns.certificate_fetches, sns.confirmations
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from helpdesk_ses.demo import CERT_PATH, SNS_HOST as HOST, LocalSnsHost, now_iso

DATA = Path(__file__).parent / "data" / "ses"
__all__ = ["CERT_PATH", "HOST", "FakeSnsHost"]


class FakeSnsHost(LocalSnsHost):
    def fetcher(self, **kwargs):
        return super().fetcher(timeout=5, **kwargs)

    def envelope(self, kind: str, topic: str, message: str, **fields) -> dict:
        """An SNS message as the developer guide shows it, made new: its own id, topic,
        message and time."""
        name = "notification" if kind == "Notification" else "subscription_confirmation"
        envelope = json.loads((DATA / f"sns_{name}.json").read_text())
        envelope.update(Type=kind, MessageId=str(uuid.uuid4()), TopicArn=topic,
                        Message=message, Timestamp=now_iso(),
                        SigningCertURL=self.certificate_url)
        if kind == "Notification":
            envelope["UnsubscribeURL"] = (f"https://{HOST}/?Action=Unsubscribe&"
                                          f"SubscriptionArn={topic}:{uuid.uuid4()}")
        else:
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
