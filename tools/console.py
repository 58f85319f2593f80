"""What every console script shares: the project's plugins loaded, and a plain message for those that cannot be.

A reader that stops early (``| head``) ends the command quietly; Ctrl-C ends it with one line and status 130; a
plugin that cannot be imported (or a plugin list that cannot be read) ends it with one line naming the plugin and
where it is listed, and exit status 2 (bad configuration), never a traceback. A file name whose bytes are not UTF-8
(``caf`` and the byte E9, which Python holds as lone surrogates) is written with those bytes as escapes, as a rules
bundle names it (``tools.rules``), on stdout and stderr whatever their encoding (a strict UTF-8 pipe refuses them).
"""

from __future__ import annotations

import codecs
import functools
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ParamSpec

from engine.errors import Problem
from runtime.plugins import (
    BUILTIN_PLUGINS,
    ENV_VAR,
    PROJECT_FILE,
    RECORD_FILE,
    PluginError,
    declared_plugins,
    load_plugins,
    plugin_modules,
    recorded_plugins,
)

__all__ = [
    "EXIT_BAD_PLUGINS",
    "EXIT_CHANGED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_READER_GONE",
    "EXIT_USAGE",
    "console_script",
    "json_line",
    "load_project_plugins",
    "problem_lines",
]

P = ParamSpec("P")

# The statuses every tool shares (pipeline-dryrun's are the contract's): done; a decision changed under
# --fail-on-change, or an inline rule test failed; bad arguments or configuration.
EXIT_OK, EXIT_CHANGED, EXIT_USAGE = 0, 1, 2
# The status a shell gives a command killed by SIGPIPE (128 + 13).
EXIT_READER_GONE = 141
# The status a shell gives a command ended by Ctrl-C (128 + SIGINT's 2).
EXIT_INTERRUPTED = 130
# Bad configuration, as each tool's own configuration problems.
EXIT_BAD_PLUGINS = EXIT_USAGE

# What ``json.dumps(..., ensure_ascii=False)`` leaves raw that ``str.splitlines()`` (U+0085, U+2028, U+2029) or a
# JavaScript reader (U+2028, U+2029) takes for a line break, and the lone surrogates (a file name's bytes that are not
# UTF-8, as ``os.fsdecode`` keeps them) that no UTF-8 stream writes, which console scripts write as ``\xNN`` (no JSON
# escape). JSON allows them raw only inside strings, where the escape reads back as the same character.
_ESCAPED_IN_JSON = str.maketrans(
    {
        "\x85": "\\u0085",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
        **{chr(c): f"\\u{c:04x}" for c in range(0xD800, 0xE000)},
    }
)


# The error handler console scripts write stdout and stderr with (``_escaped``).
_ESCAPED = "pipeline-escaped"


def _escaped(error: UnicodeError) -> tuple[str, int]:
    r"""What a stream writes for the characters its encoding refuses (an error handler of ``codecs``).

    A name's byte that is not UTF-8 (a surrogate of U+DC80..U+DCFF, as ``os.fsdecode`` keeps it) as ``\xNN``, as
    ``os.fsencode(name).decode("utf-8", "backslashreplace")`` writes it; any other character as ``backslashreplace``.
    """
    if not isinstance(error, UnicodeEncodeError):
        raise error
    refused = error.object[error.start : error.end]
    return "".join(
        f"\\x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else ascii(char)[1:-1] for char in refused
    ), error.end


codecs.register_error(_ESCAPED, _escaped)


def _escaping(stream: object) -> None:
    """Let ``stream`` (sys.stdout, sys.stderr) write what its encoding refuses as escapes (``_escaped``)."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors=_ESCAPED)


def json_line(text: str) -> str:
    """JSON ``text`` written without ``ensure_ascii`` as a line of JSON Lines: line breaks and surrogates escaped."""
    return text.translate(_ESCAPED_IN_JSON)


def problem_lines(problems: Iterable[Problem]) -> str:
    """Configuration problems as every tool prints them: a ``FILE:LINE:COLUMN: message`` line each."""
    return "".join(f"{problem}\n" for problem in problems)


def _listed(name: str, root: Path) -> str:
    """Where plugin ``name`` of a tool run at ``root`` is listed."""
    if recorded_plugins(root) is not None:
        return str(root / RECORD_FILE)
    if name in BUILTIN_PLUGINS:
        return "the built-in steps"
    if name in declared_plugins(root, {}):
        return f"{root / PROJECT_FILE} [tool.inbound-pipeline] plugins"
    return ENV_VAR


def load_project_plugins(root: Path = Path(".")) -> tuple[str, ...]:
    """Import the plugins a tool run in the project at ``root`` loads; a PluginError names where each is listed."""
    modules = plugin_modules(os.environ, root)
    for name in modules:
        try:
            load_plugins((name,))
        except PluginError as exc:
            raise PluginError(f"{_listed(name, root)}: {exc}") from exc
    return modules


def console_script(prog: str) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Guard ``main`` of the script ``prog``: a reader gone away, an unusable plugin, Ctrl-C, a name not UTF-8."""

    def decorate(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> int:
            _escaping(sys.stdout)
            _escaping(sys.stderr)
            try:
                status = main(*args, **kwargs)
                sys.stdout.flush()
            except BrokenPipeError:
                # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail too.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_READER_GONE
            except PluginError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
                return EXIT_BAD_PLUGINS
            except KeyboardInterrupt:
                # Ctrl-C is the user's choice, not the tool's error: one line, a shell's status for it, no traceback.
                print(f"{prog}: interrupted", file=sys.stderr, flush=True)
                return EXIT_INTERRUPTED
            return status

        return guarded

    return decorate
