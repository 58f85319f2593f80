"""What the docs name in code spans exists: the project's modules and their attributes (``runtime.misroute``,
``tools.iam.pipeline_grants``), its files (``runtime/misroute.py``, ``tests/runtime/test_time_budget.py``), and the
tests they cite by name (``test_bursts_around_the_window_with_a_consumer_lose_nothing``).

A rename or a move leaves the prose behind, and nothing else reads it: the reader is sent to a name that is not there.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import pytest

from tests.support.expect import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_DOTTED = re.compile(r"`((?:engine|runtime|steps|tools)\.[A-Za-z_][\w.]*[A-Za-z_0-9])(?:\(\))?`")
_PATH = re.compile(r"`((?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+\.(?:py|yaml|yml|json|jsonl|md|toml|css|js))`")
_TEST = re.compile(r"\b(test_\w+)(\.py)?\b")

# Names in code spans that look like references and are not: an event line's fields (``steps.<step id>``), files a
# reader writes or a tool creates, and files of other projects.
NOT_REFERENCES = {
    "steps.signature",  # deploy.md: the event line's `steps` field, the signature step's status
    "steps.parse",
    "bench-results/latest.json",  # written by `make bench`
    "rules/50_vip.yaml",  # rules-guide.md: a rule file the reader adds
    "acme_generic/__init__.py",  # extending.md: a plugin package the reader writes
    "sendgrid/helpers/eventwebhook/__init__.py",  # SendGrid's Python library
}


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module of the project, or an attribute (at any depth) of one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@cache
def suite_tests() -> frozenset[str]:
    """The tests of the suite (functions and files, without ``.py``)."""
    names = {path.stem for path in (ROOT / "tests").rglob("test_*.py")}
    for path in (ROOT / "tests").rglob("*.py"):
        names.update(re.findall(r"^\s*(?:async )?def (test_\w+)", path.read_text(encoding="utf-8"), re.MULTILINE))
    return frozenset(names)


def missing(page: Path) -> list[str]:
    """The references of ``page`` that name nothing."""
    text = page.read_text(encoding="utf-8")
    problems = [
        f"{name}: no such module or attribute"
        for name in dict.fromkeys(_DOTTED.findall(text))
        if name not in NOT_REFERENCES and not resolves(name)
    ]
    problems += [
        f"{path}: no such file"
        for path in dict.fromkeys(_PATH.findall(text))
        if path not in NOT_REFERENCES and not (ROOT / path).exists() and not (page.parent / path).exists()
    ]
    problems += [f"{name}: no such test" for name, _ in dict.fromkeys(_TEST.findall(text)) if name not in suite_tests()]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_module_file_and_test_a_page_names_exists(page: Path) -> None:
    assert not missing(page), missing(page)


def test_a_reference_to_nothing_is_caught(tmp_path: Path) -> None:
    assert resolves("runtime.misroute") and resolves("tools.iam.pipeline_grants") and resolves("runtime.app")
    assert not resolves("runtime.no_such_module") and not resolves("runtime.misroute.no_such_name")
    page = tmp_path / "page.md"
    page.write_text(
        "`runtime.misroute.checker()`, `runtime/misroute.py`, `test_the_pages_link_somewhere`, `steps.signature`;\n"
        "`runtime.misrouting`, `runtime/misrouting.py`, `tests/docs/test_nothing.py`, `test_nothing_at_all`.\n",
        encoding="utf-8",
    )
    assert missing(page) == [
        "runtime.misrouting: no such module or attribute",
        "runtime/misrouting.py: no such file",
        "tests/docs/test_nothing.py: no such file",
        "test_nothing: no such test",
        "test_nothing_at_all: no such test",
    ]
