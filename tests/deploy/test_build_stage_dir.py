"""``--stage-dir``: the build empties a directory only when it holds an earlier build (what ``sam build`` gives it).

The function layer of ``scripts/build_lambda.py``; nothing is downloaded (``resolve`` stops the build there).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


class Resolved(Exception):
    """The build got as far as resolving its dependencies."""


@pytest.fixture
def no_download(build: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(*args: object, **kwargs: object) -> list[str]:
        raise Resolved

    monkeypatch.setattr(build, "resolve", resolve)


@pytest.mark.usefixtures("no_download")
def test_a_directory_holding_other_files_is_refused_and_left_as_it_was(
    build: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: any non-empty directory but a source tree was deleted whole (--stage-dir ~ emptied the home directory).
    elsewhere = tmp_path / "notes"
    (elsewhere / "drafts").mkdir(parents=True)
    (elsewhere / "drafts" / "plan.txt").write_text("keep me\n", encoding="utf-8")

    assert build.main(["--stage-dir", str(elsewhere), "--no-zip"]) == 1

    assert capsys.readouterr().out.splitlines()[-1] == (
        f"error: {elsewhere} is not empty and holds no earlier build (handler.py, pipeline-plugins.json); "
        "give an empty or new directory"
    )
    assert (elsewhere / "drafts" / "plan.txt").read_text(encoding="utf-8") == "keep me\n"
    assert sorted(path.name for path in elsewhere.iterdir()) == ["drafts"]


@pytest.mark.usefixtures("no_download")
def test_an_earlier_build_is_replaced(build: ModuleType, tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    with pytest.raises(Resolved):
        build.main(["--stage-dir", str(stage), "--no-zip"])
    (stage / "engine" / "removed_since.py").write_text("", encoding="utf-8")

    with pytest.raises(Resolved):
        build.main(["--stage-dir", str(stage), "--no-zip"])

    assert not (stage / "engine" / "removed_since.py").exists()
    assert (stage / "handler.py").is_file() and (stage / "config.stamp.json").is_file()


@pytest.mark.usefixtures("no_download")
def test_an_empty_or_new_directory_is_built_in(build: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for stage in (tmp_path / "empty", tmp_path / "new"):
        with pytest.raises(Resolved):
            build.main(["--stage-dir", str(stage), "--no-zip"])
        assert (stage / "handler.py").is_file() and (stage / "pipeline-plugins.json").is_file()


@pytest.mark.usefixtures("no_download")
def test_a_regular_file_is_refused_and_left_as_it_was(
    build: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a traceback (NotADirectoryError from listing it).
    named = tmp_path / "lambda.zip"
    named.write_bytes(b"PK\x05\x06" + bytes(18))

    assert build.main(["--stage-dir", str(named), "--no-zip"]) == 1

    assert capsys.readouterr().out.splitlines()[-1] == (
        f"error: {named} is a file, not a directory; give an empty or new directory"
    )
    assert named.read_bytes() == b"PK\x05\x06" + bytes(18)


@pytest.mark.usefixtures("no_download")
def test_a_directory_that_cannot_be_made_is_refused_with_the_reason(
    build: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("keep me\n", encoding="utf-8")
    stage = tmp_path / "notes.txt" / "stage"

    assert build.main(["--stage-dir", str(stage), "--no-zip"]) == 1

    assert capsys.readouterr().out.splitlines()[-1] == f"error: {stage} cannot be made: Not a directory"
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me\n"
