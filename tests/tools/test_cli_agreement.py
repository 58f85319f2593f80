"""The command-line tools agree: the same mistake is refused with the same words and exit status by each."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from tests.support.dryrun import EVENTS, WORLD
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
