"""docs/rule-bundles.md's "Trying bundles locally", run as written against moto's standalone server.

The page's shell block is walked line by line: its ``export`` lines are the environment, its ``pipeline-serve`` and
``pipeline-rules`` lines run as real processes (moto's address and the candidate's directory swapped for the test's
own), its edit is the page's YAML block and its posts are the page's ``post.py``. Nothing is created by hand: the
rules bucket is ``--provision``'s.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docs.test_commands import invocation, shell_commands
from tests.integration.conftest import ROOT, Moto, Serve, base_env, start_serve, stop

pytestmark = pytest.mark.integration

PAGE = ROOT / "docs" / "rule-bundles.md"
SECTION = re.compile(r"^## Trying bundles locally\n(.*?)^## ", re.MULTILINE | re.DOTALL)
PICK_UP_SECONDS = 15.0
DOC_ENDPOINT = "http://127.0.0.1:5000"
DOC_URL = "http://127.0.0.1:3000"
DOC_CANDIDATE = "/tmp/candidate"


def section_blocks() -> tuple[str, str, str]:
    """The section's shell block, YAML block and ``post.py``."""
    match = SECTION.search(PAGE.read_text(encoding="utf-8"))
    assert match, "docs/rule-bundles.md has no 'Trying bundles locally' section"
    text = match.group(1)
    (shell,) = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    (change,) = re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    (post,) = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return shell, change, post


def apply_change(change: str, routing: Path) -> None:
    """Insert the page's rule first under ``rules:`` and its case first under ``tests:``, as the page says."""
    added = re.fullmatch(
        r"rules:\n(.*?)  # … the shipped rules follow\ntests:\n(.*?)  # … the shipped cases follow\n", change, re.DOTALL
    )
    assert added, change
    text = routing.read_text(encoding="utf-8")
    text = text.replace("rules:\n", "rules:\n" + added.group(1), 1).replace("tests:\n", "tests:\n" + added.group(2), 1)
    routing.write_text(text, encoding="utf-8")


def events(server: Serve) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output()[0] if line.startswith("{")]


def test_the_documented_local_round_publishes_shadows_promotes_and_rolls_back(
    moto_server: Moto, tmp_path: Path
) -> None:
    moto_server.reset()
    shell, change, post = section_blocks()
    env = base_env(LOG_LEVEL="INFO")
    candidate = tmp_path / "candidate"
    server: Serve | None = None
    done: list[str] = []

    def swapped(words: list[str]) -> list[str]:
        return [
            word.replace(DOC_ENDPOINT, moto_server.endpoint).replace(DOC_CANDIDATE, str(candidate)) for word in words
        ]

    def posted_until(seen: Callable[[list[dict[str, Any]]], bool], words: list[str]) -> None:
        """Run the page's post.py (its URL the server's) until the server's lines show what the page says."""
        assert server is not None
        script = tmp_path / "post.py"
        script.write_text(post.replace(DOC_URL, server.base), encoding="utf-8")
        deadline = time.monotonic() + PICK_UP_SECONDS
        while time.monotonic() < deadline:
            answer = subprocess.run([sys.executable, str(script), *words], capture_output=True, text=True, timeout=30)
            assert answer.returncode == 0, answer.stderr
            if seen(events(server)):
                return
            time.sleep(0.3)
        raise AssertionError(f"not seen within {PICK_UP_SECONDS} s after {done}: {events(server)[-1]}")

    def last_event() -> dict[str, Any]:
        assert server is not None
        return [line for line in events(server) if line["message"] == "event"][-1]

    try:
        for command in shell_commands(shell):
            if not command or command[0] == "moto_server":  # the session's moto server stands in for it
                continue
            if command[0] == "export":
                env.update(dict(word.split("=", 1) for word in command[1:]))
                continue
            found = invocation(command)
            if found and found[0] == "pipeline-serve":
                server = start_serve(tmp_path, swapped(found[1]), env)
            elif found and found[0] == "pipeline-rules":
                arguments = swapped(found[1])
                ran = subprocess.run(
                    [sys.executable, "-m", "tools.rules", *arguments],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert ran.returncode == 0, f"{shlex.join(command)}:\n{ran.stdout}{ran.stderr}"
                done.append(arguments[2])
            elif command[:2] == ["cp", "-r"]:
                shutil.copytree(ROOT / command[2], swapped([command[3]])[0])
            elif command[0] == "vi":
                apply_change(change, Path(swapped([command[1]])[0]))
            elif command[:2] == ["python", "post.py"]:
                words = command[2:]
                if done[-1] == "publish":
                    posted_until(lambda lines: any(line["message"] == "shadow_mismatch" for line in lines), words)
                elif done[-1] == "promote":
                    posted_until(lambda lines: "rules_source" in last_event(), words)
                    assert last_event()["rules"]["routing"] == "asks_for_agent"
                    assert last_event()["rules_source"].endswith(", revision 2")
                    assert last_event()["target"] == "handoff"
                elif done[-1] == "rollback":
                    posted_until(lambda lines: "rules_source" not in last_event(), words)
                    assert (last_event()["rules"]["routing"], last_event()["target"]) == ("channel_queue", "whatsapp")
                done.append("post")
            elif command[0] == "grep":
                assert server is not None
                (mismatch, *_) = [line for line in events(server) if line["message"] == command[1]]
                assert mismatch["live"]["rules"]["routing"] == "channel_queue"
                assert mismatch["candidate"]["rules"]["routing"] == "asks_for_agent"
                done.append("grep")
            else:
                raise AssertionError(f"a line of the page this test does not run: {shlex.join(command)}")
        assert server is not None
        # Every post and the grep in the page's order: a step's assertions above run only where it is in the page.
        assert done == ["publish", "post", "grep", "promote", "post", "rollback", "post", "list"]
        _, err = server.output()
        assert "RULES_BUCKET=local-rules" in err and "lacks" not in err
        assert not [line for line in events(server) if line.get("level") == "ERROR"]
    finally:
        if server is not None:
            stop(server.process)
