"""The plugin system: providers found through entry points, a throwaway plugin, the contract
every registered provider keeps, and the hook reference in the README."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from helpdesk import hookimpl, hookspecs, plugins
from helpdesk.credentials import create_credential
from helpdesk.contract import Message, SendResult
from helpdesk.models import Recipient, db
from helpdesk.sink import free_port
from helpdesk.status import NOT_OPENED, NOT_SENT

README = Path(__file__).resolve().parents[1] / "README.md"
BUILT_IN = {"smtp", "sendgrid", "mailgun", "postmark", "ses"}


class CarrierPigeon:
    name = "pigeon"
    verify_webhook = None
    parse_webhook = None

    def __init__(self):
        self.sent: list[Message] = []

    def send(self, message: Message) -> SendResult:
        self.sent.append(message)
        if message.to.endswith("@cliff.example"):
            return SendResult.refused("the pigeon will not fly to a cliff")
        return SendResult.accepted(message_id=f"coo-{len(self.sent)}")


class PigeonPlugin:
    def __init__(self):
        self.provider = CarrierPigeon()

    @hookimpl
    def helpdesk_providers(self, config):
        return [self.provider]


def test_built_in_providers_are_found_through_entry_points(app):
    assert BUILT_IN <= set(plugins.providers())
    entry_point_plugins = {name for name, _ in plugins.plugin_manager().list_name_plugin()}
    assert BUILT_IN <= entry_point_plugins


def test_each_app_has_its_own_plugin_manager(app_factory, app):
    other = app_factory()
    plugins.plugin_manager(other).register(PigeonPlugin(), name="pigeon")
    plugins.reset_providers(other)
    assert "pigeon" in plugins.providers(other)
    assert "pigeon" not in plugins.providers(app)


def test_a_throwaway_provider_plugin_sends(app):
    plugin = PigeonPlugin()
    plugins.plugin_manager().register(plugin, name="pigeon")
    plugins.reset_providers(app)
    app.config["PROVIDER"] = "pigeon"
    credential = create_credential("Pigeon post", [
        {"name": "Ann", "email": "ann@valley.example"},
        {"name": "Bob", "email": "bob@cliff.example"}], state="published")
    sent = plugin.provider.sent
    assert [m.to for m in sent] == ["ann@valley.example", "bob@cliff.example"]
    assert all(len(m.correlation_id) == 32 for m in sent)
    statuses = {r.email: r.status for r in db.session.scalars(
        db.select(Recipient).where(Recipient.credential_id == credential.id))}
    assert statuses == {"ann@valley.example": NOT_OPENED, "bob@cliff.example": NOT_SENT}


def test_providers_cli_lists_every_provider_and_its_distribution(app):
    result = app.test_cli_runner().invoke(args=["providers"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("\t", 1) for line in result.output.splitlines())
    assert BUILT_IN <= set(lines)
    assert lines["smtp"].startswith("helpdesk ")
    assert "(configured)" in lines["smtp"]


def unreachable_config() -> dict:
    port = free_port()  # nothing listens there
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SEND_TIMEOUT": 2,
            "SENDGRID_API_KEY": "SG.test", "SENDGRID_API_URL": f"http://127.0.0.1:{port}/v3/mail/send",
            "MAILGUN_API_KEY": "key-test", "MAILGUN_DOMAIN": "mg.issuer.example",
            "MAILGUN_API_URL": f"http://127.0.0.1:{port}/v3",
            "POSTMARK_SERVER_TOKEN": "pm-test", "POSTMARK_API_URL": f"http://127.0.0.1:{port}",
            "SES_REGION": "us-east-1", "SES_ENDPOINT_URL": f"http://127.0.0.1:{port}"}


def registered_provider_names() -> list[str]:
    return sorted(name for name, _ in plugins.make_plugin_manager().list_name_plugin())


@pytest.mark.parametrize("name", registered_provider_names())
class TestProviderContract:
    """What every registered provider keeps, whoever wrote it."""

    @pytest.fixture
    def provider(self, app_factory, name):
        app = app_factory(**unreachable_config())
        with app.app_context():
            yield plugins.provider(name)

    def test_has_one_shape(self, provider, name):
        assert provider.name == name
        assert callable(provider.send)
        assert provider.verify_webhook is None or callable(provider.verify_webhook)
        if provider.verify_webhook is not None:
            assert callable(provider.parse_webhook)

    def test_an_unreachable_service_defers_instead_of_raising(self, provider):
        message = Message(correlation_id="0" * 32, sender="credentials@issuer.example",
                          to="ann@valley.example", to_name="Ann", subject="Hello",
                          text="Hello", html="<p>Hello</p>")
        result = provider.send(message)
        assert result.outcome == "deferred"
        assert result.reason

    def test_webhooks_fail_closed(self, provider, name, app_factory):
        if provider.verify_webhook is None:
            pytest.skip(f"{name} takes no webhooks")
        client = app_factory().test_client()  # no verification key configured
        response = client.post(f"/webhooks/{name}", data=b"[]",
                               content_type="application/json")
        assert response.status_code in (401, 403)


def test_every_hook_is_documented_in_the_readme():
    readme = README.read_text()
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if n.startswith("helpdesk_")]
    assert hooks
    missing = [h for h in hooks if f"`{h}" not in readme]
    assert not missing, f"hooks missing from the README's plugin section: {missing}"


def test_the_readme_gives_each_hook_its_real_signature():
    readme = README.read_text()
    wrong = []
    for name, spec in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("helpdesk_"):
            called = f"`{name}({', '.join(inspect.signature(spec).parameters)})`"
            if called not in readme:
                wrong.append(called)
    assert not wrong, f"the README shows these hooks with other arguments: {wrong}"


def test_every_hook_docstring_names_each_argument():
    for name, spec in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("helpdesk_"):
            for parameter in inspect.signature(spec).parameters:
                assert f":param {parameter}:" in spec.__doc__, (name, parameter)


def test_every_hook_has_a_docstring():
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("helpdesk_"):
            assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name


def readme_plugin_example() -> str:
    section = README.read_text().split("## Writing a provider plugin", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_plugin_example_works(app):
    namespace: dict = {}
    exec(compile(readme_plugin_example(), "README.md", "exec"), namespace)
    plugin = type("ReadmePlugin", (), {
        "helpdesk_providers": staticmethod(namespace["helpdesk_providers"])})
    plugins.plugin_manager().register(plugin, name="pigeon")
    plugins.reset_providers(app)
    app.config.update(PROVIDER="pigeon", PIGEON_LOFT="the roof")
    create_credential("By air", [{"name": "Ann", "email": "ann@valley.example"}],
                      state="published")
    provider = plugins.provider("pigeon")
    assert [to for to, _ in provider.sent] == ["ann@valley.example"]
    assert db.session.scalar(db.select(Recipient.status)) == NOT_OPENED
