"""What the dry-run says about each event: the contract's JSON object, a table row, and a summary.

``event_record`` builds the ``--json`` object (contract §6) from a replayed event, masking personal
data on the way; ``Table`` writes the readable form (a row per event, optional explanations, a
summary); ``Progress`` draws a progress bar on a terminal.

Against a baseline, each event's ``change_kind`` says why its decision differs: ``changed`` (the
candidate rules decide differently on the same world), ``knock_on`` (the baseline rules would decide
the same on the candidate's world: an earlier changed event left the world different, e.g. a lock
not taken), ``unchanged``, or ``not_compared`` (its pipeline's rules were missing from one lane's
directory, a pulled bundle, so both lanes decided it with the same rules). ``masked_reads`` finds the
rules that read a value a masked recording replaced with ``[masked]``: their decisions are not what
production would decide.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.rules import decided_rules
from runtime.app import Handled
from runtime.masking import ADDRESS_LIST_KEYS, MASKED_TEXT, RECORDING_KEY, display_names_masked
from steps.support import json_text
from tools.console import json_line
from tools.dryrun.mask import Masker
from tools.dryrun.pipeline import SKIPPED_STATUS, authenticating
from tools.dryrun.recording import Action

__all__ = [
    "CHANGE_KINDS",
    "NOT_COMPARED",
    "Progress",
    "Replayed",
    "Summary",
    "Table",
    "Writer",
    "change_kind",
    "change_label",
    "event_record",
    "LATE_REPLAY_NOTE",
    "MASKED_SIGNATURE_NOTE",
    "REDACTED_SECRET_NOTE",
    "SHOWN_MASKED_NOTE",
    "STALE_SIGNATURE_NOTE",
    "masked_note",
    "masked_reads",
    "shown_masked_note",
    "to_json_line",
]

# An event of a pipeline both lanes decided with the same rules (a pulled bundle held none of its own).
NOT_COMPARED = "not_compared"
CHANGE_KINDS = ("changed", "knock_on", "unchanged", NOT_COMPARED)


class Writer(Protocol):
    """Where output goes: a text stream (or a wrapper around one)."""

    def write(self, text: str, /) -> int:
        """Write ``text``."""
        ...

    def flush(self) -> None:
        """Flush buffered output."""
        ...

    def isatty(self) -> bool:
        """True on a terminal."""
        ...


@dataclass(frozen=True)
class Replayed:
    """One event run through one rule set: the handled result, its actions and notes, the rules version."""

    handled: Handled
    actions: list[Action]
    notes: list[str]
    version: str | None = None


def _route(handled: Handled) -> Mapping[str, Any]:
    route = handled.result.doc.get("route")
    return route if isinstance(route, Mapping) else {}


def decision_of(run: Replayed) -> tuple[str, str | None, Any]:
    """What a baseline comparison looks at: outcome, target and response (or the raised error code)."""
    handled = run.handled
    response = handled.response
    answer: Any = (
        ("raised", handled.result.error_code) if response is None else (response["statusCode"], response["body"])
    )
    return handled.result.outcome, _route(handled).get("target"), answer


def change_label(baseline: Replayed, current: Replayed) -> str | None:
    """``"A → B"`` when the decision changed (``OUTCOME[target]``, plus "response" if only that changed)."""
    before, after = decision_of(baseline), decision_of(current)
    if before == after:
        return None

    def label(decision: tuple[str, str | None, Any]) -> str:
        return decision[0] + (f"[{decision[1]}]" if decision[1] else "")

    text = f"{label(before)} → {label(after)}"
    return text if before[:2] != after[:2] else f"{text} (response)"


def change_kind(baseline: Replayed, current: Replayed, probe: Replayed | None) -> str:
    """``unchanged``, ``changed`` or ``knock_on``; ``probe`` is the baseline rules run on the candidate's world.

    Without a probe (the two worlds cannot differ yet, or every event runs against the world as loaded) a
    difference can only come from the rules.
    """
    decided = decision_of(current)
    if decision_of(baseline) == decided:
        return "unchanged"
    if probe is not None and decision_of(probe) == decided:
        return "knock_on"
    return "changed"


def effects(run: Replayed) -> list[tuple[Any, ...]]:
    """What an event did to its world (writes and sends, whatever the table and queue names): to compare lanes."""
    return [(action.type, action.payload, action.delay_seconds, action.condition_failed) for action in run.actions]


def _holds_mask(value: Any, key: str) -> bool:
    """Whether ``value`` (under ``key``) holds what a masked recording put in: ``[masked]``, or masked names.

    An e-mail address field keeps its addresses, its display names become ``masked`` (``masked masked <k@…>``).
    """
    if isinstance(value, str):
        if key.lower() in ADDRESS_LIST_KEYS and "masked" in value:
            return display_names_masked(value) == value
        return value == MASKED_TEXT
    if isinstance(value, Mapping):
        return any(_holds_mask(item, str(name)) for name, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_mask(item, key) for item in value)
    return False


def masked_reads(run: Replayed) -> list[tuple[str, str]]:
    """(``ruleset/rule``, path) for every rule tried that read a value a masked recording replaced."""
    return [
        (f"{rule.ruleset}/{rule.rule}", path)
        for rule in run.handled.result.rules
        for path, value in rule.inputs.items()
        if _holds_mask(value, path.rsplit(".", 1)[-1])
    ]


def masked_note(event: Any, reads: Sequence[tuple[str, str]]) -> str | None:
    """The note for an event whose rules read masked fields (None when none did).

    A ``mask=none`` recording kept every value: a ``[masked]`` in it is what the sender wrote.
    """
    recording = event.get(RECORDING_KEY) if isinstance(event, Mapping) else None
    mode = recording.get("mask") if isinstance(recording, Mapping) else None
    if not reads or mode == "none":
        return None
    # The page finds these notes by how they begin (tools.dryrun.report_page.MASKED_READ_NOTES).
    what = f"recording masked (mask={mode})" if mode else "masked recording"
    read = ", ".join(dict.fromkeys(f"{rule} read {path}" for rule, path in reads))
    names = any(path.rsplit(".", 1)[-1].lower() in ADDRESS_LIST_KEYS for _, path in reads)
    held = f"{MASKED_TEXT} or masked names" if names else MASKED_TEXT
    return (
        f"{what}: {read}, which held {held} instead of the real value; "
        "production may decide differently (replay a mask=none capture to review rules that read text)"
    )


# How the note on an event whose rules read a value the output hides begins (``shown_masked_note``): they read the
# real value, unlike the rules of a masked recording's note (``masked_note``).
SHOWN_MASKED_NOTE = "personal data hidden:"


def shown_masked_note(
    record: Mapping[str, Any], run: Replayed, baseline: Replayed | None, masker: Masker
) -> str | None:
    """The note for an event whose rules read values its output shows masked (None when none did).

    The rules decided on the real values, which only ``--show-data`` shows (with it, no value is masked). ``record``
    is ``run``'s (``event_record``): its rules' inputs are shown already, so only the baseline's are masked here.
    """
    tried = [(rule, entry["inputs"]) for rule, entry in zip(run.handled.result.rules, record["rules"], strict=True)]
    if baseline is not None:
        tried += [(rule, masker.inputs(rule.inputs)) for rule in baseline.handled.result.rules]
    readers: dict[str, dict[str, None]] = {}  # path -> the rules that read it (each path named once: many rules)
    for rule, shown in tried:
        for path, value in rule.inputs.items():
            key = path.rsplit(".", 1)[-1]
            if not _holds_mask(value, key) and _holds_mask(shown[path], key):
                readers.setdefault(path, {})[f"{rule.ruleset}/{rule.rule}"] = None
    if not readers:
        return None
    read = ", ".join(
        f"{next(iter(rules))} read {path}" + (f" (and {len(rules) - 1} more rules)" if len(rules) > 1 else "")
        for path, rules in readers.items()
    )
    return (
        f"{SHOWN_MASKED_NOTE} {read}: the rules read the real value, which the output does not show; "
        "replay with --show-data to see it"
    )


def _action(action: Action, masker: Masker) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": action.type}
    if action.type == "send_message":
        entry["queue"] = action.target
        entry["body"] = masker.body(action.payload)
        entry["delay_seconds"] = action.delay_seconds
    else:
        entry["table"] = action.target
        entry["item" if action.type == "put_item" else "key"] = masker.data(action.payload)
    if action.condition_failed:
        entry["condition_failed"] = True
    return entry


# How the note on an event whose recording masked the signature it was checked against begins (``tools.dryrun.lanes``).
MASKED_SIGNATURE_NOTE = "signature not checked: the recording masked it"
# How the note on a captured message that production's own replay record ends REPLAY at a later replay time begins.
LATE_REPLAY_NOTE = "not decided by the rules: production's replay record of this message"
# How the note on an event whose signed time the replay's time (not its arrival) puts past its window begins.
STALE_SIGNATURE_NOTE = "signature not checked: its signed time was inside the window"
# How the note on an event refused by a signature checked with a credential the world holds redacted begins.
REDACTED_SECRET_NOTE = "signature not checked: the world's secret"


def signature_state(run: Replayed, uses: Mapping[str, str], skip_signature: bool) -> str | None:
    """``valid``, ``invalid``, ``unchecked`` (never reached), ``skipped`` (every event under --skip-signature).

    None when the event was not a parsed request (nothing to check).
    """
    if skip_signature:
        return "skipped"
    result = run.handled.result
    if result.error_code == "INVALID_SIGNATURE":
        unchecked = (MASKED_SIGNATURE_NOTE, REDACTED_SECRET_NOTE, STALE_SIGNATURE_NOTE)
        return "unchecked" if any(note.startswith(unchecked) for note in run.notes) else "invalid"
    checks = [step for step, name in uses.items() if authenticating(name)]
    statuses = {entry.step: entry.status for entry in result.trace}
    if checks and all(statuses.get(step) == "ok" for step in checks):
        return "valid"
    request = result.doc.get("request")
    # A refused parse may record what it read of the request (its SID, say): it still did not parse.
    parsed = isinstance(request, Mapping) and len(request) > 1 and result.error_code != "PARSING_ERROR"
    return "unchecked" if parsed else None


def event_record(
    source: str,
    run: Replayed,
    *,
    masker: Masker,
    uses: Mapping[str, str],
    skipped_steps: frozenset[str],
    skip_signature: bool,
    baseline: Replayed | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The ``--json`` object of one event (contract §6, plus ``signature``, ``message``, ``response``, ``notes``)."""
    handled = run.handled
    result = handled.result
    route = _route(handled)
    raised = handled.raised is not None
    response = handled.response
    record: dict[str, Any] = {
        "source": source,
        "pipeline": handled.pipeline,
        "outcome": result.outcome,
        "error_code": result.error_code,
        "raised": raised,
        "status_code": None if response is None else response["statusCode"],
        "target": route.get("target"),
        "queue": route.get("queue_url"),
        "actions": [_action(action, masker) for action in run.actions],
        "trace": [
            {
                "step": entry.step,
                "status": SKIPPED_STATUS if entry.step in skipped_steps else entry.status,
                "ms": entry.ms,
                "decision": entry.decision,
            }
            for entry in result.trace
        ],
        "rules": [
            {"ruleset": rule.ruleset, "rule": rule.rule, "matched": rule.matched, "inputs": masker.inputs(rule.inputs)}
            for rule in result.rules
        ],
        "decided_by": decided_rules(result.rules, result.error),
        "rules_version": run.version,
    }
    if baseline is not None:
        change = change_label(baseline, run)
        record["baseline_outcome"] = baseline.handled.result.outcome
        record["baseline_target"] = _route(baseline.handled).get("target")
        record["baseline_decided_by"] = decided_rules(baseline.handled.result.rules, baseline.handled.result.error)
        record["baseline_rules_version"] = baseline.version
        record["changed"] = change is not None
        record["change"] = change
        record["change_kind"] = kind or ("changed" if change is not None else "unchanged")
    record["signature"] = signature_state(run, uses, skip_signature)
    # Messages carry no data by design, but a failing condition's message may quote a value it read.
    record["message"] = masker.text(result.error.message) if result.error else None
    if record["message"] and handled.verdict and not skip_signature:
        # As the event line's reason: a misrouted message's signature check (--skip-signature skips its steps too).
        record["message"] += f" [{handled.verdict}]"
    record["response"] = (
        None
        if response is None
        else {
            "status_code": response["statusCode"],
            "content_type": response.get("headers", {}).get("Content-Type"),
            "body": response["body"],
        }
    )
    if raised:
        record["exception"] = masker.text(str(handled.raised))
    record["notes"] = run.notes
    return record


def to_json_line(record: Mapping[str, Any]) -> str:
    """One line of ``--json`` output."""
    return json_line(json_text(record, ensure_ascii=False, check_circular=False, default=str))


def _why(record: Mapping[str, Any]) -> str:
    """A short reason: the rules that matched, then the error, the step that stopped the run, skipped writes."""
    parts = [f"{rule['ruleset']}/{rule['rule']}" for rule in record["rules"] if rule["matched"]]
    parts += [f"{entry['step']}: {entry['decision']}" for entry in record["trace"] if _by_default(entry)]
    if record["message"]:
        parts.append(record["message"])
    stopped = [f"{entry['step']}: {entry['decision']}" for entry in record["trace"] if entry["status"] == "stopped"]
    parts += stopped
    unapplied = [action["table"] for action in record["actions"] if action.get("condition_failed")]
    if unapplied and not stopped:
        parts.append("not applied (condition): " + ", ".join(unapplied))
    return " · ".join(parts)


def _by_default(entry: Mapping[str, Any]) -> bool:
    """A step that decided by its rule set's default (no rule matched)."""
    return entry["status"] == "ok" and str(entry["decision"] or "").endswith("(default)")


def _compact(value: Any) -> str:
    return json_text(value, ensure_ascii=False, default=str)


def _details(record: Mapping[str, Any]) -> list[str]:
    """The explanation under a row: trace, rules with their inputs, actions, response."""
    steps = " → ".join(
        f"{entry['step']} {entry['status']} {entry['ms']:.2f}ms"
        + (f" ({entry['decision']})" if entry["decision"] else "")
        for entry in record["trace"]
    )
    lines = [f"    trace:    {steps}\n"]
    if record.get("rules_version"):
        decided = ", ".join(f"{name} {rule or '-'}" for name, rule in record["decided_by"].items()) or "no rule set"
        lines.append(f"    decided:  {decided} (rules version {record['rules_version']})\n")
    if record.get("changed") and "baseline_decided_by" in record:
        was = (
            ", ".join(f"{name} {rule or '-'}" for name, rule in record["baseline_decided_by"].items()) or "no rule set"
        )
        lines.append(f"    baseline: {was} (rules version {record.get('baseline_rules_version') or '-'})\n")
    for rule in record["rules"]:
        inputs = ", ".join(f"{path}={_compact(value)}" for path, value in rule["inputs"].items())
        # A rule that decided its set without matching is the one whose condition failed (INTERNAL_ERROR).
        failed = not rule["matched"] and record["decided_by"].get(rule["ruleset"]) == rule["rule"]
        verdict = "matched" if rule["matched"] else "condition failed" if failed else "no match"
        lines.append(
            f"    rule:     {rule['ruleset']}/{rule['rule']}: {verdict}" + (f" ({inputs})" if inputs else "") + "\n"
        )
    for action in record["actions"]:
        where = action.get("table") or action.get("queue")
        payload = action.get("item") or action.get("key") or action.get("body")
        extra = f" delay {action['delay_seconds']}s" if action["type"] == "send_message" else ""
        failed = " [condition failed: not applied]" if action.get("condition_failed") else ""
        text = payload if isinstance(payload, str) else _compact(payload)
        lines.append(f"    action:   {action['type']} {where}{extra}{failed} {text}\n")
    response = record["response"]
    if response is None:
        lines.append(f"    response: raised {record.get('exception', '')}\n")
    else:
        lines.append(f"    response: {response['status_code']} {response['content_type']} {response['body']}\n")
    return lines


@dataclass
class Summary:
    """Counts over the replay: outcomes, signature states and (with a baseline) changes."""

    outcomes: Counter[str] = field(default_factory=Counter)
    signatures: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    masked: int = 0
    events: int = 0
    unread: int = 0
    masked_signatures: int = 0
    redacted_signatures: int = 0
    late_replays: int = 0
    stale_signatures: int = 0

    def add(
        self,
        outcome: str,
        signature: str | None,
        change: str | None,
        kind: str | None = None,
        masked: bool = False,
        unread: bool = False,
        masked_signature: bool = False,
        redacted_signature: bool = False,
        late_replay: bool = False,
        stale_signature: bool = False,
    ) -> None:
        """Count one event.

        ``unread``: a live replay could not read the account for it; ``masked_signature``: it stopped at a signature
        its recording masked; ``redacted_signature``: at one checked with a credential the world holds redacted;
        ``late_replay``: production's record of the message ended it REPLAY at a replay time after its arrival;
        ``stale_signature``: its signed time was in its window at its arrival, and is past it at the replay's time.
        """
        self.events += 1
        self.unread += unread
        self.masked_signatures += masked_signature
        self.redacted_signatures += redacted_signature
        self.late_replays += late_replay
        self.stale_signatures += stale_signature
        self.outcomes[outcome] += 1
        if signature:
            self.signatures[signature] += 1
        if change:
            self.changes[change] += 1
        if kind:
            self.kinds[kind] += 1
        self.masked += masked

    @property
    def changed(self) -> int:
        """How many events changed against the baseline."""
        return sum(self.changes.values())

    def signature_lines(self) -> list[str]:
        """The summary's lines on signatures not checked or skipped (the report page's notes repeat them)."""
        lines = []
        unchecked = self.signatures.get("unchecked", 0)
        if unchecked:
            lines.append(f"signature not checked for {unchecked} event(s)")
        skipped = self.signatures.get("skipped", 0)
        if skipped:
            lines.append(f"signature skipped (--skip-signature) for {skipped} event(s)")
        return lines


class Table:
    """The readable output: a header, a row per event (with ``explain``, the details), a summary."""

    def __init__(self, out: Writer, sources: Sequence[str], *, explain: bool, baseline: bool) -> None:
        self._out = out
        self._explain = explain
        self.baseline = baseline
        self._source_width = min(max([len("SOURCE"), *(len(source) for source in sources)]), 60)
        self._outcome_width = 28

    def _line(self, *columns: str) -> str:
        source, outcome, target, status, actions, why = columns
        return (
            f"{source:<{self._source_width}}  {outcome:<{self._outcome_width}}  {target:<8}  {status:>6}  "
            f"{actions:>7}  {why}".rstrip()
            + "\n"
        )

    def header(self, banner: Sequence[str]) -> None:
        """Notes that apply to the whole replay, then the column titles."""
        for line in banner:
            self._out.write(f"{line}\n")
        self._out.write(self._line("SOURCE", "OUTCOME", "TARGET", "STATUS", "ACTIONS", "WHY"))

    def row_text(self, record: Mapping[str, Any]) -> str:
        """One event's row, its notes and (with ``explain``) its details."""
        status = "raised" if record["raised"] else str(record["status_code"])
        why = _why(record)
        if record.get("changed"):
            was = record["change"].split(" → ")[0]
            label = "KNOCK-ON" if record.get("change_kind") == "knock_on" else "CHANGED"
            why = f"{label} (was {was}) · {why}" if why else f"{label} (was {was})"
        lines = [
            self._line(
                record["source"], record["outcome"], record["target"] or "-", status, str(len(record["actions"])), why
            )
        ]
        lines += [f"    note: {note}\n" for note in record["notes"]]
        if self._explain:
            lines += _details(record)
        return "".join(lines)

    def summary(self, summary: Summary, *, elapsed: float, baseline_name: str | None) -> None:
        """Counts per outcome, signature states and changes."""
        write = self._out.write
        rate = f", {summary.events / elapsed:.0f} events/s" if elapsed > 0 and summary.events >= 100 else ""
        noun = "event" if summary.events == 1 else "events"
        write(f"\n{summary.events} {noun} replayed in {elapsed:.2f}s{rate}\n")
        for outcome, count in sorted(summary.outcomes.items(), key=lambda item: (-item[1], item[0])):
            write(f"  {outcome:<{self._outcome_width}}  {count:>6}\n")
        for line in summary.signature_lines():
            write(f"{line}\n")
        if summary.unread:
            write(
                f"{summary.unread} event(s) not decided: the replay could not read the account; "
                "their outcomes are the replay's, not the rules' (see the notes)\n"
            )
        if summary.masked:
            write(
                f"{summary.masked} event(s): a rule read a field the recording masked; "
                "those decisions may differ in production (see the notes)\n"
            )
        if baseline_name is not None:
            knock_on = summary.kinds.get("knock_on", 0)
            split = f" ({summary.changed - knock_on} by the rules, {knock_on} knock-on)" if knock_on else ""
            write(f"against the baseline ({baseline_name}): {summary.changed} event(s) changed{split}\n")
            if summary.kinds.get(NOT_COMPARED):
                write(
                    f"  {summary.kinds[NOT_COMPARED]} event(s) not compared: both lanes decided them with the same "
                    "rules (one lane's directory holds none of their pipeline's rules; stderr says which)\n"
                )
            for change, count in sorted(summary.changes.items(), key=lambda item: (-item[1], item[0])):
                write(f"  {change}  {count}\n")


class Progress:
    """A progress bar on a terminal (stderr), redrawn at most ten times a second."""

    def __init__(self, err: Writer, total: int, *, enabled: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._err = err
        self._total = total
        self._enabled = enabled
        self._clock = clock
        self._last = -math.inf

    def update(self, done: int) -> None:
        """Show ``done`` of the total."""
        if not self._enabled:
            return
        now = self._clock()
        if now - self._last < 0.1 and done < self._total:
            return
        self._last = now
        width = 30
        filled = width * done // max(self._total, 1)
        self._err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self._total} events")
        self._err.flush()

    def close(self) -> None:
        """Clear the bar."""
        if self._enabled:
            self._err.write("\r" + " " * 60 + "\r")
            self._err.flush()
