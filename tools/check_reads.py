"""Names a pipeline's conditions and inline tests read that are always null there (``pipeline-dryrun --check``).

A top-level name no step provides, a field of ``request`` the parse step never gives, a name provided only after
the step evaluating the rule set, a conversation attribute a ``read: rules`` read does not fetch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any, NamedTuple

from engine import registry
from engine.config import Inspection, LocatedExpression
from engine.errors import Problem, did_you_mean
from engine.expressions import expression_tokens
from engine.runner import ParallelGroup, PlannedStep
from steps.conversations import ConversationGet

__all__ = ["context_names", "provided_too_late", "request_fields", "unfetched"]


def _root_offset(source: str, name: str, field: str | None = None) -> int | None:
    """Where ``name`` (with ``field``: ``name.field``, at ``field``) first appears in ``source``, read from the top.

    None when it follows a dot wherever it appears: read from a value, not the top (``!a.b`` is ``(!a).b``).
    """
    tokens = expression_tokens(source)
    for index, token in enumerate(tokens):
        after_dot = index > 0 and tokens[index - 1]["type"] == "dot"
        if "identifier" not in token["type"] or token["value"] != name or after_dot:
            continue
        if field is None:
            return int(token["start"])
        if index + 2 < len(tokens) and tokens[index + 1]["type"] == "dot":
            read = tokens[index + 2]
            if "identifier" in read["type"] and read["value"] == field:
                return int(read["start"])
    return None


_RELATIVE = frozenset({"projection", "filter_projection", "value_projection", "flatten", "pipe"})


def _selected(node: Mapping[str, Any], root: str) -> Iterator[str]:
    """Fields a multi-select right after ``root`` read from the top reads (``request.[a, b]``, ``request.{x: a}``)."""
    children = [child for child in node.get("children", []) if isinstance(child, Mapping)]
    if node.get("type") == "subexpression" and children[0] == {"type": "field", "children": [], "value": root}:
        for item in children[1].get("children", []) if "multi_select" in children[1]["type"] else []:
            item = item["children"][0] if item["type"] == "key_val_pair" else item
            while item["type"] in ("subexpression", "index_expression"):
                item = item["children"][0]
            if item["type"] == "field":
                yield str(item["value"])
    if node.get("type") != "expref":
        for child in children[:1] if node.get("type") in _RELATIVE else children:
            yield from _selected(child, root)


def _selected_offset(source: str, root: str, field: str) -> int | None:
    """Where ``field`` is selected first in a multi-select right after ``root`` read from the top (``_selected``)."""
    tokens = expression_tokens(source)
    for index, token in enumerate(tokens[:-2]):
        after_dot = index > 0 and tokens[index - 1]["type"] == "dot"
        opener = tokens[index + 2]["type"]
        if (
            token["value"] != root
            or after_dot
            or tokens[index + 1]["type"] != "dot"
            or opener not in ("lbracket", "lbrace")
        ):
            continue
        depth, before = 0, ("lbracket", "comma") if opener == "lbracket" else ("colon",)
        for previous, read in zip(tokens[index + 2 :], tokens[index + 3 :], strict=False):
            depth += previous["type"] in ("lbracket", "lbrace", "lparen", "filter")
            depth -= previous["type"] in ("rbracket", "rbrace", "rparen")
            if depth <= 0:
                break
            if depth == 1 and previous["type"] in before and read["value"] == field and "identifier" in read["type"]:
                return int(read["start"])
    return None


def _unprovided(name: str, provided: frozenset[str], pipeline: str) -> str:
    hint = did_you_mean(name, sorted(provided))
    return (
        f"{name!r}, which is not in the context document: no step of {pipeline} provides it, so it is always "
        f"null{hint}; the document holds: {', '.join(sorted(provided))}"
    )


def context_names(inspection: Inspection) -> list[Problem]:
    """Top-level names conditions and inline tests read that no step of the pipeline provides.

    Only the pipeline's own conditions and the rule sets its steps run: a shared set another pipeline runs is
    checked with that pipeline.
    """
    provided, pipeline = inspection.provided, inspection.files[0]
    if provided is None or inspection.config is None:  # with errors, what steps provide is not settled
        return []
    unused = {loaded.locator.file for name, loaded in inspection.rulesets.items() if name not in inspection.used}
    found: list[Problem] = []
    for located in inspection.expressions:
        if located.locator.file in unused:
            continue
        source = located.expression.source
        for root in dict.fromkeys(path[0] for path in located.expression.paths):
            offset = _root_offset(source, root)
            if root not in provided and offset is not None:
                message = f"the condition reads {_unprovided(root, provided, pipeline)}"
                found.append(located.locator.problem(located.path, message, severity="warning", offset=offset))
    for name, loaded in inspection.rulesets.items():
        for test in loaded.ruleset.tests if name in inspection.used else ():
            for key in test.given:
                if key not in provided:
                    path = ("tests", test.index, "given", key)
                    message = f"inline test {test.name!r} gives {_unprovided(key, provided, pipeline)}"
                    found.append(loaded.locator.problem(path, message, at_key=True, severity="warning"))
    return found


def request_fields(inspection: Inspection, own: Collection[str] = ()) -> list[Problem]:
    """Fields of ``request`` conditions and inline tests read that the pipeline's parse step never provides.

    The step that provides ``request`` (the last, when several do) says which fields it gives
    (``request_fields``); one that does not say is not checked. Only the pipeline's own conditions and the rule
    sets its steps run, as ``context_names``, and (``own``: their files) the sets only this pipeline decides with,
    which no step may name yet. A field another registered step gives (``twilio.parse``'s ``user_number`` in an
    email rule) is told as such: that step is not the pipeline's, so its requests never carry the field.
    """
    steps = inspection.config.pipeline.steps() if inspection.config is not None else []
    # The last step that provides it gives what the rules read (sendgrid.read completes sendgrid.parse's).
    parser = next((step for step in reversed(steps) if step.provides == "request"), None)
    fields = _fields_of(parser)
    if parser is None or fields is None:
        return []
    pipeline = inspection.files[0]
    unused = {loaded.locator.file for name, loaded in inspection.rulesets.items() if name not in inspection.used}
    unused -= set(own)
    step = f"{parser.uses} (step {parser.id!r} of {pipeline}) never provides it, so it is always null"
    ours = {step.uses for step in steps}

    def never(name: str) -> str:
        listed = "; the request's fields: " + ", ".join(sorted(fields))
        givers = [spec.name for spec in registry.specs() if spec.name not in ours and name in _declared(spec)]
        if not givers:
            return f"request.{name}, which {step}{did_you_mean(name, sorted(fields))}{listed}"
        which = "gives it, a step" if len(givers) == 1 else "give it, steps"
        return (
            f"request.{name}, which the requests of {pipeline} never carry: {' and '.join(givers)} {which} "
            f"{pipeline} does not have (its request is {parser.uses}'s, step {parser.id!r}), so here it is always "
            f"null{listed}"
        )

    found: list[Problem] = []
    for located in inspection.expressions:
        if located.locator.file in unused:
            continue
        source = located.expression.source
        read = (path[1] for path in located.expression.paths if len(path) > 1 and path[0] == "request")
        selected = list(_selected(located.expression.ast, "request"))
        for name in dict.fromkeys(name for name in [*read, *selected] if name not in fields):
            offset = _root_offset(source, "request", name)
            offset = _selected_offset(source, "request", name) if offset is None else offset
            if offset is not None:
                message = f"the condition reads {never(name)}"
                found.append(located.locator.problem(located.path, message, severity="warning", offset=offset))
    for loaded in inspection.rulesets.values():
        for test in loaded.ruleset.tests if loaded.locator.file not in unused else ():
            given = test.given.get("request")
            for key in given if isinstance(given, dict) else ():
                if key not in fields:
                    path = ("tests", test.index, "given", "request", key)
                    message = f"inline test {test.name!r} gives {never(str(key))}"
                    found.append(loaded.locator.problem(path, message, at_key=True, severity="warning"))
    return found


class _Evaluator(NamedTuple):
    """A step that evaluates rule sets: the context keys provided before it, its sets and the request's provider."""

    step: PlannedStep
    available: set[str]
    sets: list[str]
    request: PlannedStep | None


def _evaluators(inspection: Inspection) -> list[_Evaluator]:
    """Each step that evaluates rule sets, with what is provided before it runs (``_Evaluator``)."""
    found: list[_Evaluator] = []
    before: set[str] = set()
    request: PlannedStep | None = None
    for node in inspection.config.pipeline.nodes if inspection.config else ():
        members = node.members if isinstance(node, ParallelGroup) else (node,)
        for step in members:
            named = step.params.get("rulesets", [step.params.get("ruleset")])
            sets = [name for name in named if isinstance(name, str)] if isinstance(named, list) else []
            if sets:
                found.append(_Evaluator(step, set(before), sets, request))
        before.update(step.provides for step in members if step.provides)
        request = next((step for step in reversed(members) if step.provides == "request"), request)
    return found


def _declared(spec: registry.StepSpec) -> frozenset[str]:
    """The request fields a registered step's class says it gives (``request_fields``); none when it does not say."""
    fields = getattr(spec.factory, "request_fields", None)
    return fields if isinstance(fields, frozenset) else frozenset()


def _fields_of(step: PlannedStep | None) -> frozenset[str] | None:
    """The request fields ``step`` says it provides (``request_fields``); None when it does not say."""
    fields = getattr(step.step, "request_fields", None) if step is not None else None
    return fields if isinstance(fields, frozenset) else None


def _request_later(providers: list[PlannedStep], evaluator: _Evaluator, located: LocatedExpression) -> list[Problem]:
    """Request fields a condition of the evaluator's sets reads that only a later step completing the request gives.

    ``providers`` are the pipeline's steps providing ``request``, in order. sendgrid.parse gives the addresses,
    sendgrid.read the rest after the signature: a set evaluated between them reads the rest as null.
    """
    given = _fields_of(evaluator.request)
    if given is None:
        return []
    index = next((i for i, step in enumerate(providers) if step is evaluator.request), len(providers))
    later = providers[index + 1 :]
    found: list[Problem] = []
    read = (str(path[1]) for path in located.expression.paths if len(path) > 1 and path[0] == "request")
    for name in dict.fromkeys(name for name in read if name not in given):
        completer = next((step for step in later if name in (_fields_of(step) or ())), None)
        offset = _root_offset(located.expression.source, "request", name)
        if completer is None or offset is None:
            continue
        message = (
            f"the condition reads request.{name}, which step {completer.id!r} ({completer.uses}) provides only after "
            f"step {evaluator.step.id!r} ({evaluator.step.uses}) evaluates this set: here it is always null; the "
            f"request then holds: {', '.join(sorted(given))}"
        )
        found.append(located.locator.problem(located.path, message, severity="warning", offset=offset))
    return found


def provided_too_late(inspection: Inspection) -> list[Problem]:
    """Names (and request fields) a rule reads that a step provides only after the step evaluating its set."""
    if inspection.config is None:
        return []
    steps = inspection.config.pipeline.steps()
    providers = {step.provides: step for step in steps if step.provides}
    requests = [step for step in steps if step.provides == "request"]
    files = {name: loaded.locator.file for name, loaded in inspection.rulesets.items()}
    found: list[Problem] = []
    for evaluator in _evaluators(inspection):
        in_sets = {files[name] for name in evaluator.sets if name in files}
        for located in inspection.expressions:
            if located.locator.file not in in_sets:
                continue
            for root in dict.fromkeys(path[0] for path in located.expression.paths):
                later = providers.get(root)
                if later is None or root in evaluator.available or later is evaluator.step:
                    continue
                message = (
                    f"the condition reads {root!r}, which step {later.id!r} ({later.uses}) provides only after step "
                    f"{evaluator.step.id!r} ({evaluator.step.uses}) evaluates this set: here it is always null; the "
                    f"document then holds: {', '.join(sorted(evaluator.available))}"
                )
                offset = _root_offset(located.expression.source, root)
                found.append(located.locator.problem(located.path, message, severity="warning", offset=offset))
            found.extend(_request_later(requests, evaluator, located))
    return found


def unfetched(inspection: Inspection) -> list[Problem]:
    """Conversation attributes a step's condition reads that a ``read: rules`` read leaves out (always null)."""
    steps = inspection.config.pipeline.steps() if inspection.config else ()
    reader = next((step for step in steps if isinstance(step.step, ConversationGet)), None)
    attributes = reader.step.attributes if reader is not None and isinstance(reader.step, ConversationGet) else None
    if reader is None or attributes is None:
        return []
    fetched = set(attributes)
    found: list[Problem] = []
    for located in inspection.expressions:
        if located.locator.file != inspection.files[0]:
            continue
        for path in located.expression.paths:
            if path[0] != "conversation" or (len(path) > 1 and path[1] in fetched):
                continue
            name = str(path[1]) if len(path) > 1 else "every other attribute"
            message = (
                f"the condition reads {'.'.join(map(str, path[:2]))}, which step {reader.id!r} (conversations.get, "
                "read: rules) does not fetch: only the attributes the rules read are, so here it is always null; "
                f"add {name} to that step's also_read"
            )
            offset = _root_offset(located.expression.source, "conversation")
            found.append(located.locator.problem(located.path, message, severity="warning", offset=offset))
    return found
