"""JSON Schemas for pipeline and rules files, and located, plain-language schema errors.

The pipeline schema is assembled from the step registry: each registered step contributes the
schema of its ``with:`` block, and the registered response formats are the choices of ``format:``.

Violations are explained in plain language at the offending key or value, with the valid choices
and a "did you mean" suggestion where one is close.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine import registry
from engine.errors import CODE_PATTERN, Problem, closest, did_you_mean, shown
from engine.locator import Locator
from engine.responses import formats

__all__ = [
    "SchemaViolation",
    "pipeline_schema",
    "rules_schema",
    "schema_violations",
]

ID_PATTERN = "^[a-z][a-z0-9_]*$"
_CODE = {"type": "string", "pattern": CODE_PATTERN}


def _code(codes: Sequence[str] | None) -> dict[str, Any]:
    """An error code: any well-formed one, or (for editors) one of ``codes``."""
    return {"enum": sorted(codes)} if codes is not None else dict(_CODE)


# The keyword that says, in words, what a ``pattern`` stands for: a value that does not match "is not" that.
EXPECTED = "x-expected"
# A string with no blank anywhere (a trailing newline included, which ``$`` would let through).
NO_BLANKS = r"^(?![\s\S]*\s)"
# Empty is no table: a step that needs one refuses it, one that can do without (steps.support.table_name) is off.
TABLE_NAME_SCHEMA: dict[str, Any] = {"type": "string", "pattern": NO_BLANKS, EXPECTED: "a table name (no blanks)"}


def _target_schema() -> dict[str, Any]:
    """One routing target: the fields the steps that read targets declare, merged (none declared: any mapping)."""
    declared = [spec.targets for spec in registry.specs() if spec.targets is not None]
    if not declared:
        return {"type": "object"}
    return {
        "type": "object",
        "required": sorted({name for schema in declared for name in schema.get("required", ())}),
        "additionalProperties": False,
        "properties": {name: field for schema in declared for name, field in schema.get("properties", {}).items()},
    }


def pipeline_schema(codes: Sequence[str] | None = None) -> dict[str, Any]:
    """The schema of ``pipelines/*.yaml``, with every registered step's parameters.

    ``codes`` (for editors) lists the error codes a response status may name; loading checks codes itself.
    """
    step_rules = [
        {
            "if": {"properties": {"uses": {"const": spec.name}}, "required": ["uses"]},
            "then": {"properties": {"with": spec.params}},
        }
        for spec in registry.specs()
    ]
    step = {
        "type": "object",
        "required": ["id", "uses"],
        "additionalProperties": False,
        "properties": {
            "id": {
                "type": "string",
                "pattern": ID_PATTERN,
                "description": "Unique step id; shown in traces and logs.",
            },
            "uses": {
                "enum": registry.names(),
                "enumDescriptions": [spec.summary for spec in registry.specs()],
                "description": "The registered step to run.",
            },
            "when": {"type": "string", "description": "JMESPath condition; the step is skipped when it is false."},
            "with": {"type": "object", "description": "The step's parameters."},
            "description": {"type": "string"},
        },
        "allOf": step_rules,
    }
    parallel = {
        "type": "object",
        "required": ["parallel"],
        "additionalProperties": False,
        "properties": {"parallel": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/step"}}},
    }
    family = {
        "type": "object",
        "required": ["format"],
        "additionalProperties": False,
        "properties": {
            "channels": {"type": "array", "items": {"type": "string"}},
            "default": {"type": "boolean"},
            "format": {"enum": formats(), "description": "How answers are written (registered formats)."},
            "on_transient": {"enum": ["raise", "respond"]},
            "status": {
                "type": "object",
                "propertyNames": _code(codes),
                "additionalProperties": {"type": "integer", "minimum": 100, "maximum": 599},
            },
            "default_status": {"type": "integer", "minimum": 100, "maximum": 599},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pipeline",
        "type": "object",
        "required": ["pipeline", "channels", "steps", "responses"],
        "additionalProperties": False,
        "$defs": {"step": step},
        "properties": {
            "pipeline": {"type": "string", "pattern": ID_PATTERN},
            "description": {"type": "string"},
            "channels": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "description": "The webhook paths this pipeline serves: a request for …/<channel> runs it.",
            },
            "errors": {
                "type": "object",
                "description": "Business error codes its rules may end an event with (steps declare their own).",
                "propertyNames": _CODE,
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "description": {"type": "string"},
                        "reply": {
                            "type": "string",
                            "description": "The reply sent back when the rule ending an event with this code "
                            "gives none.",
                        },
                    },
                },
            },
            "secrets": {
                "type": "object",
                "description": "Secret-name patterns the steps may read, by logical name (a regular expression each).",
                "additionalProperties": {"type": "string"},
            },
            "deadline_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 14},
            "aws": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "connect_timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                    "read_timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 5},
                },
            },
            "tables": {"type": "object", "additionalProperties": TABLE_NAME_SCHEMA},
            "targets": {"type": "object", "additionalProperties": _target_schema()},
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": {"if": {"required": ["parallel"]}, "then": parallel, "else": {"$ref": "#/$defs/step"}},
            },
            "responses": {"type": "object", "additionalProperties": family, "minProperties": 1},
        },
    }


def rules_schema(codes: Sequence[str] | None = None) -> dict[str, Any]:
    """The schema of ``rules/*.yaml``; ``codes`` (for editors) lists the error codes a rule may decide."""
    validation_then = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                **_code(codes),
                "description": "The error code the event fails with (declared under the pipeline's errors:).",
            },
            "message": {"type": "string", "description": "Explanation for logs and JSON responses."},
            "reply": {"type": "string", "description": "Text sent back to the sender, in its channel's answer."},
        },
    }
    routing_then = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "target": {"type": "string", "description": "A target named under the pipeline's targets."},
            "target_from": {"type": "string", "description": "JMESPath giving the target name."},
        },
    }

    def of_kind(kind: str, then: dict[str, Any]) -> dict[str, Any]:
        """What a rule decides in a set of ``kind``; a file without ``kind:`` is refused for that alone."""
        decides = {"properties": {"rules": {"items": {"properties": {"then": then}}}, "default": then}}
        return {"if": {"required": ["kind"], "properties": {"kind": {"const": kind}}}, "then": decides}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rules",
        "type": "object",
        "required": ["ruleset", "kind", "rules"],
        "additionalProperties": False,
        "properties": {
            "ruleset": {
                "type": "string",
                "pattern": ID_PATTERN,
                "description": "The set's name, as the pipeline's rules steps refer to it.",
            },
            "pipelines": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": ID_PATTERN},
                "description": "The pipelines this rule set belongs to (every pipeline when absent).",
            },
            "kind": {
                "enum": ["validation", "routing"],
                "description": "validation: a match fails the event with its error; routing: a match picks the target.",
            },
            "description": {"type": "string"},
            "rules": {
                "type": "array",
                "description": "Tried in order; the first rule whose condition is true decides.",
                "items": {
                    "type": "object",
                    "required": ["id", "when", "then"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "pattern": ID_PATTERN, "description": "Unique within the set."},
                        "description": {"type": "string"},
                        "when": {
                            "type": "string",
                            "minLength": 1,
                            "description": "JMESPath condition over the context document; matches when truthy.",
                        },
                        "then": {"type": "object", "description": "The decision when the condition matches."},
                    },
                },
            },
            "default": {"type": "object", "description": "The decision when no rule matches."},
            "tests": {
                "type": "array",
                "description": "Inline test cases, run by `pipeline-dryrun --check`.",
                "items": {
                    "type": "object",
                    "required": ["name", "given", "expect"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "given": {"type": "object", "description": "The context document the rules see."},
                        "expect": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": False,
                            "description": "The expected outcome; keys not given are not compared.",
                            "properties": {
                                "rule": {"type": ["string", "null"], "description": "The deciding rule (null: none)."},
                                "error": (
                                    {"enum": [*sorted(codes), None]}
                                    if codes is not None
                                    else {"type": ["string", "null"], "pattern": CODE_PATTERN}
                                ),
                                "target": {"type": ["string", "null"]},
                                "reply": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            },
        },
        "allOf": [of_kind("validation", validation_then), of_kind("routing", routing_then)],
    }


@dataclass(frozen=True)
class SchemaViolation:
    """One explained violation: where it is in the data, the value there, and the located problem.

    ``key`` is the key concerned: the missing one of a ``required`` violation, or the close match
    suggested for an unknown key (a misspelt key is then reported once, not also as missing).
    """

    path: tuple[Any, ...]
    value: Any
    problem: Problem
    validator: str = ""
    key: str | None = None


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else "object"


def _contents(instance: Any) -> str:
    """What a wrongly typed value holds, briefly: a scalar as written, a list or mapping by its size and keys."""
    if instance is None:
        return ""
    if isinstance(instance, list):
        return f" of {len(instance)} item(s)"
    if isinstance(instance, dict):
        return f" with key(s) {shown(', '.join(str(key) for key in instance))}" if instance else " (empty)"
    return f" {shown(instance)}"


def _where(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _choices(value: Any, allowed: list[Any]) -> tuple[str, str]:
    """What kind of name ``allowed`` holds, and a sentence listing them with a suggestion."""
    names = [choice for choice in allowed if choice is not None]
    listed = ", ".join(str(name) for name in names)
    hint = did_you_mean(value, names)
    if set(names) == set(registry.names()):
        return "step", f"{hint}; registered steps: {listed}"
    return "choice", f"{hint}; choose one of: {listed}"


_TYPE_HINTS = {
    "integer": "; write a whole number such as 10",
    "number": "; write a number such as 0.5",
    "boolean": "; write true or false",
    "string": "; write text (quote it if it looks like a number, true/false, yes/no, on/off or null)",
    "array": "; write a list such as [a, b]",
    "object": "; write a mapping of key: value lines",
}

_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "greater than",
    "exclusiveMaximum": "less than",
}


def _explain(error: Any, locator: Locator) -> list[SchemaViolation]:
    path = tuple(error.absolute_path)
    where = _where(path)
    validator = error.validator
    instance = error.instance
    keys = sorted(error.schema.get("properties", {}))

    def located(message: str, at: tuple[Any, ...] = path, *, at_key: bool = False) -> list[SchemaViolation]:
        problem = locator.problem(at, f"{where}: {message}", at_key=at_key)
        return [SchemaViolation(at, instance, problem, validator)]

    if validator == "additionalProperties":
        found: list[SchemaViolation] = []
        for key in (key for key in instance if key not in keys):
            close = closest(key, keys)
            hint = f" (did you mean {close!r}?)" if close else ""
            allowed = f"; allowed keys: {', '.join(keys)}" if keys else "; this mapping takes no keys"
            problem = locator.problem((*path, key), f"{where}: unknown key {key!r}{hint}{allowed}", at_key=True)
            found.append(SchemaViolation((*path, key), None, problem, validator, close))
        return found
    if validator == "required":
        return [
            SchemaViolation(
                path, None, locator.problem(path, f"{where}: missing required key {name!r}; add it"), validator, name
            )
            for name in error.validator_value
            if name not in instance
        ]
    if validator == "enum":
        kind, choices = _choices(instance, error.validator_value)
        if "propertyNames" in error.schema_path:
            return located(f"{shown(instance)} is not a known {kind}{choices}", (*path, instance), at_key=True)
        unknown = (
            f"{shown(instance)} is not a valid {kind}" if kind == "choice" else f"unknown {kind} {shown(instance)}"
        )
        return located(f"{unknown}{choices}")
    if validator == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        first = expected[0] if isinstance(expected, list) else expected
        got = _json_type(instance) + _contents(instance)
        return located(f"expected {expected_text}, got {got}{_TYPE_HINTS.get(first, '')}")
    if validator in _BOUNDS:
        return located(f"{shown(instance)} is out of range: it must be {_BOUNDS[validator]} {error.validator_value}")
    if validator == "pattern":
        if error.schema.get(EXPECTED):
            return located(f"{shown(instance)} is not {error.schema[EXPECTED]}")
        is_id = error.validator_value == ID_PATTERN
        rule = " (lower-case letters, digits and _, starting with a letter)" if is_id else ""
        return located(f"{shown(instance)} must match {error.validator_value}{rule}")
    if validator == "minLength":
        return located("must not be empty")
    if validator in ("minItems", "minProperties"):
        unit = "item" if validator == "minItems" else "key"
        among = f" ({', '.join(keys)})" if keys else ""
        return located(f"needs at least {error.validator_value} {unit}(s){among}")
    if validator == "maxProperties":
        return located(f"give at most {error.validator_value} of: {', '.join(keys)}")
    return located(str(error.message))


def schema_violations(data: Any, schema: dict[str, Any], locator: Locator) -> list[SchemaViolation]:
    """Every schema violation of ``data``, located and explained, in file order."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(schema)
    found: list[SchemaViolation] = []
    for error in validator.iter_errors(data):
        chosen = best_match(error.context) if error.context else error
        found.extend(_explain(chosen, locator))
    misspelt = {(v.path[:-1], v.key) for v in found if v.validator == "additionalProperties" and v.key}
    found = [v for v in found if not (v.validator == "required" and (v.path, v.key) in misspelt)]
    unique = {(v.problem.line, v.problem.column, v.problem.message): v for v in found}
    return sorted(unique.values(), key=lambda v: (v.problem.line, v.problem.column))
