"""Values the docs quote from the code are the code's: the stack's parameter defaults and ranges, the shipped rules'
versions.

Before, such a value was copied by hand and changed with its source only when someone remembered: the rules version
the dry-run prints for the shipped files was quoted in three pages and went stale with every rules change, and a
parameter's default in deploy.md's table (``Api5xxAlarmThreshold``) could differ from template.yaml's unnoticed.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from engine.config import load_config
from tests.deploy.cfn import load_template
from tests.support.expect import ROOT

DEPLOY = ROOT / "docs" / "deploy.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_NAME = re.compile(r"`([A-Za-z0-9]+)`")
_RANGE = re.compile(r"\((-?\d+) to (-?\d+)\b")
# The dry-run's first line for the shipped files: ``rules version: email_inbound 0123456789ab, twilio_inbound …``.
_RULES_VERSION_LINE = re.compile(r"rules version:\s+((?:[a-z_]+\s+[0-9a-f]{12}(?:,\s+)?)+)")
# A log line or metrics document of the shipped Twilio rules: a version with no bundle source beside it.
_SHIPPED_JSON = re.compile(
    r'"(?:RulesVersion|rules_version)": "([0-9a-f]{12})"(?![^\n]*"(?:RulesSource|rules_source)")'
)
# A parameter named in prose with its default: ``TransientErrorsAlarmThreshold`` (2), ``…`` (14 by default).
_PARAMETER_IN_PROSE = re.compile(r"`([A-Z][A-Za-z0-9]+)` \((-?\d+)(?: by default)?\)")
_LIVE_VERSION = re.compile(r'"live": \{"version": "([0-9a-f]{12})"')


def parameter_rows(text: str) -> list[tuple[list[str], list[str], str]]:
    """deploy.md's parameter table: per row, its parameter names, their defaults (one each when the row lists as
    many, split as the names are: ``A` / `B`` and ``1 / 2``, ``A`, `B`` and ``1, 2``) and its meaning."""
    start = text.index("| parameter | default | meaning |")
    lines = itertools.takewhile(lambda line: line.startswith("|"), text[start:].splitlines()[2:])
    rows = []
    for line in lines:
        names_cell, default_cell, meaning = (cell.strip() for cell in line.strip().strip("|").split(" | ", 2))
        names = _NAME.findall(names_cell)
        separator = " / " if " / " in names_cell else ", "
        defaults = [part.strip() for part in default_cell.split(separator)] if len(names) > 1 else [default_cell]
        if default_cell.startswith("empty:"):  # ``empty: <derived> / <derived>``: each name's default is empty
            defaults = ["empty"] * len(names)
        rows.append((names, defaults if len(defaults) == len(names) else [], meaning))
    return rows


def documented_default(written: str) -> str | None:
    """The template's ``Default`` a table cell states (``empty`` and ``empty: <derived>`` are ``""``), or None for
    ``(required)``."""
    if written == "(required)":
        return None
    if written == "empty" or written.startswith("empty:"):
        return ""
    return re.sub(r"\s+\(.*\)$", "", written).strip("`")


def test_every_parameter_of_the_template_is_in_the_deploy_table() -> None:
    parameters: dict[str, Any] = load_template()["Parameters"]
    documented = {name for names, _, _ in parameter_rows(DEPLOY.read_text(encoding="utf-8")) for name in names}
    assert documented <= set(parameters), sorted(documented - set(parameters))
    # ``EventCapture`` and ``EventCapture*``: one row for the capture's parameters, described in recording-events.md.
    missing = sorted(name for name in parameters if name not in documented and not name.startswith("EventCapture"))
    assert not missing, f"docs/deploy.md's parameter table does not name {missing}"


def test_the_deploy_table_quotes_the_templates_defaults_and_ranges() -> None:
    parameters: dict[str, Any] = load_template()["Parameters"]
    wrong = []
    for names, defaults, meaning in parameter_rows(DEPLOY.read_text(encoding="utf-8")):
        if not defaults:  # a default cell not split as the names are would otherwise go unchecked
            wrong.append(f"{names}: the default cell does not give one default per name")
        for name, written in zip(names, defaults, strict=False):
            declared = parameters[name].get("Default")
            expected = documented_default(written)
            if (None if declared is None else str(declared)) != expected:
                wrong.append(f"{name}: the table says {written!r}, template.yaml's Default is {declared!r}")
        for low, high in _RANGE.findall(meaning):
            for name in names:
                bounds = (str(parameters[name].get("MinValue")), str(parameters[name].get("MaxValue")))
                if bounds != (low, high):
                    wrong.append(f"{name}: the table says {low} to {high}, template.yaml's bounds are {bounds}")
    assert not wrong, wrong


def test_a_parameter_quoted_with_its_default_in_prose_has_that_default() -> None:
    parameters: dict[str, Any] = load_template()["Parameters"]
    quoted = [
        (str(page.relative_to(ROOT)), name, value)
        for page in PAGES
        for name, value in _PARAMETER_IN_PROSE.findall(page.read_text(encoding="utf-8"))
        if name in parameters
    ]
    assert quoted
    wrong = [
        f"{page}: `{name}` ({value}), template.yaml's Default is {parameters[name].get('Default')!r}"
        for page, name, value in quoted
        if str(parameters[name].get("Default")) != value
    ]
    assert not wrong, wrong


@pytest.fixture(scope="module")
def shipped_versions() -> dict[str, str]:
    """The rules version of each shipped pipeline with the shipped rules (what the dry-run and the Lambda report)."""
    return {
        path.stem: load_config(path, ROOT / "rules", {}, missing_env="warning").version
        for path in sorted((ROOT / "pipelines").glob("*.yaml"))
    }


def quoted_versions() -> list[tuple[str, str, str]]:
    """(page, pipeline, version) for each rules version of the shipped files a page quotes."""
    quoted = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        name = str(page.relative_to(ROOT))
        for line in _RULES_VERSION_LINE.findall(text):
            pairs = re.findall(r"([a-z_]+)\s+([0-9a-f]{12})", line)
            quoted += [(name, pipeline, version) for pipeline, version in pairs]
        quoted += [(name, "twilio_inbound", version) for version in _SHIPPED_JSON.findall(text)]
        quoted += [(name, "twilio_inbound", version) for version in _LIVE_VERSION.findall(text)]
    return quoted


def test_the_extending_guide_names_every_page_quoting_the_shipped_rules_version() -> None:
    """Before: a step added to a shipped pipeline as docs/extending.md says changed that pipeline's rules version, and
    two tests failed on three pages quoting the old one, which the guide never mentioned."""
    guide = " ".join((ROOT / "docs" / "extending.md").read_text(encoding="utf-8").split())
    said = guide[guide.find("rules version") :][:600] if "rules version" in guide else ""
    pages = {page.rsplit("/", 1)[-1] for page, _, _ in quoted_versions()}
    assert pages and all(page in said for page in pages), (sorted(pages), said)


def test_the_extending_guide_names_what_a_new_pipeline_or_error_code_must_change() -> None:
    """Before: a third pipeline with a step of its own, added as docs/extending.md says, failed tests the guide never
    named: the editor schemas (which describe each code with the pipelines declaring it), dry-run.md's rules-version
    banner (every pipeline's), and the on-call entry each new code needs; and the guide's ``ErrorSpec`` left out
    ``loses_message``, the one flag the loss alarms read, so a code that drops a message went unalarmed unsaid."""
    guide = " ".join((ROOT / "docs" / "extending.md").read_text(encoding="utf-8").split())
    step = guide[guide.index("## Add a step") : guide.index("## Add a pipeline")]
    pipeline = guide[guide.index("## Add a pipeline") : guide.index("## Add a plugin package")]
    assert "loses_message" in step and "tests/runtime/test_oncall_runbook.py" in step, step
    assert "make schemas" in pipeline and "tests/tools/test_schema_published.py" in pipeline, pipeline
    assert "rules version" in pipeline and "dry-run.md" in pipeline, pipeline


def test_the_extending_guide_names_what_the_template_s_new_alarms_and_parameters_need() -> None:
    """Before: the template of a third pipeline, written by the guide's list, still failed three tests it never
    named: its transient alarm's threshold looked up as a parameter ``<Name>TransientErrorsAlarmThreshold`` of its
    own ("WebhookTransientErrorsAlarm does not fire at {'Ref': 'WebhookTransientErrorsAlarmThreshold'}"), each new
    parameter in deploy.md's parameter table, and each new alarm in deploy.md's on-call section."""
    guide = " ".join((ROOT / "docs" / "extending.md").read_text(encoding="utf-8").split())
    stack = guide[guide.index("What the stack needs for the new channel") : guide.index("## Add a plugin package")]
    assert "TransientErrorsAlarmThreshold" in stack, stack
    assert "tests/docs/test_quoted_values.py" in stack and "tests/runtime/test_oncall_runbook.py" in stack, stack


def test_the_rules_versions_quoted_for_the_shipped_files_are_theirs(shipped_versions: dict[str, str]) -> None:
    quoted = quoted_versions()
    assert quoted, "no page quotes the shipped rules' version any more: drop this test or its patterns"
    stale = [
        f"{page} quotes {version} for {pipeline}, whose shipped files are {shipped_versions.get(pipeline)}"
        for page, pipeline, version in quoted
        if shipped_versions.get(pipeline) != version
    ]
    assert not stale, stale


def test_a_stale_quote_is_caught() -> None:
    rows = parameter_rows(
        "| parameter | default | meaning |\n| --- | --- | --- |\n"
        "| `A` / `B` | 500 / 1000 | x (1 to 10) |\n| `C` / `D` | empty: `<stack>-c` / `<stack>-d` | y |\n\nafter\n"
    )
    assert rows == [(["A", "B"], ["500", "1000"], "x (1 to 10)"), (["C", "D"], ["empty", "empty"], "y")]
    assert documented_default("604800 (7 days)") == "604800"
    assert documented_default("`prod`") == "prod"
    assert documented_default("(required)") is None
    assert _PARAMETER_IN_PROSE.findall("`Ab` (2) in 5 minutes, `Bc` (14 by default), `Cd` (1 hour)") == [
        ("Ab", "2"),
        ("Bc", "14"),
    ]
    assert _RULES_VERSION_LINE.findall("`rules version: email_inbound\naad0ec11eed8, twilio_inbound cf5d7b1e41e1`")
    assert _SHIPPED_JSON.findall('{"RulesVersion": "0123456789ab", "Pipeline": "x"}') == ["0123456789ab"]
    assert not _SHIPPED_JSON.findall('"rules_version": "0123456789ab", "rules_source": "bundle 1, revision 1"}')
