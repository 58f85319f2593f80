"""An ``aws SERVICE OPERATION --option value …`` command of the docs, run as the AWS CLI runs it, through boto3.

The AWS CLI names each operation and parameter after the service model (``delete-item`` is ``DeleteItem``,
``--table-name`` is ``TableName``), reads a structure, map or list given as JSON, a list of strings as the words
that follow its option, a number as a number, and applies ``--query`` (JMESPath) to the answer. The same is done
here from the same models, so a command a page shows runs against moto as a reader would type it (the CLI itself is
no dependency of the project).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jmespath
from botocore import xform_name

__all__ = ["aws_command", "aws_words"]

_GLOBAL = {"--region", "--endpoint-url", "--profile", "--output"}


def aws_words(command: str) -> list[str]:
    """The words of a shell command line (continuation lines joined)."""
    return shlex.split(command.replace("\\\n", " "))


def aws_command(words: list[str], client: Callable[[str], Any], cwd: Path | None = None) -> Any:
    """Run ``aws SERVICE OPERATION …`` (``words``, from ``aws``) with ``client(service)``, a boto3 client; the
    answer, ``--query`` applied. A ``file://`` or ``fileb://`` value is read from ``cwd``."""
    assert words[:1] == ["aws"] and len(words) >= 3, f"not an aws command: {words}"
    service, command = words[1], words[2]
    boto = client(service)
    model = boto.meta.service_model
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    assert command in operations, f"aws {service} has no command {command}"
    operation = model.operation_model(operations[command])
    members = operation.input_shape.members if operation.input_shape is not None else {}
    options = {"--" + xform_name(name, "-"): name for name in members}
    params: dict[str, Any] = {}
    query: str | None = None
    rest = words[3:]
    while rest:
        option, rest = rest[0], rest[1:]
        assert option.startswith("--"), f"aws {service} {command}: {option!r} is no option"
        if option == "--query":
            query, rest = rest[0], rest[1:]
            continue
        if option in _GLOBAL:
            rest = rest[1:]
            continue
        assert option in options, f"aws {service} {command} has no option {option}"
        name = options[option]
        shape = members[name]
        if shape.type_name == "boolean":
            params[name] = True
            continue
        values = []
        while rest and not rest[0].startswith("--"):
            values.append(_read(rest[0], cwd))
            rest = rest[1:]
        params[name] = _value(shape, values)
    answer = getattr(boto, xform_name(operation.name))(**params)
    return jmespath.search(query, answer) if query else answer


def _read(value: str, cwd: Path | None) -> str:
    for scheme in ("fileb://", "file://"):
        if value.startswith(scheme):
            return (Path(cwd or ".") / value.removeprefix(scheme)).read_text(encoding="utf-8")
    return value


def _value(shape: Any, values: list[str]) -> Any:
    if shape.type_name in ("structure", "map"):
        (text,) = values
        return json.loads(text)
    if shape.type_name == "list":
        if len(values) == 1 and values[0].lstrip().startswith("["):
            return json.loads(values[0])
        return values
    (text,) = values
    if shape.type_name in ("integer", "long"):
        return int(text)
    return text
