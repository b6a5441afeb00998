"""Bounce mailboxes the worker reads: a Maildir on this machine, or a mailbox on a mail server
over IMAP or POP3, always over TLS (implicit TLS, or STARTTLS that must succeed).

The three have one shape, so that ``helpdesk.maintenance`` reads them with one loop: ``keys()``
lists the messages there now, ``read(key)`` returns one message's bytes without changing it,
``remove(key)`` takes away a report once its events are committed. A message that is left
(not a report, or a report that cannot be read) is never touched: the reader remembers its key.

Pure: the standard library's imaplib, poplib and ssl, no Flask.
"""
from __future__ import annotations

import imaplib
import os
import poplib
import ssl
from typing import Protocol
from urllib.parse import unquote, urlsplit

# Seconds to wait for a mail server before this poll gives up (the next one tries again).
TIMEOUT = 60

SCHEMES = {  # scheme: (protocol, implicit TLS, default port)
    "imaps": ("imap", True, 993),
    "imap": ("imap", False, 143),
    "pop3s": ("pop3", True, 995),
    "pop3": ("pop3", False, 110),
}


class MailboxError(Exception):
    """The mailbox cannot be reached or read (a setting, the network, the server): this poll
    stops, nothing is taken from the mailbox, and the next poll tries again."""


class UnreadableMessage(MailboxError):
    """The server could not hand over this message whole, and the session is in doubt after
    it: the message is left and remembered, and the next poll goes on after it."""


class Mailbox(Protocol):
    name: str  # for logs and for remembering what was left: never holds a password

    def __enter__(self) -> "Mailbox": ...

    def __exit__(self, *exc) -> None: ...

    def keys(self) -> list[str]:
        """The messages in the mailbox now, oldest first."""

    def read(self, key: str) -> bytes | None:
        """One message as it is stored; None when it is gone (another worker took it)."""

    def remove(self, key: str) -> None:
        """Take away a message whose events are committed."""


def from_url(url: str, password: str | None, move_to: str | None = None) -> Mailbox:
    """The mailbox a ``BOUNCE_MAILBOX_URL`` names: ``imaps://user@host[:port][/folder]``
    (implicit TLS), ``imap://…`` (STARTTLS), ``pop3s://user@host[:port]`` or ``pop3://…``
    (STLS). The folder defaults to INBOX; ``move_to`` is the IMAP folder where reports read go
    (default: they are deleted)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise MailboxError(f"the bounce mailbox URL must start with {', '.join(SCHEMES)}:// "
                           f"(got {scheme or 'none'}://)")
    if parts.password is not None:
        raise MailboxError("the bounce mailbox URL holds a password: put it in "
                           "BOUNCE_MAILBOX_PASSWORD instead, which is kept secret")
    try:
        port = parts.port
    except ValueError as error:
        raise MailboxError(f"the bounce mailbox URL has a bad port: {error}") from None
    if not parts.hostname or not parts.username:
        raise MailboxError("the bounce mailbox URL needs a user and a host: "
                           f"{scheme}://user@host")
    if not password:
        raise MailboxError("BOUNCE_MAILBOX_PASSWORD is not set")
    protocol, implicit_tls, default_port = SCHEMES[scheme]
    folder = unquote(parts.path.strip("/"))
    server = dict(host=parts.hostname, port=port or default_port,
                  username=unquote(parts.username), password=password,
                  implicit_tls=implicit_tls)
    if protocol == "pop3":
        if folder:
            raise MailboxError("a POP3 mailbox has no folders: remove the path from the URL")
        if move_to:
            raise MailboxError("POP3 cannot move messages: leave BOUNCE_MAILBOX_MOVE_TO unset "
                               "(reports read are deleted)")
        return Pop3Mailbox(**server)
    for name in (folder, move_to or ""):
        if not name.isascii():  # IMAP spells other names in a modified UTF-7 we do not write
            raise MailboxError(f"the IMAP folder {name!r} has letters outside ASCII: rename it")
    return ImapMailbox(**server, folder=folder or "INBOX", move_to=move_to or None)


def _tls() -> ssl.SSLContext:
    # The system's trusted certificates (or SSL_CERT_FILE), with the host name checked.
    return ssl.create_default_context()


class Maildir:
    """A Maildir (BOUNCE_MAILDIR): the messages in ``new``; a report read is moved to ``cur``
    marked seen, by renaming its file as the format prescribes, so its bytes stay as they came.
    Two workers polling at once are harmless: the loser of a rename skips the file."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.name = f"maildir:{self.path}"
        self._new, self._cur = os.path.join(self.path, "new"), os.path.join(self.path, "cur")

    def __enter__(self) -> "Maildir":
        if not (os.path.isdir(self._new) and os.path.isdir(self._cur)):
            raise MailboxError(f"{self.path} is not a Maildir (it needs new/ and cur/)")
        return self

    def __exit__(self, *exc) -> None:
        pass

    def keys(self) -> list[str]:
        # Maildir names start with the time of delivery: sorted is oldest first.
        return sorted(name for name in os.listdir(self._new) if not name.startswith("."))

    def read(self, key: str) -> bytes | None:
        try:
            with open(os.path.join(self._new, key), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise UnreadableMessage(f"cannot read {key}: {error}") from None

    def remove(self, key: str) -> None:
        try:
            os.rename(os.path.join(self._new, key), os.path.join(self._cur, f"{key}:2,S"))
        except FileNotFoundError:  # another worker moved it first
            pass


def _quoted(name: str) -> str:
    """An IMAP mailbox name as a quoted string (names may hold spaces)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapMailbox:
    """One folder of an IMAP mailbox. Messages are read with ``BODY.PEEK[]``, so a message
    left stays unread for a person; a report read is moved to ``move_to`` (MOVE, or COPY and
    delete where the server lacks MOVE) or flagged deleted and expunged. Keys are
    ``UIDVALIDITY:UID``, so they never name another message."""

    def __init__(self, *, host: str, port: int, username: str, password: str,
                 implicit_tls: bool, folder: str, move_to: str | None):
        self.host, self.port, self.username = host, port, username
        self._password, self.implicit_tls = password, implicit_tls
        self.folder, self.move_to = folder, move_to
        scheme = "imaps" if implicit_tls else "imap"
        self.name = f"{scheme}://{username}@{host}:{port}/{folder}"
        self._conn: imaplib.IMAP4 | None = None
        self._validity = ""
        self._capabilities: set[str] = set()

    def _command(self, what: str, method, *args) -> list:
        """Run one command; its data, or MailboxError with the server's words."""
        try:
            kind, data = method(*args)
        except (imaplib.IMAP4.error, OSError) as error:
            raise MailboxError(f"{self.host}:{self.port}: {what}: {_text(error)}") from None
        if kind != "OK":
            words = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise MailboxError(f"{self.host}:{self.port} refused {what}: {words}")
        return [d for d in data if d is not None]

    def __enter__(self) -> "ImapMailbox":
        try:
            if self.implicit_tls:
                self._conn = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=_tls(),
                                               timeout=TIMEOUT)
            else:
                self._conn = imaplib.IMAP4(self.host, self.port, timeout=TIMEOUT)
        except (imaplib.IMAP4.error, OSError) as error:
            raise MailboxError(f"cannot connect to {self.host}:{self.port}: {_text(error)}") \
                from None
        try:
            self._open_folder()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open_folder(self) -> None:
        conn = self._conn
        if not self.implicit_tls:
            self._command("STARTTLS", conn.starttls, _tls())
        self._command("LOGIN", conn.login, self.username, self._password)
        [capabilities] = self._command("CAPABILITY", conn.capability)[-1:]
        self._capabilities = set(capabilities.decode("ascii", "replace").upper().split())
        self._command(f"SELECT {self.folder}", conn.select, _quoted(self.folder))
        self._validity = (conn.response("UIDVALIDITY")[1][0] or b"").decode("ascii")
        if self.move_to and not self._command("LIST", conn.list, '""', _quoted(self.move_to)):
            self._command(f"CREATE {self.move_to}", conn.create, _quoted(self.move_to))

    def __exit__(self, *exc) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            conn.shutdown()

    def _uid(self, *command: str) -> list:
        return self._command(f"UID {command[0]}", self._conn.uid, *command)

    def keys(self) -> list[str]:
        [found] = self._uid("SEARCH", "UNDELETED")[:1] or [b""]
        return [f"{self._validity}:{uid}" for uid in sorted(map(int, found.split()))]

    def read(self, key: str) -> bytes | None:
        for item in self._uid("FETCH", key.rpartition(":")[2], "(BODY.PEEK[])"):
            if isinstance(item, tuple) and b"BODY[]" in item[0]:
                return item[1]
        return None  # expunged meanwhile

    def remove(self, key: str) -> None:
        uid = key.rpartition(":")[2]
        if self.move_to and "MOVE" in self._capabilities:
            self._uid("MOVE", uid, _quoted(self.move_to))
            return
        if self.move_to:
            self._uid("COPY", uid, _quoted(self.move_to))
        self._uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self._capabilities:  # only this message, never one a person flagged
            self._uid("EXPUNGE", uid)
        else:
            self._command("EXPUNGE", self._conn.expunge)


class Pop3Mailbox:
    """A POP3 mailbox. A report read is marked with DELE, which the server carries out when
    the session ends with QUIT: a poll cut short deletes nothing, and its reports are read
    again next time (stored once). Keys are the server's UIDL ids."""

    def __init__(self, *, host: str, port: int, username: str, password: str,
                 implicit_tls: bool):
        self.host, self.port, self.username = host, port, username
        self._password, self.implicit_tls = password, implicit_tls
        self.name = f"{'pop3s' if implicit_tls else 'pop3'}://{username}@{host}:{port}"
        self._conn: poplib.POP3 | None = None
        self._numbers: dict[str, int] = {}
        self._in_doubt = False

    def __enter__(self) -> "Pop3Mailbox":
        try:
            if self.implicit_tls:
                conn = poplib.POP3_SSL(self.host, self.port, timeout=TIMEOUT, context=_tls())
            else:
                conn = poplib.POP3(self.host, self.port, timeout=TIMEOUT)
        except (poplib.error_proto, OSError) as error:
            raise MailboxError(f"cannot connect to {self.host}:{self.port}: {error}") from None
        self._conn = conn
        try:
            if not self.implicit_tls:
                conn.stls(context=_tls())
            conn.user(self.username)
            conn.pass_(self._password)
        except (poplib.error_proto, OSError) as error:
            self._in_doubt = True  # no QUIT: nothing was marked
            self.__exit__()
            raise MailboxError(f"{self.host}:{self.port}: {_text(error)}") from None
        return self

    def __exit__(self, *exc) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._in_doubt:
            conn.close()  # without QUIT the server deletes nothing
            return
        try:
            conn.quit()
        except (poplib.error_proto, OSError) as error:
            conn.close()
            raise MailboxError(f"{self.host}:{self.port}: QUIT failed, the reports read stay "
                               f"and are read again: {_text(error)}") from None

    def _call(self, method, *args):
        if self._in_doubt:
            raise MailboxError("the POP3 session is in doubt after an unreadable message")
        try:
            return method(*args)
        except (poplib.error_proto, OSError) as error:
            self._in_doubt = True
            raise MailboxError(f"{self.host}:{self.port}: {_text(error)}") from None

    def keys(self) -> list[str]:
        _, lines, _ = self._call(self._conn.uidl)
        numbers = {}
        for line in lines:
            number, _, uid = line.decode("ascii", "replace").partition(" ")
            numbers[uid.strip()] = int(number)
        self._numbers = numbers
        return sorted(numbers, key=numbers.__getitem__)

    def read(self, key: str) -> bytes | None:
        try:
            _, lines, _ = self._conn.retr(self._numbers[key])
        except poplib.error_proto as error:
            # poplib refuses lines over 2048 bytes and stops mid-answer: the rest of this
            # message is still on the wire, so the session cannot go on.
            self._in_doubt = True
            raise UnreadableMessage(f"the server's copy cannot be read: {_text(error)}") \
                from None
        except OSError as error:
            self._in_doubt = True
            raise MailboxError(f"{self.host}:{self.port}: {error}") from None
        return b"\r\n".join(lines) + b"\r\n"

    def remove(self, key: str) -> None:
        self._call(self._conn.dele, self._numbers[key])


def _text(error: Exception) -> str:
    return " ".join(str(a.decode("utf-8", "replace") if isinstance(a, bytes) else a)
                    for a in error.args)
