"""Finding plugins: the one list of modules that register steps, read by the handler, the build and the tools.

The engine never imports a plugin itself: the host calls ``load_plugins(plugin_modules(env, root))``.
The list is the built-in ``steps`` followed by the plugins a project declares in its ``pyproject.toml``::

    [tool.inbound-pipeline]
    plugins = ["acme_generic"]

and then any that ``PIPELINE_PLUGINS`` (comma-separated module names) adds for one run of a tool; naming
``steps`` there is harmless. The build validates every pipeline with that list and records it in the
artifact (``pipeline-plugins.json`` beside ``handler.py``); a task root with that record loads exactly the modules
recorded, whatever its environment says.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "BUILTIN_PLUGINS",
    "ENV_VAR",
    "PROJECT_FILE",
    "RECORD_FILE",
    "PluginError",
    "declared_plugins",
    "load_plugins",
    "plugin_modules",
    "recorded_plugins",
]

BUILTIN_PLUGINS = ("steps",)
ENV_VAR = "PIPELINE_PLUGINS"
PROJECT_FILE = "pyproject.toml"
RECORD_FILE = "pipeline-plugins.json"
_TABLE = "inbound-pipeline"
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class PluginError(ImportError):
    """A plugin module cannot be imported, or the list naming the plugins cannot be read."""


def _names(source: str, names: object) -> tuple[str, ...]:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise PluginError(f'{source}: expected a list of module names, e.g. ["acme_generic"]')
    for name in names:
        if not _MODULE.fullmatch(name):
            raise PluginError(f"{source}: {name!r} is not a module name")
    return tuple(names)


def declared_plugins(root: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    """The built-in steps, the plugins ``root/pyproject.toml`` declares, then those ``PIPELINE_PLUGINS`` adds."""
    declared: tuple[str, ...] = ()
    project = root / PROJECT_FILE
    if project.is_file():
        import tomllib

        try:
            table = tomllib.loads(project.read_text(encoding="utf-8")).get("tool", {}).get(_TABLE, {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PluginError(f"{project}: cannot be read: {exc}") from exc
        if "plugins" in table:
            declared = _names(f"{project}: [tool.{_TABLE}] plugins", table["plugins"])
    added = [part.strip() for part in env.get(ENV_VAR, "").split(",") if part.strip()]
    return tuple(dict.fromkeys([*BUILTIN_PLUGINS, *declared, *_names(ENV_VAR, added)]))


def recorded_plugins(root: Path) -> tuple[str, ...] | None:
    """The plugins the build recorded in the artifact at ``root``; None when ``root`` is not a built artifact."""
    record = root / RECORD_FILE
    try:
        text = record.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PluginError(f"{record}: not JSON: {exc}") from exc
    return _names(f"{record}: plugins", document.get("plugins") if isinstance(document, dict) else None)


def plugin_modules(env: Mapping[str, str], root: Path = Path(".")) -> tuple[str, ...]:
    """The plugins a host at ``root`` loads: the build's record in an artifact, else ``declared_plugins``.

    The tools run in the project (``root`` defaults to the working directory); the handler passes its task root.
    """
    recorded = recorded_plugins(root)
    return recorded if recorded is not None else declared_plugins(root, env)


def load_plugins(modules: Iterable[str] = BUILTIN_PLUGINS) -> tuple[str, ...]:
    """Import each plugin module (idempotent); return their names."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            import traceback  # only on this path: the cold start does not pay for it

            # The module's own line that failed (a step module's import), not importlib's machinery.
            machinery = ("<", __file__, importlib.__file__)
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(machinery)]
            where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
            raise PluginError(
                f"plugin module {name!r} cannot be imported: {where}{exc} (is it installed, or on PYTHONPATH?)"
            ) from exc
        loaded.append(name)
    return tuple(loaded)
