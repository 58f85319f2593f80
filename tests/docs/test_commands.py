"""What the pages give a reader to copy runs as written.

A ``python`` block at a page's top level is a program (blocks indented in a list are excerpts of a module): what it
imports exists, and every name it uses is imported or defined in it.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
from pathlib import Path

import pytest

from tests.support.expect import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


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
