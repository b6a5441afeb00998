"""Every hook a helpdesk plugin can implement. These docstrings are the reference documentation;
the README's plugin section lists each hook (a test keeps the two in step).

A plugin is a module or object with functions marked ``@hookimpl`` (``from helpdesk import
hookimpl``), registered under the ``helpdesk`` entry-point group of its distribution. The built-in
providers (the packages in ``plugins/``) are found the same way.

A **provider** is one object of the shape ``helpdesk.contract.Provider`` (typing protocols; the
contract module imports nothing heavy, so a plugin's parser can be tested without the app):

- ``name``: the key used in ``HELPDESK_PROVIDER`` and in ``POST /webhooks/<name>``;
- ``send(message: helpdesk.contract.Message) -> helpdesk.contract.SendResult``: hand one message over;
  it must carry ``message.correlation_id`` so that events can be matched back; it never raises
  for a provider's answer, it returns ``deferred`` for transient trouble;
- optionally ``close()``: release connections when the app or worker stops.

A provider with webhooks is a ``helpdesk.contract.WebhookProvider``:

- ``verify_webhook(headers, raw_body) -> str | None``: check the signature of the raw bytes
  (never re-serialised JSON); raise ``helpdesk.contract.SignatureError`` on a bad or stale one and
  ``helpdesk.contract.NotConfigured`` when no key is set; return the signed one-time token when
  the provider declares ``signs_one_time_tokens``, else ``None``;
- ``parse_webhook(headers, raw_body) -> list[helpdesk.contract.ProviderEvent]``: the normalized
  events; raise ``helpdesk.contract.WebhookError`` on a malformed body.

A provider without webhooks has ``verify_webhook = None``.

**Capabilities**: a provider declares what it can do and the core reads that, never its name
(``helpdesk.contract.capabilities``):

- ``reports_deliveries = True``: the service reports ``delivered``; its acceptance keeps the
  recipient "Sending" until then;
- ``signs_one_time_tokens = True``: ``verify_webhook`` returns a signed one-time token; a token
  seen before is refused (406);
- a suppression list: the methods of ``helpdesk.contract.SuppressionList``,
  ``suppression_lookup(address) -> Suppression | None`` and ``suppression_remove(address) -> bool``
  (absent when the service keeps none).
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("helpdesk")
hookimpl = pluggy.HookimplMarker("helpdesk")


@hookspec
def helpdesk_providers(config):
    """Return the providers this plugin offers, built from the app's configuration.

    :param config: the app's configuration mapping (``HELPDESK_*`` settings without the prefix,
        such as ``config["SMTP_HOST"]``), holding the defaults of every declared setting (see
        ``helpdesk_settings``).
    :return: an iterable of provider objects (see the module docstring for their shape).
    """


@hookspec
def helpdesk_settings():
    """Return the settings this plugin reads, with their defaults and which are secret. The app
    applies the defaults before the instance ``config.py`` and the ``HELPDESK_*`` environment,
    lists every one on ``/admin/settings`` (secrets masked) and keeps secrets out of its logs.
    The core holds none of a provider's settings.

    :return: an iterable of ``helpdesk.contract.Setting``.
    """


@hookspec(firstresult=True)
def helpdesk_demo_service(name, sink, webhook_url):
    """Stand in for provider ``name``'s email service in ``helpdesk demo --provider NAME``.

    :param name: the provider's name.
    :param sink: the demo's running SMTP sink (``helpdesk.sink.SmtpSink``): the stand-in hands
        every email it is sent to it over SMTP, so that the sink's refusals and deferrals are
        real SMTP answers.
    :param webhook_url: where the stand-in posts the service's events about those answers
        (``…/webhooks/<name>``), shaped and authenticated as the real service does.
    :return: a ``helpdesk.demo_service.DemoService`` (its ``settings`` point the provider at
        it; ``start``, ``stop`` and ``attach(provider)``), or None when this plugin has none
        for that name. The first answer wins.
    """


@hookspec
def helpdesk_status_changed(recipient, old, new):
    """Called once for every real change of a recipient's status, after it is committed; never
    for a duplicate or an event that changes nothing. Use it for notifications.

    :param recipient: the ``helpdesk.models.Recipient``, already carrying its new status.
    :param old: the previous status key.
    :param new: the new status key (see ``helpdesk.status.STATUSES``).
    """


@hookspec
def helpdesk_known_domains():
    """Return extra mailbox domains that the typo suggester must treat as real and may suggest,
    e.g. a regional provider or an organisation's own domains.

    :return: an iterable of domain names.
    """


@hookspec
def helpdesk_help_articles():
    """Return extra help-center articles.

    :return: an iterable of mappings with ``slug``, ``title``, ``summary``, ``order`` (an int;
        lower comes first) and ``body`` (Markdown; sanitised like the built-in articles).
    """


@hookspec(firstresult=True)
def helpdesk_parse_bounce(raw_message):
    """Read an asynchronous bounce report (such as an RFC 3464 delivery status notification)
    that came back to the sender.

    :param raw_message: the whole message as bytes.
    :return: a list of ``helpdesk.contract.ProviderEvent`` when this plugin understood the message;
        a ``helpdesk.contract.NotABounce`` saying what the message is when this plugin read it
        and it reports no failure (an auto-reply, a read receipt); or ``None`` to let another
        plugin try. The first non-None answer wins.
    :raises ValueError: for a message that is a report of this plugin's kind but cannot be
        read (cut short, malformed); the message is reported and nothing is recorded.
    """
