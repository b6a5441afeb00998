"""The plugin manager: one per app, loading the ``helpdesk`` entry-point group, so that the
built-in providers and third-party ones are found the same way and nothing leaks between apps."""
from __future__ import annotations

from importlib.metadata import distribution, packages_distributions
from typing import Any

import pluggy
from flask import Flask, current_app

from . import hookspecs
from .contract import Provider, Setting


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("helpdesk")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("helpdesk")
    return pm


def init_app(app: Flask) -> None:
    """Load the plugins and put the defaults of the settings they declare into the config
    (call it before the instance config and the environment are read, so that those win)."""
    pm = make_plugin_manager()
    app.extensions["helpdesk_plugins"] = pm
    app.extensions["helpdesk_providers"] = None  # built on first use, from the final config
    declared = declared_settings(pm)
    app.extensions["helpdesk_settings"] = declared
    for name, (_, setting) in declared.items():
        app.config.setdefault(name, setting.default)


def declared_settings(pm: pluggy.PluginManager) -> dict[str, tuple[str, Setting]]:
    """Every setting the plugins declare (``helpdesk_settings``), by name, with the name of the
    plugin that declared it.

    :raises ValueError: two plugins declare the same name, or a name is not an upper-case
        identifier.
    """
    found: dict[str, tuple[str, Setting]] = {}
    for impl in pm.hook.helpdesk_settings.get_hookimpls():
        for setting in impl.function() or ():
            if not (setting.name.isidentifier() and setting.name.isupper()):
                raise ValueError(f"plugin {impl.plugin_name} declares the setting "
                                 f"{setting.name!r}: names are upper-case identifiers")
            if setting.name in found:
                raise ValueError(f"plugins {found[setting.name][0]} and {impl.plugin_name} both "
                                 f"declare the setting {setting.name}")
            found[setting.name] = (impl.plugin_name, setting)
    return found


def settings(app: Flask | None = None) -> dict[str, tuple[str, Setting]]:
    """The settings the app's plugins declared when it was built, with their plugins' names."""
    return (app or current_app).extensions["helpdesk_settings"]


def plugin_manager(app: Flask | None = None) -> pluggy.PluginManager:
    return (app or current_app).extensions["helpdesk_plugins"]


def hook(app: Flask | None = None) -> Any:
    return plugin_manager(app).hook


def providers(app: Flask | None = None) -> dict[str, Any]:
    """Every registered provider by name, built once per app from its configuration."""
    app = app or current_app
    built = app.extensions.get("helpdesk_providers")
    if built is None:
        built = {}
        for offered in hook(app).helpdesk_providers(config=app.config):
            for provider in offered or ():
                if not isinstance(provider, Provider):
                    raise TypeError(f"{provider!r} is not a helpdesk provider: it needs a name "
                                    "and send(message) (see helpdesk.contract.Provider)")
                built[provider.name] = provider
        app.extensions["helpdesk_providers"] = built
    return built


def reset_providers(app: Flask) -> None:
    """Forget the built providers (after registering a plugin or changing the configuration)."""
    for provider in (app.extensions.get("helpdesk_providers") or {}).values():
        close = getattr(provider, "close", None)
        if close:
            close()
    app.extensions["helpdesk_providers"] = None


def provider(name: str | None = None, app: Flask | None = None) -> Any:
    """The provider named, or the configured ``PROVIDER``; KeyError when there is none."""
    app = app or current_app
    return providers(app)[name or app.config["PROVIDER"]]


def distribution_of(obj: Any) -> str:
    """"name version" of the installed distribution that provides an object's module."""
    top = type(obj).__module__.split(".")[0]
    names = packages_distributions().get(top)
    if not names:
        return f"{top} (not installed: registered in code)"
    dist = distribution(names[0])
    return f"{dist.metadata['Name']} {dist.version}"
