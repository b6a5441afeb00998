"""The ``helpdesk`` command (Flask's CLI group: ``flask --app helpdesk`` works too)."""
from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import asdict

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from . import importer, intake, plugins
from .addresses import domain_history, offered_domains
from .auth import create_token, create_user, reset_password
from .contract import NotABounce, capabilities
from .demo import run_demo
from .diagnosis import refresh_all
from .ingest import record_events
from .maintenance import poll_bounces, read_bounce
from .models import Credential, User, db
from .publishing import nudge_due
from .queue import huey_of
from .validation import check_email as check

# sysexits.h's EX_TEMPFAIL: an MTA piping a message to a command that exits with it keeps the
# message queued and tries again later.
TEMPORARY_FAILURE = 75


def _create_app(*_args) -> Flask:
    # The factory imports this module (to register the commands): asked for when run, it is
    # no import cycle.
    from .app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=True,
             load_dotenv=False)
def main() -> None:
    """helpdesk: see whether every credential email arrived, and fix it when it did not."""


def register_commands(app: Flask) -> None:
    for command in (demo, worker, users, tokens, providers, nudge, bounces, causes, check_email,
                    import_csv):
        app.cli.add_command(command)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to serve on.")
@click.option("--smtp-port", default=None, type=int, help="Port of the embedded SMTP sink "
              "(default: a free one).")
@click.option("--provider", default="smtp", show_default=True, envvar="HELPDESK_PROVIDER",
              help="Send through this provider (also HELPDESK_PROVIDER), against its plugin's "
                   "local stand-in for the email service.")
def demo(host: str, port: int, smtp_port: int | None, provider: str) -> None:
    """Run the whole thing on this machine: an embedded SMTP sink, a worker and the web app,
    on SQLite (or HELPDESK_DATABASE_URL), with demo data."""
    run_demo(host=host, port=port, smtp_port=smtp_port, provider=provider)


@click.command()
@click.option("--workers", "-w", default=2, show_default=True, help="Worker threads.")
@with_appcontext
def worker(workers: int) -> None:
    """Consume the task queue: send emails, publish scheduled credentials, nudge, read bounces."""
    consumer = huey_of().create_consumer(workers=workers, worker_type="thread",
                                         periodic=True, check_worker_health=True)
    consumer.run()


@click.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "agent"]), default="agent",
              show_default=True)
@click.option("--password", help="Prompted for when not given (read from standard input when "
              "that is not a terminal).")
@with_appcontext
def users_create(email: str, role: str, password: str | None) -> None:
    """Create a user who can sign in."""
    password = password if password is not None else _read_password()
    try:
        user = create_user(email, password, role)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.role.value} {user.email}.", err=True)


@users.command("reset-password")
@click.argument("email")
@click.option("--password", help="Prompted for when not given (read from standard input when "
              "that is not a terminal).")
@with_appcontext
def users_reset_password(email: str, password: str | None) -> None:
    """Set a new password for a user; every session of the user is signed out."""
    password = password if password is not None else _read_password()
    try:
        user = reset_password(email, password)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"New password set for {user.email}; their sessions are signed out.", err=True)


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@click.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.argument("email")
@with_appcontext
def tokens_create(email: str) -> None:
    """Create an API token for a user and print it (only its hash is stored)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}; create one with `helpdesk users create`")
    click.echo(create_token(user))


@click.command("providers")
@with_appcontext
def providers() -> None:
    """List every registered provider, the distribution it came from and what it can do
    (the capabilities it declares: webhooks, reports_deliveries, signs_one_time_tokens,
    suppression_list)."""
    configured = current_app.config["PROVIDER"]
    for name, provider in sorted(plugins.providers().items()):
        mark = "  (configured)" if name == configured else ""
        can = ", ".join(capabilities(provider).names()) or "no capabilities"
        click.echo(f"{name}\t{plugins.distribution_of(provider)}\t{can}{mark}")


@click.command()
@with_appcontext
def nudge() -> None:
    """Resend now to recipients who have not opened for NUDGE_AFTER_DAYS."""
    click.echo(f"Nudged {nudge_due()} recipients.")


@click.group()
def causes() -> None:
    """Why emails failed: each recipient's diagnosis."""


@causes.command("refresh")
@with_appcontext
def causes_refresh() -> None:
    """Diagnose every recipient again from its stored events (after an upgrade)."""
    click.echo(f"Diagnosed every recipient again: {refresh_all()} changed.")


@click.group()
def bounces() -> None:
    """Bounce reports that came back to the sender."""


@bounces.command("ingest")
@click.argument("source", type=click.File("rb"))
@with_appcontext
def bounces_ingest(source) -> None:
    """Read one bounce report (an RFC 3464 delivery status notification) from FILE or - (an
    MTA can pipe to it). A message that is not a report is reported and changes nothing. When
    the database cannot record it, the command exits 75 (EX_TEMPFAIL), on which an MTA keeps
    the message and pipes it again later."""
    try:
        found = read_bounce(source.read())
    except ValueError as error:
        raise click.ClickException(f"not a readable bounce report: {error}; "
                                   "nothing was recorded") from None
    if isinstance(found, NotABounce):
        raise click.ClickException(f"{found.what}; nothing was recorded")
    try:
        result = record_events(found, returned=True)
    except SQLAlchemyError as error:
        click.echo(f"Error: the database could not record the report, try again later "
                   f"({error.__class__.__name__}); nothing was recorded", err=True)
        sys.exit(TEMPORARY_FAILURE)
    click.echo(f"Recorded {result.stored} events ({result.duplicates} seen before, "
               f"{result.unmatched} for no delivery of ours).")


@bounces.command("poll")
@with_appcontext
def bounces_poll() -> None:
    """Read the bounce mailboxes now, as the worker does every minute (BOUNCE_MAILDIR,
    BOUNCE_MAILBOX_URL): to check their settings. Fails when one cannot be read."""
    polls = poll_bounces()
    if not polls:
        raise click.ClickException("no bounce mailbox is configured: set BOUNCE_MAILDIR or "
                                   "BOUNCE_MAILBOX_URL")
    for poll in polls:
        if poll.error:
            click.echo(f"{poll.mailbox}: cannot be read: {poll.error}", err=True)
        else:
            c = poll.counts
            click.echo(f"{poll.mailbox}: {c['ingested']} reports recorded and removed, "
                       f"{c['not_reports']} not reports and {c['unreadable']} unreadable left "
                       f"there, {c['failed']} failed (tried again next time)")
    if any(poll.error for poll in polls):
        sys.exit(1)


@click.command("check-email")
@click.argument("addresses", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line: input, valid, "
              "normalized, error, suggestion, confidence.")
@with_appcontext
def check_email(addresses: tuple[str, ...], as_json: bool) -> None:
    """Check email addresses: is each well formed, and was its domain probably mistyped?

    Give the addresses as arguments, or - to read one address a line from standard input.
    Prints one line per address: valid, invalid with the reason, or "did you mean …?".

    Exit code: 0 when every address is valid and has no suggestion, 1 otherwise.
    """
    if not addresses:
        raise click.UsageError("give one or more addresses, or - to read them from standard "
                               "input")
    try:
        known, unknown = domain_history()
    except SQLAlchemyError:
        db.session.rollback()
        known, unknown = offered_domains(), frozenset()
        click.echo("The database is not set up (helpdesk db upgrade): checking against the "
                   "built-in and plugins' mailbox domains only.", err=True)
    all_good = True
    for address in _addresses(addresses):
        result = check(address, known_domains=known, unknown_domains=unknown)
        all_good = all_good and result.valid and result.suggestion is None
        if as_json:
            click.echo(json.dumps(asdict(result), ensure_ascii=False))
        else:
            click.echo(_describe_check(result))
    click.get_current_context().exit(0 if all_good else 1)


def _addresses(arguments: tuple[str, ...]):
    for argument in arguments:
        if argument == "-":
            yield from (line.strip() for line in sys.stdin if line.strip())
        else:
            yield argument


def _printable(text: str) -> str:
    """What a terminal can show as typed: control characters escaped, never interpreted."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _describe_check(result) -> str:
    line = f"{_printable(result.input)}: "
    line += "valid" if result.valid else f"invalid: {result.error}"
    if result.suggestion:
        line += f"; did you mean {_printable(result.suggestion)}? " \
                f"(confidence {result.confidence:.0%})"
    return line


@click.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--credential", "credential_id", type=int, required=True,
              help="The id of the credential the recipients join.")
@click.option("--typos", type=click.Choice(["ask", "suggest", "keep"]), default="ask",
              show_default=True,
              help="Likely typos: ask (list them and import nothing), take the suggestions, "
                   "or keep them as typed.")
@click.option("--refused-csv", type=click.File("w", encoding="utf-8-sig"),
              help="Also write the rows not imported here (line, reason and the original "
                   "cells).")
@with_appcontext
def import_csv(file, credential_id: int, typos: str, refused_csv) -> None:
    """Import recipients from a CSV file (- for standard input): columns name and email, found
    by their header; UTF-8; comma or semicolon separated.

    Every row gets the verdict the web import and the form give it: accepted, kept without an
    address, likely typo, not a usable address (kept, never emailed), duplicate (left out),
    unreadable (left out, with the line and why) or empty. Likely typos are a question: with
    --typos ask (the default) they are listed and nothing is imported. When the credential is
    published and sends email, the new recipients are emailed.

    Exit code: 0 when every non-empty row was imported, 1 when some row was left out or the
    whole file was refused, 2 when typos wait for an answer.
    """
    credential = db.session.get(Credential, credential_id)
    if credential is None:
        raise click.ClickException(f"no credential {credential_id}")
    try:
        with ExitStack() as bars:
            known, unknown = domain_history()
            parsed = importer.read_rows(file.read(importer.MAX_FILE_BYTES + 1), known,
                                        progress=_progress_bar(bars, "Checking rows"),
                                        unknown_domains=unknown)
            flagged = [row for row in parsed.rows if row.kind == intake.TYPO]
            if flagged and typos == "ask":
                for row in flagged:
                    click.echo(f"line {row.line}: {_printable(row.email or '')}: "
                               f"{_printable(row.reason or '')}")
                click.echo(f"{len(flagged)} likely typo(s): nothing was imported; run again "
                           "with --typos suggest or --typos keep.")
                click.get_current_context().exit(2)
            summary = importer.import_rows(
                credential, parsed, {row.line for row in flagged} if typos == "suggest" else (),
                known, progress=_progress_bar(bars, "Importing"), unknown_domains=unknown)
    except importer.BrokenFile as error:
        raise click.ClickException(f"nothing was imported: {error}") from None
    for row in summary.rows:
        if row.kind != intake.ACCEPTED:
            detail = _printable(row.reason or "")
            click.echo(f"line {row.line}: {row.words}" + (f": {detail}" if detail else ""))
    click.echo(f"Credential {credential.id} ({_printable(credential.title)}): "
               f"{summary.describe()}")
    if refused_csv is not None:
        refused_csv.write(importer.left_out_csv(summary.header, summary.rows))
    left_out = summary.rows_with(*importer.LEFT_OUT)
    click.get_current_context().exit(1 if left_out else 0)


def _progress_bar(bars, label: str):
    """A progress callback that shows a bar on standard error, made on its first call (when
    the total is known)."""
    bar = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = bars.enter_context(click.progressbar(length=total, label=label,
                                                       file=sys.stderr))
        bar.update(done - bar.pos)

    return advance

