"""The usual fix added to a configuration problem that names none (``pipeline-dryrun --check``).

Fixes for YAML's syntax errors (a pattern's backslash in double quotes among them), characters a paste brings in, a
number left bare in JMESPath, an unloaded plugin's step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.errors import Problem

__all__ = ["hinted"]

# The usual fix for a YAML syntax error in libyaml's words (the loader the cold start uses), by its message.
_YAML_HINTS = {
    "invalid YAML: did not find expected key": "this line is indented more or less than the keys beside it: line it up",
    "invalid YAML: did not find expected '-' indicator": (
        "this line is indented less than the keys of the list item above it: line it up with them, or start an item (-)"
    ),
    "invalid YAML: but found another document": "a file holds one document: remove the --- line, or move what follows",
}


_BARE_NUMBER = re.compile(r"^invalid JMESPath: unexpected (-?\d+);.* \(in '(?P<source>.*)'\)$")


_UNKNOWN_STEP_HINT = (
    "a plugin's steps are registered only when it is loaded: list its module in pyproject.toml "
    "[tool.inbound-pipeline] plugins (or PIPELINE_PLUGINS for one run; docs/extending.md)"
)


# A key whose value starts with a quote closed before the problem's column: YAML read the quoted part alone.
_QUOTED_VALUE = re.compile(r"""\s*(?:-\s+)?[^\s#'"][^#'"]*?:\s+(?P<quote>['"])""")
_QUOTED_HINT = (
    "the value starts with a quote, so YAML reads the quoted part alone as the value and the rest of the line is "
    "left over: put the whole value in double quotes, with single quotes inside"
)


def _lines(problem: Problem) -> list[str]:
    """The lines of the file a problem is in (none when it cannot be read again)."""
    try:
        return Path(problem.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _left_after_quotes(problem: Problem, lines: Sequence[str]) -> bool:
    """Whether a YAML 'expected key' error follows a value that starts with a quote closed earlier on its line."""
    if problem.message != "invalid YAML: did not find expected key" or len(lines) < problem.line:
        return False
    line = lines[problem.line - 1]
    opened = _QUOTED_VALUE.match(line)
    return opened is not None and 0 <= line.find(opened["quote"], opened.end()) < problem.column - 1


# Characters a paste from a chat, a web page or a word processor brings into a condition, by what to do.
_PASTED = {
    "\u00a0": "a non-breaking space (U+00A0), invisible: retype it as a space",
    "\u200b": "a zero-width space (U+200B), invisible: delete it",
    "\u2018": "a typographic quote: write the plain ' instead",
    "\u2019": "a typographic quote: write the plain ' instead",
    "\u201c": "a typographic quote: write the plain \" instead (or ' for text)",
    "\u201d": "a typographic quote: write the plain \" instead (or ' for text)",
}
_UNEXPECTED = re.compile(r"^invalid JMESPath: unexpected character '(.+?)'")


def _pasted(problem: Problem) -> str | None:
    """What a JMESPath syntax error's unexpected character is, when it came with a paste."""
    unexpected = _UNEXPECTED.match(problem.message)
    if unexpected is None:
        return None
    shown = unexpected[1]  # as repr() writes it: invisible characters escaped, others as they are
    return _PASTED.get(shown.encode("ascii").decode("unicode_escape") if shown.isascii() else shown)


# A pasted space YAML does not take for one: in a line's indentation, or after a key's colon.
_LAYOUT_SPACE = re.compile("^[ \t]*([\u00a0\u200b])|:([\u00a0\u200b])")


def _invisible_layout(problem: Problem, lines: Sequence[str]) -> Problem | None:
    """A YAML syntax error placed at the invisible space causing it, on its line or the one above.

    libyaml reports a layout it could not read where it gave up, often the line after the culprit.
    """
    for number in range(max(problem.line - 2, 0), min(problem.line, len(lines))):
        found = _LAYOUT_SPACE.search(lines[number])
        if found:
            at = found.start(1) if found[1] else found.start(2)
            name = _PASTED[lines[number][at]].split(":")[0]
            message = f"{problem.message}; the line holds {name}, where YAML needs a plain space: retype it"
            return replace(problem, line=number + 1, column=at + 1, message=message)
    return None


_UNKNOWN_ESCAPE = "invalid YAML: found unknown escape character"


def _escape_hint(problem: Problem, lines: Sequence[str]) -> str | None:
    r"""The fix for a backslash YAML's double quotes do not take (a pattern's ``\s``, ``\d``, ``\w``): doubling it."""
    if problem.message != _UNKNOWN_ESCAPE:
        return None
    line = lines[problem.line - 1] if 0 < problem.line <= len(lines) else ""
    written = line[problem.column - 1 : problem.column + 1]
    example = f"\\{written}" if written.startswith("\\") and len(written) == 2 else "\\\\"
    return (
        'in double quotes YAML reads a backslash as the start of an escape (\\n, \\t, \\"): write a regular '
        f"expression's backslash twice ({example})"
    )


def hinted(problem: Problem) -> Problem:
    """``problem``, with the usual fix when it names none (YAML's syntax, a number left bare, an unloaded plugin)."""
    # The file is read again (once) only for a YAML syntax error, whose fix the lines around it show.
    lines = _lines(problem) if problem.message.startswith("invalid YAML: ") else []
    invisible = _invisible_layout(problem, lines)
    if invisible is not None:
        return invisible
    pasted = _pasted(problem)
    if pasted:
        return replace(problem, message=f"{problem.message}; it is {pasted}")
    hint = _QUOTED_HINT if _left_after_quotes(problem, lines) else _YAML_HINTS.get(problem.message)
    hint = _escape_hint(problem, lines) or hint
    if ": unknown step '" in problem.message and "; registered steps: " in problem.message:
        hint = _UNKNOWN_STEP_HINT
    bare = _BARE_NUMBER.match(problem.message)
    if bare:
        written = re.search(rf"(?<![\w.`']){re.escape(bare[1])}(\.\d+)?([eE][-+]?\d+)?", bare["source"])
        hint = f"write a number in backticks: `{written[0] if written else bare[1]}`"
    return replace(problem, message=f"{problem.message}; {hint}") if hint else problem
