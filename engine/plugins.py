"""Finding plugins: the host (the Lambda handler, a tool) names the modules that register steps.

The engine never imports a plugin itself. ``load_plugins(["steps"])`` imports each named module once
(which registers its steps, response formats and expression functions) and fails with a clear message
when one cannot be imported. ``PIPELINE_PLUGINS`` (comma-separated module names) overrides the
default list for the tools, so a project can add its own steps without editing them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_PLUGINS", "PluginError", "load_plugins", "plugin_modules"]

DEFAULT_PLUGINS = ("steps",)


class PluginError(ImportError):
    """A plugin module named by the host could not be imported."""


def plugin_modules(env: Mapping[str, str]) -> tuple[str, ...]:
    """The plugin modules ``PIPELINE_PLUGINS`` names, or the default ones."""
    named = tuple(part.strip() for part in env.get("PIPELINE_PLUGINS", "").split(",") if part.strip())
    return named or DEFAULT_PLUGINS


def load_plugins(modules: Iterable[str] = DEFAULT_PLUGINS) -> tuple[str, ...]:
    """Import each plugin module (idempotent); return their names."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(f"plugin module {name!r} cannot be imported: {exc}") from exc
        loaded.append(name)
    return tuple(loaded)
