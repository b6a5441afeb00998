"""The Amazon SES provider: sends through the SES v2 API with the AWS SDK (boto3) and reads SES's
events as Amazon SNS posts them (``helpdesk_ses.webhook``), checking every SNS signature against
its signing certificate (``helpdesk_ses.certificates``).

Settings: ``HELPDESK_SES_REGION`` (else the AWS chain's region:
``AWS_DEFAULT_REGION``, ``~/.aws/config``), ``HELPDESK_SES_CONFIGURATION_SET`` (the
configuration set whose event destination publishes to SNS), ``HELPDESK_SES_SNS_TOPIC_ARNS``
(the topics whose messages are accepted and whose subscription is confirmed) and
``HELPDESK_SES_ENDPOINT_URL`` (the region's endpoint unless set). Credentials come from the
standard AWS chain (environment, shared files, an instance or task role): helpdesk holds none.

A send is one ``SendEmail``: the delivery's correlation id travels as the message tag
``helpdesk_delivery`` (which SES puts on every event it publishes) and as our header. SES
answers the ``MessageId``; a throttling error or a 5xx is transient, and the queue retries it
(the SDK itself does not retry, so the backoff is ours alone); any other refusal (an unverified
sender, a paused account, an unknown configuration set) is for good.

The suppression list is the account-level suppression list: ``suppression_lookup`` asks
``GetSuppressedDestination``, ``suppression_remove`` calls ``DeleteSuppressedDestination``.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from email.utils import formataddr
from typing import Any, Mapping

from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError,
                                 NoCredentialsError, NoRegionError, PartialCredentialsError,
                                 ReadTimeoutError)

from helpdesk import hookimpl
from helpdesk.contract import (CORRELATION_VARIABLE, Message, SendResult, ServiceError,
                               Setting, Suppression, WebhookError)

from .certificates import SnsFetcher
from .demo import SesStandIn
from .webhook import (allowed_topics, check_timestamp, parse_notification, read_envelope,
                      verify_signature)

log = logging.getLogger(__name__)
THROTTLED = frozenset({"TooManyRequestsException", "LimitExceededException", "Throttling",
                       "ThrottlingException"})


def send_email_request(message: Message, sender_name: str = "",
                       configuration_set: str | None = None) -> dict[str, Any]:
    """The ``SendEmail`` parameters for one message."""
    request: dict[str, Any] = {
        "FromEmailAddress": formataddr((sender_name, message.sender)),
        "Destination": {"ToAddresses": [formataddr((message.to_name, message.to))]},
        "Content": {"Simple": {
            "Subject": {"Data": message.subject, "Charset": "UTF-8"},
            "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"},
                     "Html": {"Data": message.html, "Charset": "UTF-8"}},
            "Headers": [{"Name": name, "Value": value}
                        for name, value in message.headers.items()],
        }},
        "EmailTags": [{"Name": CORRELATION_VARIABLE, "Value": message.correlation_id}],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return request


def _error(error: ClientError) -> tuple[str, int, str]:
    """(code, HTTP status, message) of an SES error answer."""
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return details.get("Code") or "Error", int(status), details.get("Message") or ""


class SesProvider:
    """One SES client per provider, made on first use and shared by every thread (boto3's
    clients are thread-safe)."""

    name = "ses"
    reports_deliveries = True  # SES publishes Delivery events

    def __init__(self, config: Mapping[str, Any]):
        self.region = config.get("SES_REGION") or None
        self.endpoint_url = config.get("SES_ENDPOINT_URL") or None
        self.configuration_set = config.get("SES_CONFIGURATION_SET") or None
        self.topics = allowed_topics(config.get("SES_SNS_TOPIC_ARNS"))
        self.tolerance = float(config.get("WEBHOOK_TOLERANCE_SECONDS") or 600)
        self.timeout = float(config.get("SEND_TIMEOUT") or 20)
        self.sender_name = config.get("SENDER_NAME") or ""
        self.sns = SnsFetcher(timeout=self.timeout)
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SesProvider {self.region or 'default region'} {self.configuration_set}>"

    def client(self):
        """The SES v2 client. Raises botocore's NoRegionError when no region is set."""
        with self._lock:
            if self._client is None:
                # boto3 takes a fifth of a second to import: only an app that talks to SES
                # pays it, not every app that loads the plugins.
                import boto3
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    "sesv2", region_name=self.region, endpoint_url=self.endpoint_url,
                    config=Config(connect_timeout=self.timeout, read_timeout=self.timeout,
                                  retries={"total_max_attempts": 1},
                                  user_agent_extra="helpdesk-ses"))
            return self._client

    def send(self, message: Message) -> SendResult:
        request = send_email_request(message, self.sender_name, self.configuration_set)
        try:
            answer = self.client().send_email(**request)
        except ClientError as error:
            code, status, words = _error(error)
            if code in THROTTLED:
                return SendResult.deferred(f"Amazon SES rate limit ({code}): {words}")
            if status >= 500:
                return SendResult.deferred(f"Amazon SES is unavailable (HTTP {status}, "
                                           f"{code}): {words}")
            return SendResult.refused(f"Amazon SES refused the message ({code}): {words}")
        except (NoCredentialsError, PartialCredentialsError):
            return SendResult.refused("no AWS credentials: give them to helpdesk the standard "
                                      "AWS way (environment, shared files or a role)")
        except NoRegionError:
            return SendResult.refused("no AWS region: set HELPDESK_SES_REGION or "
                                      "AWS_DEFAULT_REGION")
        except (ConnectTimeoutError, ReadTimeoutError):
            return SendResult.deferred(f"Amazon SES did not answer within {self.timeout:g} s")
        except BotoCoreError as error:
            return SendResult.deferred(f"cannot reach Amazon SES: {type(error).__name__}: "
                                       f"{error}")
        return SendResult.accepted(message_id=answer.get("MessageId"))

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raise unless the body is an SNS message from an allowed topic, signed by the key of
        an SNS signing certificate, and fresh. SNS signs no one-time token: its retries carry
        the same ``MessageId``, the dedupe key."""
        envelope = read_envelope(raw_body, self.topics)
        said = headers.get("x-amz-sns-message-type")
        if said and said != envelope["Type"]:
            raise WebhookError(f"x-amz-sns-message-type says {said[:40]!r}, the body says "
                               f"{envelope['Type']!r}")
        verify_signature(envelope, self.sns.signing_key(envelope["SigningCertURL"]))
        check_timestamp(envelope, tolerance=self.tolerance)
        return None

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes):
        """The events of a Notification. A SubscriptionConfirmation (its topic is allowed, or
        it would not have been verified) is confirmed by fetching its ``SubscribeURL``."""
        envelope = read_envelope(raw_body, self.topics)
        if envelope["Type"] == "SubscriptionConfirmation":
            self.sns.get(envelope["SubscribeURL"], "SubscribeURL")
            log.info("confirmed the SNS subscription to %s", envelope["TopicArn"])
            return []
        if envelope["Type"] == "UnsubscribeConfirmation":
            log.warning("SNS says %s no longer posts here", envelope["TopicArn"])
            return []
        return parse_notification(envelope)

    def suppression_lookup(self, address: str) -> Suppression | None:
        try:
            found = self.client().get_suppressed_destination(EmailAddress=address)
        except ClientError as error:
            if _error(error)[0] == "NotFoundException":
                return None
            raise self._service_error(error, address) from None
        except BotoCoreError as error:
            raise self._service_error(error, address) from None
        entry = found.get("SuppressedDestination") or {}
        reason = str(entry.get("Reason") or "").lower()
        since = entry.get("LastUpdateTime")
        return Suppression(address=address, list="account-level suppression list",
                           reason=f"added after a {reason}" if reason else "",
                           since=since.astimezone(timezone.utc)
                           if isinstance(since, datetime) else None)

    def suppression_remove(self, address: str) -> bool:
        try:
            self.client().delete_suppressed_destination(EmailAddress=address)
        except ClientError as error:
            if _error(error)[0] == "NotFoundException":
                return False
            raise self._service_error(error, address) from None
        except BotoCoreError as error:
            raise self._service_error(error, address) from None
        return True

    @staticmethod
    def _service_error(error: Exception, address: str) -> ServiceError:
        if isinstance(error, ClientError):
            code, status, words = _error(error)
            return ServiceError(f"Amazon SES refused the suppression-list request for "
                                f"{address} (HTTP {status}, {code}): {words}")
        return ServiceError(f"cannot ask Amazon SES about {address}: "
                            f"{type(error).__name__}: {error}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


@hookimpl
def helpdesk_settings():
    return [
        Setting("SES_REGION", None, "the AWS region to send in; else the AWS chain's"),
        Setting("SES_CONFIGURATION_SET", None,
                "the configuration set whose event destination publishes to SNS"),
        Setting("SES_SNS_TOPIC_ARNS", None,
                "the SNS topics whose messages are taken and whose subscription is confirmed"),
        Setting("SES_ENDPOINT_URL", None, "another SES endpoint; else the region's"),
    ]


@hookimpl
def helpdesk_providers(config):
    return [SesProvider(config)]


@hookimpl
def helpdesk_demo_service(name, sink, webhook_url):
    if name == SesProvider.name:
        return SesStandIn(sink.host, sink.port, webhook_url)
