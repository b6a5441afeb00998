"""The provider contract module: light to import, its protocols and capabilities, and the helpers
every webhook parser shares."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest

from helpdesk import hookimpl, plugins
from helpdesk.contract import (Capabilities, Provider, SendResult, SignatureError, Suppression,
                               SuppressionList, WebhookError, WebhookProvider, capabilities,
                               check_fresh, parse_timestamp)
from helpdesk.status import NOT_OPENED, SENDING, event_level


@pytest.mark.parametrize("module", ["helpdesk.contract", "helpdesk_sendgrid.webhook",
                                    "helpdesk_mailgun.webhook", "helpdesk_smtp.dsn",
                                    "helpdesk_postmark.webhook", "helpdesk_ses.webhook"])
def test_a_plugins_parser_imports_without_the_app(module):
    heavy = ["flask", "sqlalchemy", "huey", "flask_limiter", "jinja2"]
    code = (f"import sys, {module}; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", f"importing {module} loaded {out.strip()}"


def test_from_helpdesk_import_hookimpl_costs_nothing():
    code = "import sys; from helpdesk import hookimpl; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


class Minimal:
    name = "minimal"

    def send(self, message):
        return SendResult.accepted()


class Suppressing(Minimal):
    def suppression_lookup(self, address):
        return Suppression(address, "bounces", "550 no such user") if "gone" in address else None

    def suppression_remove(self, address):
        return "gone" in address


class HalfSuppressing(Minimal):
    def suppression_lookup(self, address):
        return None


def test_a_provider_with_only_send_has_no_capabilities():
    provider = Minimal()
    assert isinstance(provider, Provider)
    assert not isinstance(provider, WebhookProvider)
    assert capabilities(provider) == Capabilities(webhooks=False, reports_deliveries=False,
                                                  signs_one_time_tokens=False,
                                                  suppression_list=False)
    assert capabilities(provider).names() == []


def test_webhooks_set_to_none_are_absent():
    provider = type("NoHooks", (Minimal,), {"verify_webhook": None, "parse_webhook": None})()
    assert not capabilities(provider).webhooks


def test_a_suppression_list_needs_both_methods():
    assert capabilities(Suppressing()).suppression_list
    assert isinstance(Suppressing(), SuppressionList)
    assert not capabilities(HalfSuppressing()).suppression_list


def test_a_flag_must_be_declared_true_to_count():
    provider = type("Truthy", (Minimal,), {"reports_deliveries": "yes"})()
    assert not capabilities(provider).reports_deliveries


def test_the_built_in_providers_declare_their_capabilities(app):
    declared = {name: set(capabilities(p).names()) for name, p in plugins.providers().items()}
    assert declared["smtp"] == set()
    assert declared["sendgrid"] == {"webhooks", "reports_deliveries", "suppression_list"}
    assert declared["mailgun"] == {"webhooks", "reports_deliveries", "signs_one_time_tokens",
                                   "suppression_list"}


def test_a_provider_without_send_is_refused_by_name(app):
    class Broken:
        name = "broken"

    class Plugin:
        @hookimpl
        def helpdesk_providers(self, config):
            return [Broken()]

    plugins.plugin_manager().register(Plugin(), name="broken")
    plugins.reset_providers(app)
    with pytest.raises(TypeError, match="not a helpdesk provider"):
        plugins.providers()


def test_acceptance_by_a_service_that_reports_deliveries_is_still_sending():
    assert event_level("accepted", reports_deliveries=True) == SENDING
    assert event_level("accepted") == NOT_OPENED
    assert event_level("delivered", reports_deliveries=True) == NOT_OPENED
    assert event_level("delivered") == NOT_OPENED


@pytest.mark.parametrize("value", [1714745352, 1714745352.5, "1714745352", " 1714745352.5 "])
def test_timestamps_parse_as_aware_utc(value):
    parsed = parse_timestamp(value)
    assert parsed.tzinfo is timezone.utc
    assert int(parsed.timestamp()) == 1714745352


@pytest.mark.parametrize("value, words", [
    (None, 'no unix "timestamp"'), ("yesterday", 'no unix "timestamp"'),
    (True, 'no unix "timestamp"'), (float("nan"), 'no unix "timestamp"'),
    (float("inf"), 'no unix "timestamp"'), (1e300, "out of range"),
])
def test_unusable_timestamps_are_refused(value, words):
    with pytest.raises(WebhookError, match=words) as caught:
        parse_timestamp(value, status=406)
    assert caught.value.status == 406


def test_a_timestamp_error_names_what_held_it():
    with pytest.raises(WebhookError, match='^"event-data" has no unix'):
        parse_timestamp({}, what='"event-data"')


NOW = datetime(2024, 5, 3, 14, 9, 12, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("age", [0, 599, -599, 600, -600])
def test_a_signature_within_the_window_is_fresh(age):
    check_fresh(str(int(NOW - age)), tolerance=600, now=NOW)


@pytest.mark.parametrize("age, direction", [(601, "old"), (-601, "in the future"),
                                            (10 ** 9, "old")])
def test_a_signature_outside_the_window_is_stale(age, direction):
    with pytest.raises(SignatureError, match=f"is stale: {abs(age)} seconds {direction}, "
                                             "more than the 600 seconds allowed"):
        check_fresh(NOW - age, tolerance=600, now=NOW)


@pytest.mark.parametrize("signed_at", ["nan", "inf", "-inf", "soon", ""])
def test_a_signature_time_that_is_no_time_is_refused(signed_at):
    with pytest.raises(SignatureError):
        check_fresh(signed_at, tolerance=600, now=NOW)
