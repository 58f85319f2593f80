"""JSON Schemas for pipeline and rules files, and located, plain-language schema errors.

The pipeline schema is assembled from the step registry: each registered step contributes the
schema of its ``with:`` block. ``editor_schema`` relaxes typed scalars to also accept ``${env:…}``
references, for the copies published to editors (``schemas/*.json``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from engine import registry
from engine.errors import ERROR_CODES, Problem
from engine.yamlsource import Locator

__all__ = ["editor_schema", "pipeline_schema", "rules_schema", "schema_problems"]

_ID_PATTERN = "^[a-z][a-z0-9_]*$"
_ENV_REFERENCE = {"type": "string", "pattern": r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$"}


def error_code_schema() -> dict[str, Any]:
    """An error code of the contract."""
    return {"enum": sorted(ERROR_CODES)}


def pipeline_schema() -> dict[str, Any]:
    """The schema of ``pipelines/*.yaml``, with every registered step's parameters."""
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
                "pattern": _ID_PATTERN,
                "description": "Unique step id; shown in traces and logs.",
            },
            "uses": {"enum": registry.names(), "description": "The registered step to run."},
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
    target = {
        "type": "object",
        "required": ["queue_url"],
        "additionalProperties": False,
        "properties": {
            "queue_url": {"type": "string", "description": "SQS queue URL."},
            "delay_seconds": {"type": "integer", "minimum": 0, "maximum": 900},
            "lock": {"type": "boolean", "description": "Take the trigger lock; only the holder sends."},
            "message": {"enum": ["trigger", "handoff"], "description": "Body shape sent to the queue."},
        },
    }
    family = {
        "type": "object",
        "required": ["format"],
        "additionalProperties": False,
        "properties": {
            "channels": {"type": "array", "items": {"type": "string"}},
            "default": {"type": "boolean"},
            "format": {"enum": ["twiml", "json"]},
            "on_transient": {"enum": ["raise", "respond"]},
            "status": {
                "type": "object",
                "propertyNames": error_code_schema(),
                "additionalProperties": {"type": "integer", "minimum": 100, "maximum": 599},
            },
            "default_status": {"type": "integer", "minimum": 100, "maximum": 599},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pipeline",
        "type": "object",
        "required": ["pipeline", "steps", "responses"],
        "additionalProperties": False,
        "$defs": {"step": step},
        "properties": {
            "pipeline": {"type": "string", "pattern": _ID_PATTERN},
            "description": {"type": "string"},
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
            "tables": {"type": "object", "additionalProperties": {"type": "string"}},
            "targets": {"type": "object", "additionalProperties": target},
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": {"if": {"required": ["parallel"]}, "then": parallel, "else": {"$ref": "#/$defs/step"}},
            },
            "responses": {"type": "object", "additionalProperties": family, "minProperties": 1},
        },
    }


def rules_schema() -> dict[str, Any]:
    """The schema of ``rules/*.yaml``."""
    validation_then = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": error_code_schema(),
            "message": {"type": "string"},
            "reply": {"type": "string", "description": "Text sent back to the user (TwiML <Message>)."},
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

    def rules_with(then: dict[str, Any]) -> dict[str, Any]:
        return {
            "properties": {
                "rules": {"items": {"properties": {"then": then}}},
                "default": then,
            }
        }

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rules",
        "type": "object",
        "required": ["ruleset", "kind", "rules"],
        "additionalProperties": False,
        "properties": {
            "ruleset": {"type": "string", "pattern": _ID_PATTERN},
            "kind": {"enum": ["validation", "routing"]},
            "description": {"type": "string"},
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "when", "then"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "pattern": _ID_PATTERN},
                        "description": {"type": "string"},
                        "when": {"type": "string", "minLength": 1},
                        "then": {"type": "object"},
                    },
                },
            },
            "default": {"type": "object"},
            "tests": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "given", "expect"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "given": {"type": "object"},
                        "expect": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": False,
                            "properties": {
                                "rule": {"type": ["string", "null"]},
                                "error": {"anyOf": [error_code_schema(), {"type": "null"}]},
                                "target": {"type": ["string", "null"]},
                                "reply": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            },
        },
        "allOf": [
            {"if": {"properties": {"kind": {"const": "validation"}}}, "then": rules_with(validation_then)},
            {"if": {"properties": {"kind": {"const": "routing"}}}, "then": rules_with(routing_then)},
        ],
    }


def editor_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in which typed scalars also accept an ``${env:…}`` reference."""
    relaxed = copy.deepcopy(schema)

    def relax(node: Any) -> Any:
        if isinstance(node, list):
            return [relax(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: (value if key in ("if", "const", "enum") else relax(value)) for key, value in node.items()}
        if node.get("type") in ("integer", "number", "boolean"):
            return {"anyOf": [node, _ENV_REFERENCE]}
        return node

    return relax(relaxed)  # type: ignore[no-any-return]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _where(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _explain(error: Any, locator: Locator) -> Problem:
    path = tuple(error.absolute_path)
    where = _where(path)
    validator = error.validator
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [key for key in error.instance if key not in error.schema.get("properties", {})]
        key = extra[0] if extra else "?"
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return locator.problem((*path, key), f"{where}: unknown key {key!r}{hint}", at_key=True)
    if validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return locator.problem(path, f"{where}: missing required key {missing[0]!r}")
    if validator == "enum":
        choices = ", ".join(str(choice) for choice in error.validator_value)
        return locator.problem(path, f"{where}: {error.instance!r} is not a valid choice; choose one of: {choices}")
    if validator == "propertyNames":
        return locator.problem((*path, error.instance), f"{where}: {error.instance!r} is not a known name", at_key=True)
    if validator == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        actual = _json_type(error.instance)
        return locator.problem(path, f"{where}: expected {expected_text}, got {actual} {error.instance!r}")
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return locator.problem(
            path, f"{where}: {error.instance!r} is out of range ({validator} {error.validator_value})"
        )
    if validator == "pattern":
        return locator.problem(
            path, f"{where}: {error.instance!r} must match {error.validator_value} (lower-case letters, digits, _)"
        )
    return locator.problem(path, f"{where}: {error.message}")


def schema_problems(data: Any, schema: dict[str, Any], locator: Locator) -> list[Problem]:
    """Every schema violation of ``data``, located and explained, in file order."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(schema)
    problems: list[Problem] = []
    for error in validator.iter_errors(data):
        chosen = best_match(error.context) if error.context else error
        problems.append(_explain(chosen, locator))
    unique = {(p.line, p.column, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line, p.column))
