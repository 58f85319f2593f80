"""``python -m tools.stamp ROOT``: a ROOT that is no directory is a usage error, named, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.stamp import main


@pytest.mark.parametrize(("kind", "said"), [("missing", "no such directory"), ("file", "not a directory")])
def test_a_root_that_is_no_directory_is_refused_with_exit_2_and_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, said: str
) -> None:
    root = tmp_path / "task"
    if kind == "file":
        root.write_text("", encoding="utf-8")
    assert main([str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"python -m tools.stamp: error: {root}: {said}\n"
    assert not (tmp_path / "config.stamp.json").exists()
