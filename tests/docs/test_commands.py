"""What the pages give a reader to copy runs as written.

Every ``pipeline-*`` command of a shell block is one its tool's parser accepts (a renamed option, a dropped
subcommand or a mode it refuses would fail it). A replay of the bundled examples (``examples/``) runs on a fresh clone:
the files it reads are the repository's, or made by an earlier line of its block (``mkdir``, ``tar -C``, ``--out``,
``-o``, ``>``). A ``python`` block at a page's top level is a program (blocks indented in a list are excerpts of a
module): what it imports exists, and every name it uses is imported or defined in it.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import io
import itertools
import re
import shlex
import symtable
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.expect import ROOT
from tools import rules, serve
from tools.dryrun import cli, event_cli, world_cli

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SHELL = re.compile(r"^```(?:sh|bash|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)
TOOLS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "pipeline-dryrun": cli.build_parser,
    "pipeline-event": event_cli._parser,
    "pipeline-world": world_cli._parser,
    "pipeline-serve": serve._parser,
    "pipeline-rules": rules._parser,
}
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_MAKES = {"-C", "--out", "-o", ">", ">>"}  # the option or redirection before a path a command makes


def shell_commands(block: str) -> Iterator[list[str]]:
    """The commands of a shell block, in order, as words: continuation lines joined, comments dropped, a line cut at
    ``|``, ``&&``, ``;``, ``&`` and a subshell's parentheses; a placeholder (``<MessageSid>``) is a word."""
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"<([A-Za-z][\w-]*)>", r"\1", line)  # a placeholder, `--sid <MessageSid>`, is a word
        words = shlex.shlex(line, posix=True, punctuation_chars=True)
        words.whitespace_split = True
        command: list[str] = []
        for word in words:
            if word in _SEPARATORS:
                yield command
                command = []
            else:
                command.append(word)
        yield command


def invocation(command: list[str]) -> tuple[str, list[str]] | None:
    """The tool a command runs and its arguments (redirections left out), or None for another program."""
    words = list(command)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value before the command
        words.pop(0)
    if not words or Path(words[0]).name not in TOOLS:
        return None
    arguments = []
    rest = iter(words[1:])
    for word in rest:
        if word in (">", ">>"):
            next(rest, None)
        else:
            arguments.append(word)
    return Path(words[0]).name, arguments


def refusal(tool: str, arguments: list[str]) -> str | None:
    """Why ``tool`` refuses ``arguments`` before doing anything, or None."""
    parser = TOOLS[tool]()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parsed = parser.parse_args(arguments)
    except SystemExit as exit:
        return (errors.getvalue().strip().splitlines() or [f"exit {exit.code}"])[-1] if exit.code else None
    return cli.mode_conflict(parser, parsed) if tool == "pipeline-dryrun" else None


def missing_files(block: str) -> list[str]:
    """The files that a replay of the bundled examples in ``block`` reads and a fresh clone has not, unless an
    earlier line of the block makes them."""
    made: list[str] = []
    problems = []
    for command in shell_commands(block):
        found = invocation(command)
        if found and found[0] == "pipeline-dryrun":
            parsed = cli.build_parser().parse_args(found[1])
            if any(str(path).startswith("examples/") for path in parsed.events):
                reads = [parsed.world, parsed.rules, parsed.baseline_rules, parsed.pipeline, parsed.baseline_pipeline]
                for path in [*reads, *parsed.events]:
                    name = str(path).rstrip("/") if path is not None else ""
                    if (
                        name
                        and not (ROOT / name).exists()
                        and not any(name == made_ or name.startswith(f"{made_}/") for made_ in made)
                    ):
                        problems.append(f"{name}: read by `{' '.join(command)}`, and no such file")
        made += [word.rstrip("/") for before, word in itertools.pairwise(command) if before in _MAKES]
        if command[:1] == ["mkdir"]:
            made += [word.rstrip("/") for word in command[1:] if not word.startswith("-")]
    return problems


BLOCKS = [(page, block) for page in PAGES for block in _SHELL.findall(page.read_text(encoding="utf-8"))]


def python_blocks(page: Path) -> list[str]:
    """The programs of a page: its top-level ``python`` blocks."""
    return _PYTHON.findall(page.read_text(encoding="utf-8"))


def undefined_names(source: str) -> list[str]:
    """The names ``source`` uses that it neither imports nor defines, and that are not builtins."""
    top = symtable.symtable(source, "<page>", "exec")
    defined = {symbol.get_name() for symbol in top.get_symbols() if symbol.is_assigned() or symbol.is_imported()}
    known = defined | set(dir(builtins))
    missing = [symbol.get_name() for symbol in top.get_symbols() if symbol.is_referenced()]
    scopes = list(top.get_children())
    while scopes:
        scope = scopes.pop()
        scopes.extend(scope.get_children())
        missing += [
            symbol.get_name() for symbol in scope.get_symbols() if symbol.is_global() and symbol.is_referenced()
        ]
    return sorted({name for name in missing if name not in known})


def run_imports(source: str) -> None:
    """Run the imports of ``source`` alone (what it imports must exist); the rest may need a server or take long."""
    tree = ast.parse(source)
    lines: list[ast.stmt] = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(body=lines, type_ignores=[]), "<page>", "exec"), {})


PROGRAMS = [(page, source) for page in PAGES for source in python_blocks(page)]


def test_the_pages_hold_commands_of_every_tool() -> None:
    tools = {found[0] for _, block in BLOCKS for command in shell_commands(block) if (found := invocation(command))}
    assert tools == set(TOOLS)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_documented_command_is_one_its_tool_accepts(page: Path) -> None:
    refused = [
        f"`{' '.join(command)}`: {problem}"
        for block in _SHELL.findall(page.read_text(encoding="utf-8"))
        for command in shell_commands(block)
        if (found := invocation(command)) and (problem := refusal(*found))
    ]
    assert not refused, refused


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_a_replay_of_the_examples_reads_only_files_a_fresh_clone_has(page: Path) -> None:
    # Defect: README.md's and dry-run.md's comparisons of the bundled examples read `old-rules/` and `candidate/`,
    # which no clone has and no line before made: pasted, each stopped at exit 2 (`old-rules:1:1: --baseline-rules:
    # no such directory; …`).
    problems = [
        problem for block in _SHELL.findall(page.read_text(encoding="utf-8")) for problem in missing_files(block)
    ]
    assert not problems, problems


def test_a_refused_command_or_a_missing_file_is_caught() -> None:
    block = (
        "mkdir -p /tmp/base && git archive HEAD rules | tar -x -C /tmp/base   # the rules\n"
        ".venv/bin/pipeline-dryrun --world examples/world.yaml --baseline-rules /tmp/base/rules \\\n"
        "    --rules candidate/ examples/events > out.txt\n"
        "(umask 077; KEY=x pipeline-world snapshot --profile p captured/ -o world.json)\n"
    )
    commands = [invocation(command) for command in shell_commands(block)]
    assert [found for found in commands if found] == [
        (
            "pipeline-dryrun",
            [
                "--world",
                "examples/world.yaml",
                "--baseline-rules",
                "/tmp/base/rules",
                "--rules",
                "candidate/",
                "examples/events",
            ],
        ),
        ("pipeline-world", ["snapshot", "--profile", "p", "captured/", "-o", "world.json"]),
    ]
    assert missing_files(block) == [
        "candidate: read by `.venv/bin/pipeline-dryrun --world examples/world.yaml --baseline-rules /tmp/base/rules "
        "--rules candidate/ examples/events > out.txt`, and no such file"
    ]
    assert refusal("pipeline-dryrun", ["--world", "examples/world.yaml", "examples/events"]) is None
    assert refusal("pipeline-dryrun", ["--wrold", "examples/world.yaml", "examples/events"])
    assert refusal("pipeline-dryrun", ["--check", "examples/events"])  # a mode the tool refuses
    assert refusal("pipeline-rules", ["--bucket", "b", "publsh"])
    assert refusal("pipeline-event", ["build", "--channel", "whatsapp", "--tokn", "T"])


def test_the_pages_hold_programs() -> None:
    assert len(PROGRAMS) >= 2


@pytest.mark.parametrize(
    ("page", "source"),
    PROGRAMS,
    ids=[f"{page.relative_to(ROOT)}#{index}" for index, (page, _) in enumerate(PROGRAMS)],
)
def test_every_program_of_a_page_imports_what_it_uses(page: Path, source: str) -> None:
    # Defect: dry-run.md's corpus example called Path("out") without importing it: pasted, it stopped at
    # NameError: name 'Path' is not defined.
    assert undefined_names(source) == [], f"{page.relative_to(ROOT)}: a block uses names it does not define"
    run_imports(source)


def test_a_program_using_a_name_it_never_defines_is_caught() -> None:
    source = "from json import dumps\n\ndef show(x):\n    return dumps(x) + suffix\n\nprint(show(Path('out')))\n"
    assert undefined_names(source) == ["Path", "suffix"]
    assert undefined_names("from pathlib import Path\n\nsuffix = ''\n" + source) == []
    with pytest.raises(ImportError):
        run_imports("from tools.dryrun.corpus import no_such_name\n")
