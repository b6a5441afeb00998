"""What every provider that sends through an HTTP API needs: one connection per thread, kept
for every message the thread sends, and one reading of the service's answer."""
from __future__ import annotations

import threading
from typing import Any, Callable

import requests

from .contract import SendResult, ServiceError


class ThreadSessions:
    """A ``requests.Session`` per thread (a batch costs one TLS handshake), all closed on
    ``close()``. ``setup`` adds the service's credentials to each new session."""

    def __init__(self, setup: Callable[[requests.Session], None]):
        self._setup = setup
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._setup(session)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


def send_result(service: str, post: Callable[[], requests.Response], *, timeout: float,
                message_id: Callable[[requests.Response], str | None],
                detail: Callable[[requests.Response], str]) -> SendResult:
    """Call ``post`` and read the answer: 2xx accepted; 429, 5xx, timeouts and connection
    failures deferred (retried); any other 4xx refused for good, with the service's reason."""
    try:
        response = post()
    except requests.Timeout:
        return SendResult.deferred(f"{service} did not answer within {timeout:g} s")
    except requests.RequestException as error:
        # The exception text names the URL, never the Authorization header.
        return SendResult.deferred(f"cannot reach {service}: {type(error).__name__}: {error}")
    status = response.status_code
    if 200 <= status < 300:
        return SendResult.accepted(message_id=message_id(response))
    if status == 429:
        return SendResult.deferred(f"{service} rate limit (HTTP 429): {detail(response)}")
    if 400 <= status < 500:
        return SendResult.refused(
            f"{service} refused the message (HTTP {status}): {detail(response)}")
    return SendResult.deferred(f"{service} is unavailable (HTTP {status}): {detail(response)}")


def api_answer(api: str, address: str, call: Callable[[], requests.Response], *,
               detail: Callable[[requests.Response], str], expect: int = 200,
               absent: int | None = None, json_object: bool = False) -> Any:
    """Make ``call``, a request to a service's ``api`` (e.g. "Mailgun's suppression API") about
    ``address``, and read its JSON answer: None for an empty answer or the ``absent`` status.

    :raises ServiceError: the service cannot be reached, answers another status than
        ``expect``, or answers no JSON (no JSON object, when ``json_object``).
    """
    try:
        response = call()
    except requests.RequestException as error:
        raise ServiceError(f"cannot reach {api} about {address}: "
                           f"{type(error).__name__}") from None
    if response.status_code == absent:
        return None
    if response.status_code != expect:
        raise ServiceError(f"{api} refused (HTTP {response.status_code}) for {address}: "
                           f"{detail(response)}")
    if not response.content and not json_object:
        return None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if payload is None or json_object and not isinstance(payload, dict):
        raise ServiceError(f"{api} answered no JSON{' object' * json_object} for {address}")
    return payload
