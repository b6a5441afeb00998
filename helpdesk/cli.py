"""The ``helpdesk`` command (Flask's CLI group: ``flask --app helpdesk`` works too)."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from . import plugins


def _create_app(*_args) -> Flask:
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=True,
             load_dotenv=False)
def main() -> None:
    """helpdesk: see whether every credential email arrived, and fix it when it did not."""


def register_commands(app: Flask) -> None:
    for command in (demo, worker, users, tokens, providers, nudge, bounces):
        app.cli.add_command(command)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to serve on.")
@click.option("--smtp-port", default=None, type=int, help="Port of the embedded SMTP sink "
              "(default: a free one).")
def demo(host: str, port: int, smtp_port: int | None) -> None:
    """Run the whole thing on this machine: an embedded SMTP sink, a worker and the web app,
    on SQLite (or HELPDESK_DATABASE_URL), with demo data."""
    from .demo import run_demo

    run_demo(host=host, port=port, smtp_port=smtp_port)


@click.command()
@click.option("--workers", "-w", default=2, show_default=True, help="Worker threads.")
@with_appcontext
def worker(workers: int) -> None:
    """Consume the task queue: send emails, publish scheduled credentials, nudge, read bounces."""
    from .queue import huey_of

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
    from .auth import create_user

    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = create_user(email, password, role)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.role.value} {user.email}.", err=True)


@click.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.argument("email")
@with_appcontext
def tokens_create(email: str) -> None:
    """Create an API token for a user and print it (only its hash is stored)."""
    from .auth import create_token
    from .models import User, db

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}; create one with `helpdesk users create`")
    click.echo(create_token(user))


@click.command("providers")
@with_appcontext
def providers() -> None:
    """List every registered provider and the distribution it came from."""
    configured = current_app.config["PROVIDER"]
    for name, provider in sorted(plugins.providers().items()):
        mark = "  (configured)" if name == configured else ""
        click.echo(f"{name}\t{plugins.distribution_of(provider)}{mark}")


@click.command()
@with_appcontext
def nudge() -> None:
    """Resend now to recipients who have not opened for NUDGE_AFTER_DAYS."""
    from .delivery import nudge_due

    click.echo(f"Nudged {nudge_due()} recipients.")


@click.group()
def bounces() -> None:
    """Bounce reports that came back to the sender."""


@bounces.command("ingest")
@click.argument("source", type=click.File("rb"))
@with_appcontext
def bounces_ingest(source) -> None:
    """Read one bounce report (an RFC 3464 delivery status notification) from FILE or - (an
    MTA can pipe to it). A message that is not a report is reported and changes nothing."""
    from .maintenance import ingest_bounce

    try:
        result = ingest_bounce(source.read())
    except ValueError as error:
        raise click.ClickException(f"not a readable delivery status report: {error}; "
                                   "nothing was recorded") from None
    if result is None:
        raise click.ClickException("not a delivery status report; nothing was recorded")
    click.echo(f"Recorded {result.stored} events ({result.duplicates} seen before, "
               f"{result.unmatched} for no delivery of ours).")
