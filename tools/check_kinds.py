"""The types production gives the values rules read, against the types inline tests give them (``--check``).

A parse step says the type of each request field it gives (``request_field_kinds``), and ``conversations.get``'s
``types:`` the DynamoDB type of conversation attributes. A case giving another type (``num_media: "0"``, where the
request holds a number) passes where production never would, and tells the condition checks the wrong type.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from engine.config import Inspection
from engine.errors import Problem, did_you_mean
from engine.expressions import expression_tokens
from runtime.verify import written_value
from steps.conversations import ConversationGet
from tools.lint import KIND_NAMES, value_kind

__all__ = ["PHONE_LIKE", "Declared", "declared_kinds", "foreign_channels", "given_kinds"]

# A phone number written unquoted (``+14155550123``), which check._phone_numbers tells to quote.
PHONE_LIKE = re.compile(r"[+0][0-9]{5,}")

_DYNAMO_KINDS = {"S": "string", "N": "number", "BOOL": "boolean"}


class Declared(NamedTuple):
    """The type a value holds in production, and who says so (``twilio.parse (step 'parse') gives it as``)."""

    kind: str
    source: str


def declared_kinds(inspection: Inspection) -> dict[str, Declared]:
    """Dotted paths (``request.num_media``) and the type the pipeline's steps give them, the last provider's first."""
    found: dict[str, Declared] = {}
    for step in inspection.config.pipeline.steps() if inspection.config is not None else ():
        kinds = getattr(step.step, "request_field_kinds", None)
        fields = getattr(step.step, "request_fields", None)
        if step.provides == "request" and isinstance(kinds, Mapping):
            for name, kind in kinds.items():
                if fields is None or name in fields:
                    found[f"request.{name}"] = Declared(
                        kind, f"{step.uses} (step {step.id!r}) gives it as {KIND_NAMES[kind]}"
                    )
        if isinstance(step.step, ConversationGet):
            for name, types in step.step.types.items():
                scalar = {_DYNAMO_KINDS.get(dynamo) for dynamo in types if dynamo != "NULL"}
                kind = scalar.pop() if len(scalar) == 1 else None
                if kind is not None:
                    declared = f"declares it {KIND_NAMES[kind]} (types: {', '.join(sorted(types))})"
                    found[f"conversation.{name}"] = Declared(kind, f"{step.uses} (step {step.id!r}) {declared}")
    return found


def given_kinds(inspection: Inspection) -> list[Problem]:
    """Values inline tests give in a type the pipeline never gives them (a case production cannot send)."""
    declared = declared_kinds(inspection)
    found: list[Problem] = []
    for name, loaded in inspection.rulesets.items():
        for test in loaded.ruleset.tests if name in inspection.used else ():
            for root in ("request", "conversation"):
                given = test.given.get(root)
                for key, value in given.items() if isinstance(given, dict) else ():
                    expected, kind = declared.get(f"{root}.{key}"), value_kind(value)
                    where = ("tests", test.index, "given", root, key)
                    if expected is None or kind is None or kind == expected.kind:
                        continue
                    if type(value) is int and PHONE_LIKE.fullmatch(written_value(loaded.locator, where)):
                        continue  # said better by the unquoted phone number's warning
                    message = (
                        f"inline test {test.name!r} gives {root}.{key} as {KIND_NAMES[kind]} ({value!r}), but "
                        f"{expected.source}: no {root} holds {KIND_NAMES[kind]} there, so the case passes where "
                        f"production never would; write the value as {KIND_NAMES[expected.kind]}"
                    )
                    found.append(loaded.locator.problem(where, message, severity="warning"))
    return found


def _channel_texts(node: Mapping[str, Any]) -> Iterator[str]:
    """The texts a condition compares ``request.channel`` with by == or !=."""
    children = node.get("children", [])
    if node.get("type") == "comparator" and node.get("value") in ("eq", "ne") and len(children) == 2:
        paths = [_dotted(child) for child in children]
        literals = [child.get("value") for child in children if child.get("type") == "literal"]
        if "request.channel" in paths and len(literals) == 1 and isinstance(literals[0], str):
            yield literals[0]
    for child in children:
        if isinstance(child, Mapping):
            yield from _channel_texts(child)


def _dotted(node: Mapping[str, Any]) -> str | None:
    if node.get("type") == "field":
        return str(node.get("value"))
    if node.get("type") == "subexpression":
        parts = [_dotted(child) for child in node.get("children", [])]
        return ".".join(part for part in parts if part) if all(parts) else None
    return None


def foreign_channels(
    inspection: Inspection, files: Collection[str], shared: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = {}
) -> list[Problem]:
    """Comparisons of ``request.channel`` with a text that is none of the pipeline's channels (never equal).

    ``files``: the pipeline file and the rules files of sets that pipeline alone decides with. ``shared``: the
    rules files of sets several pipelines decide with, each with those pipelines' files and channels: there a text
    none of them serves is never equal (one another pipeline of the set serves may be).
    """
    config = inspection.config
    if config is None or not config.channels:
        return []
    found: list[Problem] = []
    for located in inspection.expressions:
        owners = shared.get(located.locator.file)
        if located.locator.file not in files and not owners:
            continue
        if owners:
            channels = list(dict.fromkeys(channel for _, served in owners for channel in served))
            each = " and ".join(f"{', '.join(served)} ({file})" for file, served in owners)
            where = f"the pipelines of this set, whose channels are {each}, the last segment of the path as written "
            where += "there,"
        else:
            channels = list(config.channels)
            where = f"{inspection.files[0]}, whose channels are {', '.join(channels)} (the last segment of the path, "
            where += "as written there),"
        tokens = expression_tokens(located.expression.source)
        for text in dict.fromkeys(_channel_texts(located.expression.ast)):
            if text in channels:
                continue
            start = next((t["start"] for t in tokens if t["type"] == "literal" and t["value"] == text), None)
            hint = did_you_mean(text, channels).strip(" ()") or "compare it with one of them"
            message = f"request.channel is never {text!r} in {where} so this comparison is never true; {hint}"
            offset = None if start is None else int(start) + 1
            found.append(located.locator.problem(located.path, message, severity="warning", offset=offset))
    return found
