"""A real IMAP and POP3 server for the tests: Debian's Dovecot, started on loopback with a
configuration of its own in a temporary folder (its own ports, users in a passwd-file, a
self-signed certificate, the mail in Maildirs there), so that no system service is needed.
TLS is required before any login: implicit on the imaps/pop3s ports, STARTTLS/STLS on the
others."""
from __future__ import annotations

import grp
import imaplib
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from helpdesk.sink import free_port

from certificates import self_signed
from processes import stop

DOVECOT = "/usr/sbin/dovecot"
ACCOUNTS = 100  # more than the tests of one module use

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail} gid={mail_group} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"""


def _users() -> dict[str, str]:
    """Who Dovecot's processes run as. Its login processes and mail access refuse root: as
    root, the users Debian's package creates, and ``nobody`` for the mail; as anyone else,
    that user throughout."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(me.pw_gid).gr_name
        return dict(internal=me.pw_name, internal_group=group, login=me.pw_name,
                    mail=me.pw_name, mail_group=group)
    nobody = pwd.getpwnam("nobody")
    return dict(internal="dovecot", internal_group="dovecot", login="dovenull",
                mail=nobody.pw_uid, mail_group=nobody.pw_gid)


class Dovecot:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="helpdesk-dovecot-"))
        self.root.chmod(0o755)  # the mail and auth processes run as other users
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.cert, key = self_signed(self.root)
        self.users = _users()
        # Every user is in the passwd-file from the start: Dovecot reads it again only when
        # its modification time changes, which has a one-second grain.
        self.passwords = {f"bounces-{n}": secrets.token_urlsafe(12) for n in range(ACCOUNTS)}
        (self.root / "passwd").write_text("".join(
            f"{user}:{{PLAIN}}{password}::::::\n" for user, password in self.passwords.items()))
        self._accounts = iter(self.passwords.items())
        (self.root / "home").mkdir()
        mail_uid = self.users["mail"]
        if isinstance(mail_uid, int):
            os.chown(self.root / "home", mail_uid, self.users["mail_group"])
        (self.root / "dovecot.conf").write_text(CONFIG.format(
            root=self.root, cert=self.cert, key=key, **self.users, **self.ports))
        self.process: subprocess.Popen | None = None

    def start(self) -> "Dovecot":
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not all(self._listening(port) for port in self.ports.values()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.process.stdout.read().decode() if self.process.poll() is not \
                    None else ""
                self.stop()
                raise RuntimeError(f"Dovecot did not start: {output}{self.log()}")
            time.sleep(0.05)
        return self

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGTERM)
            self.process.stdout.close()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def new_account(self) -> tuple[str, str]:
        """A mailbox no test has used: (user, password)."""
        return next(self._accounts)

    def imap(self, user: str) -> imaplib.IMAP4_SSL:
        """A session of our own, to put mail in and look at what is left."""
        context = ssl.create_default_context(cafile=str(self.cert))
        conn = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=context,
                                 timeout=10)
        conn.login(user, self.passwords[user])
        return conn

    def deliver(self, user: str, *messages: bytes, folder: str = "INBOX") -> None:
        conn = self.imap(user)
        try:
            for raw in messages:
                assert conn.append(folder, None, None, raw)[0] == "OK"
        finally:
            conn.logout()

    def messages(self, user: str, folder: str = "INBOX") -> list[tuple[bytes, bytes]]:
        """(flags, bytes) of each message in a folder, oldest first; peeked, so unchanged."""
        conn = self.imap(user)
        try:
            kind, _ = conn.select(folder, readonly=True)
            if kind != "OK":
                return []
            _, [found] = conn.uid("SEARCH", "ALL")
            found_messages = []
            for uid in found.split():
                _, data = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                head, body = data[0]
                found_messages.append((head, body))
            return found_messages
        finally:
            conn.logout()
