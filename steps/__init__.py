"""The built-in steps, one module per capability; importing this package registers every one of them.

Each top-level module and subpackage here is imported, in name order (``_private`` ones excepted): a new
step is one file plus its test, with no list to edit. A subpackage imports its own step modules in its
``__init__``; the building blocks beside them (``sendgrid.multipart``, which pulls in the ``email``
package) are imported where they are used, never here. It also registers the expression functions
conditions may call (``steps.functions``). Hosts load this package through ``runtime.plugins.load_plugins``;
the engine never imports it.
"""

import importlib
import os


def _modules(directory: str) -> list[str]:
    """The public modules and packages of ``directory``, by name.

    A listing of the directory, not ``pkgutil.iter_modules``: importing ``pkgutil`` would add half a millisecond to
    every cold start, for kinds of module (zipped, compiled, without source) that this package never holds.
    """
    with os.scandir(directory) as entries:
        found = {
            entry.name.removesuffix(".py")
            for entry in entries
            if (entry.is_file() and entry.name.endswith(".py"))
            or (entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py")))
        }
    return sorted(name for name in found if name.isidentifier() and not name.startswith("_"))


__all__ = _modules(__path__[0])

for _name in __all__:
    importlib.import_module(f"{__name__}.{_name}")
