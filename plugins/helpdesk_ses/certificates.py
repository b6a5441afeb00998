"""Fetching from Amazon SNS: its signing certificates (cached by URL) and the confirmation of a
subscription. Only ``https`` URLs on an Amazon SNS host are ever fetched
(``webhook.check_sns_url``), over TLS verified against the system's trust store, so a message
cannot make helpdesk trust a key, or call a URL, of someone else's choosing.

Tests stand a local HTTPS server in for the SNS host: ``resolve`` maps the host and port to the
address actually dialled (the name is still the one TLS verifies), and ``ssl_context`` trusts
the test's own certificate authority. Production uses neither.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections import OrderedDict
from typing import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from helpdesk.contract import SignatureError, WebhookError

from .webhook import check_sns_url, load_signing_key

Resolve = Callable[[str, int], tuple[str, int]]
MAX_BYTES = 64 * 1024  # a signing certificate is about 2 KiB
CACHE_SIZE = 32  # SNS signs with a handful of certificates per region at a time


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection that dials ``address`` but verifies the certificate of ``host``."""

    def __init__(self, host: str, address: tuple[str, int], context: ssl.SSLContext,
                 timeout: float):
        super().__init__(host, 443, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class SnsFetcher:
    def __init__(self, *, timeout: float = 10, resolve: Resolve | None = None,
                 ssl_context: ssl.SSLContext | None = None):
        self.timeout = timeout
        self._resolve = resolve or (lambda host, port: (host, port))
        self._context = ssl_context or ssl.create_default_context()
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()
        self.fetched = 0  # certificates fetched, not served from the cache

    def signing_key(self, url: str) -> rsa.RSAPublicKey:
        """The key of the signing certificate at ``url``, fetched once and cached.

        :raises SignatureError: the URL is not on an SNS host, or no certificate is there.
        """
        check_sns_url(url, "SigningCertURL")
        with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
        try:
            pem = self.get(url, "SigningCertURL")
        except WebhookError as error:
            raise SignatureError(f"cannot fetch the SNS signing certificate: {error}") from None
        key = load_signing_key(pem)
        with self._lock:
            self.fetched += 1
            self._keys[url] = key
            while len(self._keys) > CACHE_SIZE:
                self._keys.popitem(last=False)
        return key

    def get(self, url: str, what: str) -> bytes:
        """GET an SNS URL; its body on 200.

        :raises SignatureError: the URL is not an https URL on an SNS host.
        :raises WebhookError: (502) SNS cannot be reached or answers anything but 200.
        """
        check_sns_url(url, what)
        parts = urlsplit(url)
        host = parts.hostname
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        connection = _Connection(host, self._resolve(host, 443), self._context, self.timeout)
        try:
            connection.request("GET", target, headers={"User-Agent": "helpdesk-ses"})
            response = connection.getresponse()
            body = response.read(MAX_BYTES + 1)
        except (OSError, http.client.HTTPException) as error:
            raise WebhookError(f"cannot reach {host}: {type(error).__name__}: {error}", 502) \
                from None
        finally:
            connection.close()
        if response.status != 200:
            raise WebhookError(f"{host} answered HTTP {response.status} to the {what}", 502)
        if len(body) > MAX_BYTES:
            raise WebhookError(f"{host} answered more than {MAX_BYTES} bytes to the {what}",
                               502)
        return body
