"""What tells ``pipeline-serve`` that the project changed: its configuration (reloaded), its code (a restart needed)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import sysconfig
from pathlib import Path

from runtime.layout import PIPELINES_DIR, RULES_DIR, pipeline_files, yaml_files
from runtime.plugins import BUILTIN_PLUGINS, PluginError, plugin_modules

__all__ = ["code_stamp", "configuration_stamp"]


def configuration_stamp(project: Path) -> tuple[tuple[str, str], ...]:
    """What changes when a file of ``project``'s ``pipelines/`` or ``rules/`` is edited, added or removed.

    Each file's content, not its modification time and size: a file's time moves by its filesystem's granularity
    (a second on some mounts, a clock tick on older kernels) and can be put back (``cp -p``), so a second save of the
    same length within it would go unnoticed. The files are small; reading them at each event is cheap.
    """
    stamps = []
    for path in [*pipeline_files(project / PIPELINES_DIR), *yaml_files(project / RULES_DIR)]:
        with contextlib.suppress(OSError):  # removed meanwhile: its absence is the change
            stamps.append((str(path), hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(stamps)


def code_stamp(project: Path) -> dict[str, tuple[int, int]]:
    """The time and size of each loaded module file of the plugins (the built-in steps among them) and the project.

    Code is imported once: an edit to it is not loaded again with the configuration, only said to need a restart.
    """
    try:
        plugins = {name.partition(".")[0] for name in plugin_modules(os.environ, project)}
    except PluginError:  # pyproject.toml mid-edit: the project's own files are still watched
        plugins = {name.partition(".")[0] for name in BUILTIN_PLUGINS}
    own = os.path.abspath(project) + os.sep
    # Installed packages are not the project's code, even in a virtual environment inside it (.venv/).
    installed = tuple({os.path.abspath(path) + os.sep for path in sysconfig.get_paths().values()})
    stamps: dict[str, tuple[int, int]] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue
        ours = file.startswith(own) and not os.path.abspath(file).startswith(installed)
        if not (ours or name.partition(".")[0] in plugins):
            continue
        with contextlib.suppress(OSError):
            status = os.stat(file)
            stamps[file] = (status.st_mtime_ns, status.st_size)
    return stamps
