"""The command-line tools agree: the same mistake is refused with the same words and exit status by each."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError, Problem
from tests.support.dryrun import EVENTS, WORLD
from tools import serve
from tools.dryrun import cli, event_cli, world_cli
from tools.dryrun.snapshot import SECTION_TABLES

NOW_REFUSED = "--now: 'soon' is not an ISO-8601 time (e.g. 2026-12-07T10:00:00Z)"


def status_of(run: Callable[[], int]) -> int:
    """The exit status ``run`` returns, or the one argparse exits with."""
    try:
        return run()
    except SystemExit as stopped:
        return int(stopped.code or 0)


def dryrun(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    status = status_of(lambda: cli.main(["--world", str(WORLD), "--now", "soon", str(EVENTS)]))
    return status, capsys.readouterr().err


def world(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    for name in SECTION_TABLES.values():
        monkeypatch.setenv(name, name.lower())
    err = io.StringIO()
    status = status_of(lambda: world_cli.main(["snapshot", "--now", "soon", str(EVENTS)], out=io.StringIO(), err=err))
    return status, err.getvalue()


def event(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    args = ["build", "--channel", "email", "--from", "kim@example.org", "--to", "support@inbound.acme.example"]
    status = status_of(lambda: event_cli.main([*args, "--key-seed", "a seed", "--now", "soon"]))
    return status, capsys.readouterr().err


# Before: three messages for one mistake ('... (e.g. 2026-11-25T12:00:00Z)', no example at all, and argparse's
# 'argument --now: ...' under a usage line); the contract's status 2 for bad arguments in each.
@pytest.mark.parametrize(
    ("run", "prog"), [(dryrun, "pipeline-dryrun"), (world, "pipeline-world"), (event, "pipeline-event")]
)
def test_an_unreadable_now_is_refused_in_the_same_words_by_every_tool(
    run: Callable[..., tuple[int, str]], prog: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, err = run(capsys, monkeypatch)
    assert (status, err) == (2, f"{prog}: error: {NOW_REFUSED}\n")


# Before: pipeline-serve printed a broken world as 'pipeline-serve: error: the world file cannot be used:', then
# 'invalid configuration:' (a line of no tool's own, without the prefix), then the problems; the configuration's own
# problems under 'pipeline-serve: the configuration cannot run:', not marked an error.
def test_a_broken_world_is_reported_by_the_server_as_by_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "world.yaml"
    broken.write_text("conversations:\n  - primary_channel: '+1'\nnow: soon\n")
    assert status_of(lambda: cli.main(["--world", str(broken), str(EVENTS)])) == 2
    problems = capsys.readouterr().err.splitlines()
    assert len(problems) == 2 and all(line.startswith(f"{broken}:") for line in problems), problems
    assert serve.main(["--moto", "--world", str(broken)]) == 2
    assert capsys.readouterr().err.splitlines() == ["pipeline-serve: error: the world file cannot be used:", *problems]


def test_a_configuration_that_no_longer_loads_is_reported_by_the_server_as_every_tool_prints_problems(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: its problems under 'invalid configuration:', and the line saying so not marked an error.
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "rules").mkdir()
    pipeline = tmp_path / "pipelines" / "p.yaml"
    pipeline.write_text("name: p\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    class Function:
        capture = None

    def broken() -> Any:
        raise ConfigError([Problem("pipelines/p.yaml", 1, 7, "name: 'p2' is not the pipeline's name")])

    monkeypatch.setattr(serve, "load_function", Function)
    served = serve.ServedFunction()
    monkeypatch.setattr(serve, "load_function", broken)
    pipeline.write_text("name: p2\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        served.handle({}, serve.LocalContext("r-1", timeout_seconds=13.0))
    assert capsys.readouterr().err.splitlines() == [
        "pipeline-serve: error: the configuration changed and cannot run (each event is answered 502 until it is "
        "fixed):",
        "pipelines/p.yaml:1:7: name: 'p2' is not the pipeline's name",
    ]
