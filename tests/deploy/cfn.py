"""template.yaml as the deployment tests read it, and CloudWatch's verdict on its alarms.

``load_template`` reads CloudFormation's short-form intrinsics; ``placeholder`` and ``resolve`` evaluate a value
(a parameter's default unless one is given). A ``Datapoint`` is what CloudWatch would hold: the function's EMF
documents at their own timestamps (``emf_datapoints``) and what Lambda, API Gateway and SQS record themselves
(``lambda_invocation``, ``api_answer``, ``queue_age``). ``alarm_periods`` evaluates an alarm of the template as
CloudWatch does: each watched series aggregated per period by its statistic, the expression, the comparison.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = "the-stack"
Dimensions = tuple[tuple[str, str], ...]


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !Sub, !GetAtt, …) into their long form."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_CfnLoader)


# What ``Ref`` of a queue gives (its URL), in front of the queue's ``ref:<logical id>``.
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/"


def ref_of(value: str) -> str | None:
    """The logical id a ``placeholder`` stands for (``ref:<id>``, or a queue URL ending in it); None otherwise."""
    last = value.removeprefix(QUEUE_URL)
    return last.removeprefix("ref:") if last.startswith("ref:") else None


def placeholder(template: dict[str, Any], value: Any, parameters: dict[str, str] | None = None) -> str:
    """An environment value as the function would see it: a parameter's value (its default unless given in
    ``parameters``), ``Fn::Join``/``Select``/``Split`` evaluated, else ``ref:<logical id>`` (a queue's URL
    ending in it, for a queue: ``Ref`` of a queue is its URL)."""
    if isinstance(value, dict) and "Ref" in value:
        if parameters and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        parameter = template["Parameters"].get(value["Ref"], {})
        if "Default" in parameter:
            return str(parameter["Default"])
        queue = template["Resources"].get(value["Ref"], {}).get("Type") == "AWS::SQS::Queue"
        return f"{QUEUE_URL if queue else ''}ref:{value['Ref']}"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(placeholder(template, part, parameters) for part in parts)
    if isinstance(value, dict) and "Fn::Select" in value:
        index, listed = value["Fn::Select"]
        separator, split = listed["Fn::Split"]
        return placeholder(template, split, parameters).split(separator)[int(index)]
    return str(value)


def resolve(template: dict[str, Any], value: Any, parameters: dict[str, str] | None = None) -> str:
    """A value of the template as a string: the stack's name is STACK, ``Fn::GetAtt`` is ``<id>.<attribute>``,
    ``Fn::Sub`` of a string is substituted, anything else as ``placeholder`` evaluates it."""
    if value == {"Ref": "AWS::StackName"}:
        return STACK
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return ".".join(value["Fn::GetAtt"])
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: resolve(template, {"Ref": m[1]}, parameters), value["Fn::Sub"])
    return placeholder(template, value, parameters)


def watched_series(metric: dict[str, Any]) -> tuple[str, Dimensions]:
    """An alarm's metric as (name, dimensions), the stack's name standing for itself as STACK."""
    values = {d["Name"]: STACK if d["Value"] == {"Ref": "AWS::StackName"} else d["Value"] for d in metric["Dimensions"]}
    return metric["MetricName"], tuple(sorted(values.items()))


def summed_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``MetricStat`` of every query a metric-math alarm sums; the alarm must sum all of them, and only them."""
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    (total,) = [query for query in queries.values() if query.get("ReturnData")]
    summed = re.fullmatch(r"SUM\(\[(.*)\]\)", total["Expression"])
    assert summed is not None, f"{total['Expression']!r} is not a SUM of the alarm's metrics"
    ids = [name.strip() for name in summed.group(1).split(",")]
    assert sorted(ids) == sorted(name for name in queries if name != total["Id"])
    return [queries[name]["MetricStat"] for name in ids]


@dataclass(frozen=True)
class Datapoint:
    """One value CloudWatch holds for a series, at ``at`` (seconds since the epoch)."""

    namespace: str
    metric: str
    dimensions: Dimensions
    value: float
    at: float


@dataclass(frozen=True)
class Series:
    """A series an alarm watches, with the statistic and period it is aggregated by."""

    namespace: str
    metric: str
    dimensions: Dimensions
    stat: str
    period: int


def emf_datapoints(stdout: str) -> list[Datapoint]:
    """Every datapoint CloudWatch Logs extracts from the EMF documents among ``stdout``'s lines."""
    found = []
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        at = doc["_aws"]["Timestamp"] / 1000
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for names in directive["Dimensions"]:
                dimensions = tuple(sorted((name, str(doc[name])) for name in names))
                for metric in directive["Metrics"]:
                    value = float(doc[metric["Name"]])
                    found.append(Datapoint(directive["Namespace"], metric["Name"], dimensions, value, at))
    return found


def lambda_invocation(template: dict[str, Any], at: float, *, failed: bool, ms: float) -> list[Datapoint]:
    """What Lambda records for an invocation of the function ending at ``at``: ``Errors`` (1 when it raised or timed
    out) and ``Duration``."""
    function = (("FunctionName", resolve(template, {"Ref": "PipelineFunction"})),)
    return [
        Datapoint("AWS/Lambda", "Errors", function, 1.0 if failed else 0.0, at),
        Datapoint("AWS/Lambda", "Duration", function, ms, at),
    ]


def api_answer(template: dict[str, Any], at: float, status: int, path: str | None = None) -> list[Datapoint]:
    """What API Gateway records for an answer of the webhook API with HTTP ``status`` to a request for ``path``: its
    ``4XXError`` and ``5XXError``, and what the template's metric filters count from the answer's access log line."""
    api = template["Resources"]["WebhookApi"]["Properties"]
    stage = (("ApiName", resolve(template, api["Name"])), ("Stage", resolve(template, api["StageName"])))
    line = {"status": str(status), "apiId": resolve(template, {"Ref": "WebhookApi"})}
    if path is not None:
        line["resourcePath"] = path
    return [
        Datapoint("AWS/ApiGateway", "4XXError", stage, float(400 <= status < 500), at),
        Datapoint("AWS/ApiGateway", "5XXError", stage, float(status >= 500), at),
        *access_log_counts(template, line, at),
    ]


def gateway_response(template: dict[str, Any], at: float, response_type: str) -> list[Datapoint]:
    """What CloudWatch records for a gateway response (``THROTTLED``…) of the webhook API, whatever its status.

    API Gateway counts every gateway response, its status modified or not, as ``4XXError``; the access log's line
    carries ``responseType`` and ``apiId``, which the template's metric filters on the access log group count.
    """
    api = template["Resources"]["WebhookApi"]["Properties"]
    stage = (("ApiName", resolve(template, api["Name"])), ("Stage", resolve(template, api["StageName"])))
    line = {"responseType": response_type, "apiId": resolve(template, {"Ref": "WebhookApi"})}
    return [
        Datapoint("AWS/ApiGateway", "4XXError", stage, 1.0, at),
        Datapoint("AWS/ApiGateway", "5XXError", stage, 0.0, at),
        *access_log_counts(template, line, at),
    ]


_CLAUSE = r'\$\.(\w+) = "([^"]*)"'


def access_log_counts(template: dict[str, Any], line: dict[str, str], at: float) -> list[Datapoint]:
    """What the template's metric filters on the API's access log group count from one access log ``line``.

    Only patterns of the form ``{ $.field = "value" && … }`` are modelled.
    """
    points = []
    for body in template["Resources"].values():
        if body["Type"] != "AWS::Logs::MetricFilter":
            continue
        properties = body["Properties"]
        if properties["LogGroupName"] != {"Ref": "ApiAccessLogGroup"}:
            continue
        pattern = re.fullmatch(rf"\{{ ({_CLAUSE}(?: && {_CLAUSE})*) \}}", properties["FilterPattern"])
        assert pattern is not None, f'{properties["FilterPattern"]!r}: only {{ $.field = "value" && … }} is modelled'
        if any(line.get(field) != value for field, value in re.findall(_CLAUSE, pattern[1])):
            continue
        for metric in properties["MetricTransformations"]:
            dimensions = tuple(
                sorted((d["Key"], line[d["Value"].removeprefix("$.")]) for d in metric.get("Dimensions", ()))
            )
            namespace = resolve(template, metric["MetricNamespace"])
            points.append(Datapoint(namespace, metric["MetricName"], dimensions, float(metric["MetricValue"]), at))
    return points


def queue_age(queue: str, at: float, age: float) -> Datapoint:
    """What SQS records, while queue ``queue`` (a logical id) holds a message, for its oldest one."""
    return Datapoint("AWS/SQS", "ApproximateAgeOfOldestMessage", (("QueueName", f"{queue}.QueueName"),), age, at)


def alarm_series(template: dict[str, Any], name: str, parameters: dict[str, str] | None = None) -> list[Series]:
    """Every series alarm ``name`` watches (those it sums, for a metric-math alarm)."""
    alarm = template["Resources"][name]["Properties"]

    def series(metric: dict[str, Any], stat: str, period: int) -> Series:
        dimensions = tuple(sorted((d["Name"], resolve(template, d["Value"], parameters)) for d in metric["Dimensions"]))
        namespace = resolve(template, metric["Namespace"], parameters)
        return Series(namespace, metric["MetricName"], dimensions, stat, period)

    if "Metrics" in alarm:
        return [series(stat["Metric"], stat["Stat"], stat["Period"]) for stat in summed_stats(alarm)]
    return [series(alarm, alarm["Statistic"], alarm["Period"])]


_STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": fmean,
    "SampleCount": len,
}
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def alarm_periods(
    template: dict[str, Any], name: str, datapoints: Iterable[Datapoint], parameters: dict[str, str] | None = None
) -> list[int]:
    """The start (seconds since the epoch) of every period in which alarm ``name`` is in ALARM; a period without
    data leaves it as it was (every alarm here treats missing data as not breaching)."""
    alarm = template["Resources"][name]["Properties"]
    assert alarm["EvaluationPeriods"] == alarm.get("DatapointsToAlarm", 1) == 1, "only one-period alarms are modelled"
    points = list(datapoints)
    totals: dict[int, float] = {}
    for series in alarm_series(template, name, parameters):
        periods: dict[int, list[float]] = {}
        series_key = (series.namespace, series.metric, series.dimensions)
        for point in points:
            if (point.namespace, point.metric, point.dimensions) == series_key:
                periods.setdefault(int(point.at // series.period) * series.period, []).append(point.value)
        for start, values in periods.items():
            totals[start] = totals.get(start, 0.0) + _STATISTICS[series.stat](values)
    threshold = float(resolve(template, alarm["Threshold"], parameters))
    compare = _COMPARISONS[alarm["ComparisonOperator"]]
    return sorted(start for start, value in totals.items() if compare(value, threshold))


def firing(
    template: dict[str, Any], datapoints: Iterable[Datapoint], parameters: dict[str, str] | None = None
) -> set[str]:
    """Every alarm of the template (its conditions aside) that some period of ``datapoints`` puts in ALARM."""
    points = list(datapoints)
    alarms = [name for name, body in template["Resources"].items() if body["Type"] == "AWS::CloudWatch::Alarm"]
    return {name for name in alarms if alarm_periods(template, name, points, parameters)}


def _rule_value(template: dict[str, Any], expression: Any, parameters: dict[str, str]) -> Any:
    """A ``Rules`` expression as CloudFormation evaluates it before creating anything (the functions rules may use)."""
    if not isinstance(expression, dict):
        return str(expression)
    ((function, argument),) = expression.items()
    if function == "Ref":
        return placeholder(template, expression, parameters)
    if function == "Fn::Equals":
        left, right = (_rule_value(template, part, parameters) for part in argument)
        return left == right
    if function == "Fn::Not":
        return not _rule_value(template, argument[0], parameters)
    if function == "Fn::And":
        return all(_rule_value(template, part, parameters) for part in argument)
    if function == "Fn::Or":
        return any(_rule_value(template, part, parameters) for part in argument)
    if function == "Fn::Contains":
        listed, value = argument
        return _rule_value(template, value, parameters) in [_rule_value(template, item, parameters) for item in listed]
    raise NotImplementedError(f"rule function {function}")


def rule_refusals(template: dict[str, Any], parameters: dict[str, str] | None = None) -> list[str]:
    """The ``AssertDescription`` of every template rule assertion that ``parameters`` (defaults otherwise) break:
    CloudFormation refuses to create or update the stack with them."""
    given = parameters or {}
    refused = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(template, rule["RuleCondition"], given):
            continue
        refused += [
            assertion["AssertDescription"]
            for assertion in rule["Assertions"]
            if not _rule_value(template, assertion["Assert"], given)
        ]
    return refused
