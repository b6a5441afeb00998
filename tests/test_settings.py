"""Settings: the core's in ``helpdesk.config``, every plugin's declared through
``helpdesk_settings``; defaults, overrides, the admin page and the README agree."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from helpdesk import config as core, hookimpl, plugins
from helpdesk.auth import create_user
from helpdesk.contract import Setting

from conftest import PASSWORD, sign_in

README = Path(__file__).resolve().parents[1] / "README.md"


class WhistlePlugin:
    """A third-party plugin with a secret whose name no pattern would guess."""

    @hookimpl
    def helpdesk_settings(self):
        return [Setting("PIGEON_LOFT", "the roof", "where the pigeons fly from"),
                Setting("PIGEON_WHISTLE", None, "the call they answer", secret=True)]


@pytest.fixture
def with_plugin(monkeypatch):
    """Apps built meanwhile load WhistlePlugin as if it were installed."""
    make = plugins.make_plugin_manager

    def with_whistle():
        pm = make()
        pm.register(WhistlePlugin(), name="helpdesk-whistle")
        return pm

    monkeypatch.setattr(plugins, "make_plugin_manager", with_whistle)


def installed_settings() -> dict[str, tuple[str, Setting]]:
    return plugins.declared_settings(plugins.make_plugin_manager())


def readme_setting_names() -> set[str]:
    """The names in the first column of every table in the README."""
    names = set()
    for line in README.read_text().splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def test_every_declared_setting_is_in_the_readme():
    missing = sorted(set(installed_settings()) - readme_setting_names())
    assert not missing, f"settings declared by plugins but missing from README.md: {missing}"


def test_every_setting_in_the_readme_exists():
    known = {n for n in dir(core) if n.isupper()} | {"SECRET_KEY", "DATABASE_URL", "QUEUE_URL"}
    unknown = sorted(readme_setting_names() - known - set(installed_settings()))
    assert not unknown, f"README.md documents settings nothing declares: {unknown}"


def test_every_core_setting_is_in_the_readme():
    missing = sorted({n for n in dir(core) if n.isupper()} - readme_setting_names())
    assert not missing, missing


def test_the_core_holds_none_of_a_providers_settings():
    declared = installed_settings()
    assert not {n for n in dir(core) if n.isupper()} & set(declared)
    by_plugin = {plugin for plugin, _ in declared.values()}
    assert {"smtp", "sendgrid", "mailgun"} <= by_plugin


def test_declared_defaults_apply_and_the_instance_overrides_them(app_factory, with_plugin,
                                                                monkeypatch):
    assert app_factory().config["PIGEON_LOFT"] == "the roof"  # the plugin's default
    monkeypatch.setenv("HELPDESK_PIGEON_LOFT", "the attic")
    monkeypatch.setenv("HELPDESK_SMTP_STARTTLS", "true")
    app = app_factory(PIGEON_WHISTLE="two short")
    assert app.config["PIGEON_LOFT"] == "the attic"
    assert app.config["SMTP_STARTTLS"] is True  # the environment, read as JSON
    assert app.config["PIGEON_WHISTLE"] == "two short"
    assert app.config["SENDGRID_API_URL"].endswith("/v3/mail/send")


def test_two_plugins_may_not_declare_one_name():
    pm = plugins.make_plugin_manager()

    class Copycat:
        @hookimpl
        def helpdesk_settings(self):
            return [Setting("SMTP_HOST", "elsewhere", "a clash")]

    pm.register(Copycat(), name="copycat")
    with pytest.raises(ValueError, match="plugins .* and copycat both declare the setting "
                                         "SMTP_HOST"):
        plugins.declared_settings(pm)


def test_a_setting_name_must_be_an_upper_case_identifier():
    pm = plugins.make_plugin_manager()

    class Lower:
        @hookimpl
        def helpdesk_settings(self):
            return [Setting("pigeon-loft", None, "bad")]

    pm.register(Lower(), name="lower")
    with pytest.raises(ValueError, match="lower declares the setting 'pigeon-loft'"):
        plugins.declared_settings(pm)


def test_the_admin_page_lists_every_plugins_settings_secrets_masked(app_factory, with_plugin):
    app = app_factory(PIGEON_WHISTLE="two-short-one-long", SENDGRID_API_KEY="SG.hunter22")
    with app.app_context():
        admin = create_user("admin@issuer.example", PASSWORD, "admin")
        client = app.test_client()
        sign_in(client, admin)
        html = client.get("/admin/settings").get_data(as_text=True)
    for secret in ("two-short-one-long", "SG.hunter22"):
        assert secret not in html
    rows = dict(re.findall(r'<tr data-setting="([A-Z0-9_]+)">(.*?)</tr>', html, re.S))
    assert set(installed_settings()) | {"PIGEON_LOFT", "PIGEON_WHISTLE"} <= set(rows)
    assert "the roof" in rows["PIGEON_LOFT"] and "helpdesk-whistle" in rows["PIGEON_LOFT"]
    assert "(set)" in rows["PIGEON_WHISTLE"] and "configured" in rows["PIGEON_WHISTLE"]
    assert "(set)" in rows["SENDGRID_API_KEY"] and "sendgrid" in rows["SENDGRID_API_KEY"]
    assert "configured" in rows["SMTP_TIMEOUT"]  # the tests set it
    assert "default" in rows["MAILGUN_API_URL"]
    assert "helpdesk" in rows["NUDGE_MAX"]


def test_a_declared_secret_never_reaches_the_logs(app_factory, with_plugin, caplog):
    app_factory(PIGEON_WHISTLE="two-short-one-long")
    logging.getLogger("helpdesk.test").warning("whistled two-short-one-long at the loft")
    assert "two-short-one-long" not in caplog.text
