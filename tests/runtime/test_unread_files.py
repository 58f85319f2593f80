"""The cold start names the entries of ``rules/`` and ``pipelines/`` it does not read, in one WARNING line.

``pipeline-dryrun --check`` warns about them (``tools.check_files``); a function deployed without that check ran
without the rules of a ``55_vip.YAML`` and said nothing. The line names each entry with the fix ``--check`` gives
(never a file's text), and costs the cold start no file read and no more directory listings than before.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET_TEXT = "ruleset: do_not_log_this_text"

Logs = Callable[..., list[dict[str, Any]]]


class _Audit:
    """The directories listed and the files opened under ``root`` while ``on`` (Python's audit events)."""

    def __init__(self, root: Path) -> None:
        self.root, self.on = f"{root}/", False
        self.listed: Counter[str] = Counter()
        self.opened: Counter[str] = Counter()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on or not args or not isinstance(args[0], str | Path):
            return
        path = str(args[0])
        if not path.startswith(self.root):
            return
        if event == "os.scandir":
            self.listed[path[len(self.root) :]] += 1
        elif event == "open":
            self.opened[path[len(self.root) :]] += 1


_AUDITS: list[_Audit] = []
_HOOKED: list[bool] = []  # an audit hook cannot be removed: one for the session, fed by _AUDITS


def _hook(event: str, args: tuple[Any, ...]) -> None:
    for audit in _AUDITS:
        audit(event, args)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[_Audit]:
    if not _HOOKED:
        sys.addaudithook(_hook)
        _HOOKED.append(True)
    found = _Audit(tmp_path / "task-root")
    _AUDITS.append(found)
    try:
        yield found
    finally:
        _AUDITS.remove(found)


def _misplaced(root: Path) -> None:
    """A rules file with an upper-case extension, a backup, a subdirectory, and what is rightly left alone."""
    rules, pipelines = root / "rules", root / "pipelines"
    (rules / "55_vip.YAML").write_text(SECRET_TEXT + "\n", encoding="utf-8")
    (rules / "40_routing.yaml.bak").write_text(SECRET_TEXT + "\n", encoding="utf-8")
    (rules / "archive").mkdir()
    (rules / "archive" / "old.yaml").write_text(SECRET_TEXT + "\n", encoding="utf-8")
    (rules / "README.md").write_text("How we change these files.\n", encoding="utf-8")  # notes: not configuration
    (rules / ".gitkeep").write_text("", encoding="utf-8")  # hidden: an editor's or git's
    (pipelines / "twilio_inbound.yaml.bak").write_text(SECRET_TEXT + "\n", encoding="utf-8")


def _unread_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "not read" in line["message"]]


def test_the_cold_start_names_every_entry_it_does_not_read_in_one_warning_with_the_fix(
    task_root: Callable[..., Any], json_logs: Logs, audit: _Audit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: rules/55_vip.YAML, a .bak copy or a subdirectory's files never run, and the cold start loaded the rules
    without a word: nobody who had not run --check could tell. Now one WARNING line (logger runtime.app) names each
    entry of rules/ and pipelines/ it does not read, with the fix --check gives; a README and hidden files are left
    alone, as --check leaves them. Measured with Python's audit events: no entry it names is opened or listed, and
    pipelines/ and rules/ are listed 6 times in all, as before (pipelines/ once, not twice: its listing also gives
    the unread entries; rules/ once more than the engine's 4)."""
    import engine.config
    import runtime.app

    # The cold start's own loading, not the suite's cache of loaded configurations (which reads every file).
    monkeypatch.setattr(runtime.app, "load_config", engine.config.load_config)
    _misplaced(tmp_path / "task-root")
    audit.on = True
    task_root({})
    audit.on = False

    lines = json_logs()
    (line,) = _unread_lines(lines)
    assert (line["level"], line["location"]) == ("WARNING", "runtime.app")
    assert line["message"] == (
        "not read at the cold start, so what they hold never runs: rules/40_routing.yaml.bak, rules/55_vip.YAML, "
        "rules/archive, pipelines/twilio_inbound.yaml.bak; rename or move each as problems says (pipeline-dryrun "
        "--check warns of the same)"
    )
    assert line["problems"] == [
        "rules/40_routing.yaml.bak: this file is not read: only the files of rules/ ending in .yaml or .yml are, so "
        "its rule sets never run; rename it to end in .yaml if it holds rules, or move it out of rules/",
        "rules/55_vip.YAML: this file is not read: only the files of rules/ ending in .yaml or .yml (lower-case) "
        "are, so its rule sets never run; rename it to 55_vip.yaml",
        "rules/archive: this directory is not read: only the files directly in rules/ are, so the rule sets of its "
        "files never run; move them into rules/, or the directory out of it",
        "pipelines/twilio_inbound.yaml.bak: this file is not read: only the files of pipelines/ ending in .yaml or "
        ".yml are, so its pipeline never runs; rename it to end in .yaml if it holds a pipeline, or move it out of "
        "pipelines/",
    ]
    assert not [each for each in lines if "do_not_log_this_text" in json.dumps(each)]
    unread = ("rules/55_vip.YAML", "rules/40_routing.yaml.bak", "rules/archive", "pipelines/twilio_inbound.yaml.bak")
    assert not [name for name in unread if audit.opened[name] or audit.listed[name]]
    assert not [name for name in audit.opened if name.startswith("rules/archive")]
    assert (audit.listed["pipelines"], audit.listed["rules"]) == (1, 5), audit.listed


def test_a_task_root_with_nothing_unread_says_nothing_of_it(task_root: Callable[..., Any], json_logs: Logs) -> None:
    task_root({})
    assert _unread_lines(json_logs()) == []


def test_the_shipped_directories_hold_nothing_the_cold_start_does_not_read() -> None:
    from runtime.layout import PIPELINES_DIR, RULES_DIR, listing

    assert listing(ROOT / RULES_DIR).unread == [] and listing(ROOT / PIPELINES_DIR).unread == []
    assert [path.name for path in listing(ROOT / RULES_DIR).read] == sorted(
        path.name for path in [*(ROOT / RULES_DIR).glob("*.yaml"), *(ROOT / RULES_DIR).glob("*.yml")]
    )


def test_the_line_naming_unread_entries_stays_one_log_event_however_many_there_are(
    task_root: Callable[..., Any], json_logs: Logs, tmp_path: Path
) -> None:
    """Defect: the line named every unread entry with its fix, unbounded: 1,000 files of rules/ that are not read
    (lookup data kept beside the rules, say) made one 228,298-byte line, 3,000 a 684,298-byte one, past the
    256 KB CloudWatch Logs takes as one event, so the JSON was cut. Now it names the first 100 (problems: their
    fixes) and says how many more there are, which pipeline-dryrun --check lists one by one."""
    rules = tmp_path / "task-root" / "rules"
    for index in range(3000):
        (rules / f"lookup_{index:04d}.json").write_text("{}\n", encoding="utf-8")
    task_root({})

    (line,) = _unread_lines(json_logs())
    assert len(json.dumps(line).encode()) < 32 * 1024
    assert line["message"] == (
        "not read at the cold start, so what they hold never runs: "
        + ", ".join(f"rules/lookup_{index:04d}.json" for index in range(100))
        + " and 2900 more; rename or move each as problems says (pipeline-dryrun --check warns of the same, "
        "and names every one)"
    )
    assert [problem.split(":")[0] for problem in line["problems"]] == [
        f"rules/lookup_{index:04d}.json" for index in range(100)
    ]


def test_an_entry_that_cannot_be_looked_at_is_named_and_the_rest_still_read(
    task_root: Callable[..., Any], json_logs: Logs, tmp_path: Path
) -> None:
    """Defect: the listing that gives the read and the unread entries asks each unread one whether it is a
    directory, and one that cannot be looked at (two symlinks naming each other: "too many levels of symbolic
    links") made the whole listing empty: pipelines/ then held no pipeline file, the cold start failed ("no
    pipeline files (*.yaml) found") where the glob it replaced read twilio_inbound.yaml. Such an entry is now one
    more file that is not read, named as such, and the others are read."""
    pipelines = tmp_path / "task-root" / "pipelines"
    (pipelines / "loop_a").symlink_to(pipelines / "loop_b")
    (pipelines / "loop_b").symlink_to(pipelines / "loop_a")
    task_root({})

    (line,) = _unread_lines(json_logs())
    assert "never runs: pipelines/loop_a, pipelines/loop_b; rename" in line["message"]
