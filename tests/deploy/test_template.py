"""The SAM template against the configured pipeline, and the Lambda artifact's contents.

The execution role's step policy must grant exactly the IAM actions the pipeline's steps declare
(``engine.registry``), each on the resources those steps touch; the alarms must watch the metrics the
function really emits.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from engine import registry
from engine.config import AppConfig, load_config
from engine.errors import ConfigError
from runtime.aws import longest_invocation_seconds
from steps.support import table_keys
from tests.deploy.cfn import (
    STACK,
    alarm_series,
    load_template,
    placeholder,
    ref_of,
    rule_refusals,
    summed_stats,
    watched_series,
)
from tests.support.expect import emf_document_of
from tests.support.plugins import STATUS_PLUGIN, plugin_loaded
from tests.support.shipped import pipeline_paths
from tools.iam import Grant, pipeline_grants

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipelines" / "twilio_inbound.yaml"
STATUS_PIPELINE = ROOT / "tests" / "fixtures" / "status_webhook" / "pipelines" / "status_inbound.yaml"
RUNTIME_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
CONTRACT_QUEUE_ENV = {"WHATSAPP_QUEUE_URL", "SMS_QUEUE_URL", "HANDOFF_QUEUE_URL"}
CONTRACT_ENV = {"CONVERSATIONS_TABLE_NAME", "STAGE_TABLE_NAME", "LOCK_TABLE_NAME", *CONTRACT_QUEUE_ENV}
# Contract §3: the routes the outside world relies on (every pipeline channel has its route besides).
CONTRACT_ROUTES = {("post", "/whatsapp"), ("post", "/sms")}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def _arn_of(name: str) -> dict[str, Any]:
    """The template expression of a created resource's ARN, from a ``ref:Logical`` placeholder."""
    logical = ref_of(name)
    assert logical, f"{name!r} is not a resource of this template"
    return {"Fn::GetAtt": [logical, "Arn"]}


def _table_arn(table: str, suffix: str = "") -> dict[str, Any] | Any:
    logical = table.removeprefix("ref:")
    if logical == "ConversationsTableName":
        prefix = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ConversationsTableName}"
        return {"Fn::Sub": prefix + suffix}
    assert not suffix
    return _arn_of(table)


def _template_resource(grant: Grant) -> Any:
    """The template expression for a resolved grant's resource."""
    if grant.kind == "table":
        return _table_arn(grant.name)
    if grant.kind == "index":
        table, index = grant.name.split("/index/")
        return _table_arn(table, f"/index/{index}")
    if grant.kind == "queue":
        return _arn_of(grant.name)
    assert grant.kind == "secret", grant
    assert grant.name in SECRET_PARAMETERS, f"no template parameter grants the secret-name pattern {grant.name!r}"
    prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    return {"Fn::Sub": prefix + "${" + SECRET_PARAMETERS[grant.name] + "}"}


def _parameters_in(value: Any) -> set[str]:
    """The names every ``Ref`` inside ``value`` refers to."""
    if isinstance(value, dict):
        return {value["Ref"]} if "Ref" in value else {ref for item in value.values() for ref in _parameters_in(item)}
    if isinstance(value, list):
        return {ref for item in value for ref in _parameters_in(item)}
    return set()


def secret_parameters(template: dict[str, Any]) -> dict[str, str]:
    """The template parameter (an IAM wildcard, ``…SecretNamePattern``) behind each secret-name pattern (a regex)
    the function's environment gives the pipelines, read from the template."""
    variables = template["Resources"]["PipelineFunction"]["Properties"]["Environment"]["Variables"]
    found = {}
    for value in variables.values():
        parameters = {ref for ref in _parameters_in(value) if ref.endswith("SecretNamePattern")}
        if len(parameters) == 1:
            found[placeholder(template, value)] = parameters.pop()
    return found


SECRET_PARAMETERS = secret_parameters(load_template())


def expected_grants(configs: list[AppConfig]) -> set[tuple[str, str]]:
    """(action, resource) pairs: every step's declared actions, on the resources it declares (``tools.iam``)."""
    return {(grant.action, repr(_template_resource(grant))) for config in configs for grant in pipeline_grants(config)}


def role_policies(template: dict[str, Any]) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """The role's inline policies by name: (the condition that includes it or None, the policy)."""
    (role,) = resources(template, "AWS::IAM::Role").values()
    found: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for entry in role["Properties"]["Policies"]:
        condition = None
        if "Fn::If" in entry:
            condition, entry, otherwise = entry["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
        found[entry["PolicyName"]] = (condition, entry)
    return found


def test_secret_grants_are_per_channel_and_match_the_pipelines_patterns(template, configs) -> None:
    patterns = {pattern.pattern for config in configs for pattern in config.secrets.values() if pattern}
    assert patterns == set(SECRET_PARAMETERS)
    for regex, parameter in SECRET_PARAMETERS.items():
        wildcard = template["Parameters"][parameter]["Default"]
        # IAM's * spans /, so it may only stand where the regex's .+ does: at the end, after a fixed prefix.
        assert wildcard == regex.removesuffix(".+") + "*" and wildcard.count("*") == 1


@pytest.mark.parametrize("parameter", sorted(SECRET_PARAMETERS.values()))
def test_a_secret_name_parameter_reaches_the_pipeline_as_well_as_iam(template, function_env, parameter) -> None:
    custom = {parameter: "tenants/prod.eu/credentials/*"}
    env = {name: placeholder(template, value, custom) for name, value in function_env.items()}
    configs = [load_config(path, ROOT / "rules", env) for path in sorted((ROOT / "pipelines").glob("*.yaml"))]
    patterns = {pattern.pattern for config in configs for pattern in config.secrets.values() if pattern}
    assert "tenants/prod.eu/credentials/.+" in patterns
    matching = next(
        pattern
        for config in configs
        for pattern in config.secrets.values()
        if pattern and pattern.pattern.startswith("tenants/")
    )
    assert matching.fullmatch("tenants/prod.eu/credentials/acme/sales")


def _cold_start_refusal(template: dict[str, Any], function_env: dict[str, Any], parameters: dict[str, str]) -> str:
    """What the cold start says when every pipeline is loaded with the environment ``parameters`` give; '' when it
    starts."""
    env = {name: placeholder(template, value, parameters) for name, value in function_env.items()}
    try:
        for path in sorted((ROOT / "pipelines").glob("*.yaml")):
            load_config(path, ROOT / "rules", env)
    except ConfigError as exc:
        return str(exc)
    return ""


def _template_takes(template: dict[str, Any], parameter: str, value: str) -> bool:
    """Whether CloudFormation accepts ``value`` for the string ``parameter`` (its AllowedPattern, matched whole)."""
    pattern = template["Parameters"][parameter].get("AllowedPattern")
    return pattern is None or re.fullmatch(pattern, value) is not None


# Free-text parameters the pipelines check at load: a value CloudFormation takes that the cold start refuses is a
# stack that deploys and a function that fails every init (each webhook a 5xx until the stack is updated).
FREE_TEXT_VALUES = {
    "PublicBaseUrl": {
        "": True,
        "https://hooks.example.com/prod": True,
        "https://hooks.example.com": True,
        "https://hooks.example.com/prod/": True,
        "http://localhost:3000/prod": True,
        "hooks.example.com/prod": False,
        "https://hooks.example.com/prod?channel=1": False,
        "https://hooks.example.com/prod#rc=2&rp=ct,rt,5xx&rt=6000": False,
        "ftp://hooks.example.com/prod": False,
        "https:///prod": False,
    },
    "AllowedHosts": {
        "": True,
        "abc123.execute-api.eu-west-1.amazonaws.com": True,
        "hooks.example.com,abc123.execute-api.eu-west-1.amazonaws.com": True,
        "hooks.example.com, hooks.example.com:8443": True,
        "Hooks.Example.com.": True,
        "https://hooks.example.com": False,
        "hooks.example.com/prod": False,
        "hooks_1.example.com": False,
        "hooks.example.com;other.example.com": False,
        "-hooks.example.com": False,
    },
}


@pytest.mark.parametrize(
    ("parameter", "value", "starts"),
    [(parameter, value, starts) for parameter, values in FREE_TEXT_VALUES.items() for value, starts in values.items()],
)
def test_the_template_takes_a_free_text_value_exactly_when_the_function_starts_with_it(
    template, function_env, parameter: str, value: str, starts: bool
) -> None:
    refusal = _cold_start_refusal(template, function_env, {parameter: value})
    assert (refusal == "") is starts, refusal
    assert _template_takes(template, parameter, value) is starts


def _function_parameters(template: dict[str, Any]) -> list[str]:
    """The parameters the function's environment is made from."""
    variables = template["Resources"]["PipelineFunction"]["Properties"]["Environment"]["Variables"]
    return sorted({ref for value in variables.values() for ref in _parameters_in(value)} & set(template["Parameters"]))


@pytest.mark.parametrize("parameter", _function_parameters(load_template()))
def test_every_value_at_a_parameter_s_bounds_starts_the_function(template, function_env, parameter: str) -> None:
    spec = template["Parameters"][parameter]
    values = [spec.get(bound) for bound in ("Default", "MinValue", "MaxValue")] + list(spec.get("AllowedValues", []))
    for value in [str(value) for value in values if value is not None]:
        assert _cold_start_refusal(template, function_env, {parameter: value}) == "", (parameter, value)


def policy_statements(template: dict[str, Any], policy: str) -> list[dict[str, Any]]:
    return role_policies(template)[policy][1]["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_step_policy_grants_exactly_the_actions_the_steps_declare(template, configs) -> None:
    declared = {
        action
        for config in configs
        for step in config.pipeline.steps()
        for grant in registry.get(step.uses).iam
        for action in grant.actions
    }
    statements = policy_statements(template, "PipelineSteps")
    granted = {action for statement in statements for action in as_list(statement["Action"])}
    assert granted == declared
    assert declared == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
    }


def test_each_action_is_granted_on_exactly_the_resources_its_steps_use(template, configs) -> None:
    statements = policy_statements(template, "PipelineSteps")
    assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s for s in statements)
    granted = {
        (action, repr(resource))
        for statement in statements
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    assert granted == expected_grants(configs)
    # The releases may delete lock rows and replay records only; staged messages are never deleted by this function.
    assert {resource for action, resource in granted if action == "dynamodb:DeleteItem"} == {
        repr({"Fn::GetAtt": ["LockTable", "Arn"]}),
        repr({"Fn::GetAtt": ["ReplayTable", "Arn"]}),
    }


def test_nothing_else_in_the_template_grants_permissions(template) -> None:
    runtime = policy_statements(template, "LambdaRuntime")
    assert {action for statement in runtime for action in as_list(statement["Action"])} == RUNTIME_ACTIONS
    logs = [s for s in runtime if any(a.startswith("logs:") for a in as_list(s["Action"]))]
    assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}]
    (role,) = resources(template, "AWS::IAM::Role").values()
    assert "ManagedPolicyArns" not in role["Properties"]
    policies = role_policies(template)
    assert {name: condition for name, (condition, _) in policies.items()} == {
        "PipelineSteps": None,
        "LambdaRuntime": None,
        "EventCapture": "CaptureOn",
    }
    iam = {name: body for name, body in template["Resources"].items() if body["Type"].startswith("AWS::IAM::")}
    assert {name: body["Type"] for name, body in iam.items() if name != "FunctionRole"} == {
        "RuleBundleReadPolicy": "AWS::IAM::Policy"
    }
    function = template["Resources"]["PipelineFunction"]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]} and "Policies" not in function


def test_the_function_is_wired_as_the_contract_says(template, function_env, configs) -> None:
    function = template["Resources"]["PipelineFunction"]
    props = {**template["Globals"]["Function"], **function["Properties"]}
    assert (props["Handler"], props["Runtime"], props["Tracing"]) == ("handler.handler", "python3.11", "Active")
    assert function["Metadata"] == {"BuildMethod": "makefile"}
    # Past the worst end of an event (the deadline, then a step's call and a lock release, each with every attempt
    # and botocore's backoffs between attempts: tests/runtime/test_time_budget.py), inside Twilio's 15 s.
    # Every pipeline (the function runs them all): the email pipeline's bound must fit as well as Twilio's.
    for each in configs:
        assert longest_invocation_seconds(each.pipeline.deadline_seconds, each.aws) < props["Timeout"] < 15, each.name
    assert "ReservedConcurrentExecutions" in props
    assert set(function_env) >= CONTRACT_ENV
    assert function_env["TRACING_ENABLED"] == "true"
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in props["Events"].values()}
    assert routes == {("post", f"/{channel}") for config in configs for channel in config.channels}
    assert routes >= CONTRACT_ROUTES
    assert all(e["Type"] == "Api" for e in props["Events"].values())
    api = template["Resources"]["WebhookApi"]["Properties"]
    assert api["StageName"] == {"Ref": "StageName"} and api["TracingEnabled"] is True
    # Inbound Parse posts are multipart with binary parts: API Gateway must hand them over base64, unaltered.
    assert "multipart~1form-data" in api["BinaryMediaTypes"]
    group = template["Resources"]["FunctionLogGroup"]["Properties"]
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionLogGroup"}
    assert group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


@pytest.mark.parametrize(("reserved", "deploys"), [("20", True), ("1", True), ("-1", True), ("0", False)])
def test_a_reserved_concurrency_of_zero_is_refused_not_deployed_as_a_function_that_never_runs(
    template, reserved: str, deploys: bool
) -> None:
    # Lambda throttles every invocation of a function that reserves 0: each webhook a 5xx, every message lost once
    # Twilio's retries are spent. -1 is the template's "no reservation".
    refusals = rule_refusals(template, {"ReservedConcurrency": reserved})
    assert (refusals == []) is deploys, refusals
    assert rule_refusals(template) == []


def test_every_environment_reference_without_a_default_is_set_by_the_template(function_env) -> None:
    files = [*sorted((ROOT / "pipelines").glob("*.yaml")), *sorted((ROOT / "rules").glob("*.yaml"))]
    references = re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", "".join(f.read_text() for f in files))
    required = {name for name, default in references if not default}
    assert required
    assert required <= set(function_env)


def status_config(template: dict[str, Any], function_env: dict[str, Any], table: str) -> AppConfig:
    """The third pipeline (tests/fixtures/status_webhook) in the template's function environment, its table ``table``.

    Its steps must be loaded (``plugin_loaded(STATUS_PLUGIN)``).
    """
    env = {name: placeholder(template, value) for name, value in function_env.items()}
    return load_config(STATUS_PIPELINE, STATUS_PIPELINE.parents[1] / "rules", {**env, "STATUS_TABLE_NAME": table})


def table_key_gaps(template: dict[str, Any], configs: list[AppConfig]) -> list[str]:
    """Each table the stack creates for a pipeline, against the key and expiry its step declares (declare_table_key)."""
    declared = table_keys()
    gaps = []
    for config in configs:
        for role, name in config.tables.items():
            logical = ref_of(name) if name else None
            if template["Resources"].get(logical, {}).get("Type") != "AWS::DynamoDB::Table":
                continue  # not the stack's: the conversations table is the account's (a parameter names it)
            body = template["Resources"][logical]["Properties"]
            key = tuple(k["AttributeName"] for k in sorted(body["KeySchema"], key=lambda k: k["KeyType"]))
            expires = body.get("TimeToLiveSpecification") == {"AttributeName": "expires_at", "Enabled": True}
            if role not in declared:
                gaps.append(f"{config.name}: no loaded step declares the key of table {role!r} ({logical})")
            elif (key, expires) != (declared[role].key, declared[role].expires):
                gaps.append(f"{logical} has key {key}, expiring {expires}; {role!r} is declared {declared[role]}")
            if body["BillingMode"] != "PAY_PER_REQUEST":
                gaps.append(f"{logical} is not billed per request")
    return gaps


def test_the_tables_have_the_contract_keys_and_ttl(template, configs) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    keys = {
        name: [(k["AttributeName"], k["KeyType"]) for k in body["Properties"]["KeySchema"]]
        for name, body in tables.items()
    }
    assert (
        keys.items()
        >= {
            "StageTable": [("conversation_id", "HASH"), ("message_sid", "RANGE")],
            "LockTable": [("conversation_id", "HASH")],
            "ReplayTable": [("message_sid", "HASH")],
        }.items()
    )
    assert table_key_gaps(template, configs) == []


def test_a_new_step_s_table_is_checked_against_the_key_its_step_declares(template, function_env) -> None:
    """Before: the table test listed today's three tables, all expiring; a new step's table failed it for existing."""
    with plugin_loaded(STATUS_PLUGIN):
        status = status_config(template, function_env, "ref:StatusTable")
        table = {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "message_sid", "KeyType": "HASH"}],
            },
        }
        with_table = {**template, "Resources": {**template["Resources"], "StatusTable": table}}
        assert table_key_gaps(with_table, [status]) == []
        table["Properties"]["KeySchema"] = [{"AttributeName": "id", "KeyType": "HASH"}]
        assert table_key_gaps(with_table, [status]) == [
            "StatusTable has key ('id',), expiring False; "
            "'statuses' is declared TableKey(key=('message_sid',), expires=False)"
        ]


def test_every_queue_a_pipeline_routes_to_has_a_dead_letter_queue_with_an_alarm(
    template, function_env, configs
) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    routed = {ref_of(target["queue_url"]) for config in configs for target in config.targets.values()}
    assert routed <= set(queues), f"routed to queues the template does not create: {routed - set(queues)}"
    assert routed >= {function_env[name]["Ref"] for name in CONTRACT_QUEUE_ENV}
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    watched = {
        d["Value"]["Fn::GetAtt"][0]
        for alarm in alarms
        if alarm["Properties"].get("Namespace") == "AWS/SQS"
        for d in alarm["Properties"]["Dimensions"]
    }
    for name in routed:
        dead_letter = queues[name]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert dead_letter in queues and dead_letter in watched


# SQS's own bounds for a queue's visibility timeout, and the default a queue gets without one.
SQS_VISIBILITY_TIMEOUT = (0, 43200)
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30


def test_a_consumer_that_runs_longer_than_30_s_can_be_attached_to_every_routed_queue(template, configs) -> None:
    # Lambda refuses an SQS event source whose queue's visibility timeout is below the consumer function's timeout,
    # and a slower consumer of any kind gets each message again (a duplicate reply) until it dead-letters. The
    # queues had SQS's fixed 30 s: a consumer calling a language model for a minute could not be attached at all.
    queues = resources(template, "AWS::SQS::Queue")
    routed = {ref_of(target["queue_url"]) for config in configs for target in config.targets.values()}
    parameter = template["Parameters"]["QueueVisibilityTimeoutSeconds"]
    assert (parameter["MinValue"], parameter["MaxValue"]) == SQS_VISIBILITY_TIMEOUT
    assert parameter["Default"] == SQS_DEFAULT_VISIBILITY_TIMEOUT  # what a stack deployed before it has
    for name in routed:
        assert queues[name]["Properties"]["VisibilityTimeout"] == {"Ref": "QueueVisibilityTimeoutSeconds"}, name


def emitted_series(
    config: AppConfig, code: str, counts: dict[str, int] | None = None
) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """(metric, dimensions) of every series the function emits for an event ending in ``code``, in stack STACK."""
    doc = emf_document_of(
        "NS",
        config.pipeline.name,
        code,
        code,
        ms=1.0,
        trace=[],
        cold_start=False,
        timestamp_ms=1,
        stack=STACK,
        counts=counts,
    )
    return {
        (metric["Name"], tuple(sorted((name, doc[name]) for name in dimensions)))
        for directive in doc["_aws"]["CloudWatchMetrics"]
        for dimensions in directive["Dimensions"]
        for metric in directive["Metrics"]
    }


def _code_alarms(template: dict[str, Any], code: str) -> list[dict[str, Any]]:
    """The single-metric alarms on error ``code``."""
    return [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if {"Name": "ErrorCode", "Value": code} in a["Properties"].get("Dimensions", [])
    ]


@pytest.mark.parametrize("code", ["INVALID_SIGNATURE", "SECRET_FETCH_FAILED"])
def test_the_error_alarms_watch_a_metric_the_function_emits(template, function_env, configs, code) -> None:
    alarms = _code_alarms(template, code)
    assert alarms
    emitted = {series for config in configs for series in emitted_series(config, code)}
    for alarm in alarms:
        assert alarm["Namespace"] == function_env["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
        assert watched_series(alarm) in emitted
    assert function_env["STACK_NAME"] == {"Ref": "AWS::StackName"}


def signature_alarm_gaps(template: dict[str, Any], configs: list[AppConfig]) -> list[str]:
    """The pipelines that can end an event INVALID_SIGNATURE with no alarm on that code of theirs."""
    watched = {watched_series(alarm) for alarm in _code_alarms(template, "INVALID_SIGNATURE")}
    return [
        config.name
        for config in configs
        if "INVALID_SIGNATURE" in config.errors and not watched & emitted_series(config, "INVALID_SIGNATURE")
    ]


def test_refused_signatures_are_alarmed_on_every_pipeline(template, configs) -> None:
    # A rotated key or a stale retry refuses genuine messages for good (Twilio and SendGrid do not retry a refusal).
    assert {"twilio_inbound", "email_inbound"} <= {c.name for c in configs if "INVALID_SIGNATURE" in c.errors}
    assert signature_alarm_gaps(template, configs) == []


# The codes each kind of loss alarm must cover whatever the pipelines declare besides.
AT_LEAST = {
    "loses_message": {
        "STAGE_WRITE_ERROR",
        "QUEUE_ERROR",
        "DB_QUERY_ERROR",
        "TRIGGER_LOCK_WRITE_ERROR",
        "INTERNAL_ERROR",
    },
    "transient": {
        "DB_TRANSIENT_ERROR",
        "STAGE_WRITE_TRANSIENT_ERROR",
        "TRIGGER_LOCK_TRANSIENT_ERROR",
        "QUEUE_TRANSIENT_ERROR",
    },
}


KINDS = tuple(AT_LEAST)


def _error_alarms(template: dict[str, Any], pipeline: str) -> dict[str, dict[str, tuple[str, Any]]]:
    """The summing alarms on the ``Errors`` of ``pipeline`` alone, by name: each watched code's series."""
    found = {}
    for name, resource in resources(template, "AWS::CloudWatch::Alarm").items():
        alarm = resource["Properties"]
        if "Metrics" not in alarm:
            continue
        series = [watched_series(stat["Metric"]) for stat in summed_stats(alarm)]
        if series and all(m == "Errors" and dict(d).get("Pipeline") == pipeline for m, d in series):
            found[name] = {dict(dimensions)["ErrorCode"]: (metric, dimensions) for metric, dimensions in series}
    return found


def loss_alarm_gaps(template: dict[str, Any], config: AppConfig, kind: str) -> list[str]:
    """What keeps ``config``'s ``kind`` codes (``loses_message`` or ``transient``) from one alarm watching exactly them.

    A final error that loses the message (answered as done: nothing retries it), and a transient one (the sender
    retries it; a fault met by every attempt loses the message all the same).
    """
    codes = {code for code, spec in config.errors.items() if getattr(spec, kind)}
    alarms = {name: watched for name, watched in _error_alarms(template, config.name).items() if set(watched) & codes}
    if not codes:
        return []
    if len(alarms) != 1:
        return [f"{config.name}: {len(alarms)} alarms watch its {kind} codes {sorted(codes)}, not one"]
    ((name, watched),) = alarms.items()
    gaps = [f"{name} does not watch {code}" for code in sorted(codes - set(watched))]
    gaps += [f"{name} watches {code}, which is not {kind}" for code in sorted(set(watched) - codes)]
    gaps += [
        f"{name} watches {code} on a series never emitted"
        for code, series in watched.items()
        if series not in emitted_series(config, code)
    ]
    # CloudWatch allows an alarm 10 metrics: a pipeline with more codes needs a second alarm.
    gaps += [f"{name} sums {len(watched)} metrics; CloudWatch allows 10"] if len(watched) > 10 else []
    alarm = template["Resources"][name]["Properties"]
    for stat in summed_stats(alarm):
        if (stat["Stat"], stat["Period"], stat["Metric"]["Namespace"]) != ("Sum", 300, {"Ref": "MetricsNamespace"}):
            gaps.append(f"{name} does not sum 5-minute totals in the stack's namespace")
    threshold = 1 if kind == "loses_message" else {"Ref": f"{name.removesuffix('Alarm')}AlarmThreshold"}
    if (alarm["Threshold"], alarm["ComparisonOperator"]) != (threshold, "GreaterThanOrEqualToThreshold"):
        gaps.append(f"{name} does not fire at {threshold}")
    return gaps


@pytest.mark.parametrize("kind", KINDS)
def test_every_code_that_loses_a_message_or_may_on_every_retry_is_alarmed(template, configs, kind) -> None:
    for config in configs:
        assert loss_alarm_gaps(template, config, kind) == [], config.name
    for pipeline in ("twilio_inbound", "email_inbound"):
        config = next(config for config in configs if config.name == pipeline)
        assert {code for code, spec in config.errors.items() if getattr(spec, kind)} >= AT_LEAST[kind]


def test_a_pipeline_added_without_its_alarms_is_found(template, function_env) -> None:
    """Before: the alarm tests named twilio_inbound and email_inbound, so a third pipeline's were never checked."""
    with plugin_loaded(STATUS_PLUGIN):
        status = status_config(template, function_env, "statuses")
    assert [gap for kind in KINDS for gap in loss_alarm_gaps(template, status, kind)] == [
        "status_inbound: 0 alarms watch its loses_message codes ['INTERNAL_ERROR'], not one",
        "status_inbound: 0 alarms watch its transient codes ['STATUS_WRITE_TRANSIENT_ERROR'], not one",
    ]


def test_a_shadow_candidate_cut_off_by_its_budget_is_alarmed_on_every_pipeline(template, function_env, configs) -> None:
    assert function_env["SHADOW_BUDGET_MS"] == {"Ref": "ShadowBudgetMs"}
    parameter = template["Parameters"]["ShadowBudgetMs"]
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (100, 1, 1000)
    resource = template["Resources"]["ShadowTimeoutAlarm"]
    assert resource["Condition"] == "HasRuleBundles"
    alarm = resource["Properties"]
    watched = {watched_series(stat["Metric"]) for stat in summed_stats(alarm)}
    counts = ({"ShadowTimeouts": 1}, {"ShadowFailures": 1})
    emitted = set().union(*(emitted_series(config, "QUEUED", count) for config in configs for count in counts))
    assert watched == {series for series in emitted if series[0] in ("ShadowTimeouts", "ShadowFailures")}
    assert len(watched) == 2 * len(configs)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_the_function_and_the_api_are_alarmed_on_their_own_metrics(template) -> None:
    alarms = {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"]): a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") in ("AWS/Lambda", "AWS/ApiGateway")
    }
    for metric in ("Errors", "Duration", "Throttles"):
        assert alarms[("AWS/Lambda", metric)]["Dimensions"] == [
            {"Name": "FunctionName", "Value": {"Ref": "PipelineFunction"}}
        ]
    api = alarms[("AWS/ApiGateway", "5XXError")]
    api_name = template["Resources"]["WebhookApi"]["Properties"]["Name"]
    assert api["Dimensions"] == [
        {"Name": "ApiName", "Value": api_name},
        {"Name": "Stage", "Value": {"Ref": "StageName"}},
    ]


# What CloudFormation does with a resource it created when the stack operation fails and rolls back, by
# DeletionPolicy: only Retain keeps it (RetainExceptOnCreate keeps it on deletion, not after a failed create).
KEPT_AFTER_A_FAILED_CREATE = frozenset({"Retain"})
KEPT_WHEN_THE_STACK_IS_DELETED = frozenset({"Retain", "RetainExceptOnCreate"})


def test_a_first_deployment_that_fails_leaves_nothing_behind_and_can_be_retried(template) -> None:
    # A first create can fail late in a new account (ReservedConcurrency above the account's quota, API access logs
    # without API Gateway's CloudWatch role: docs/deploy.md). With Retain, the rollback kept the stage table under its
    # fixed name, so creating the stack again failed ("already exists") until someone deleted it by hand.
    left = [
        name
        for name, body in template["Resources"].items()
        if body.get("DeletionPolicy", "Delete") in KEPT_AFTER_A_FAILED_CREATE
    ]
    assert left == []
    # What holds users' data is still kept when the stack is deleted, and when an update replaces it.
    for name in ("StageTable", "ReplayTable", "RulesBucket", "CaptureBucket"):
        body = template["Resources"][name]
        assert body["DeletionPolicy"] in KEPT_WHEN_THE_STACK_IS_DELETED, name
        assert body["UpdateReplacePolicy"] == "Retain", name


def test_two_stacks_in_one_account_do_not_collide(template) -> None:
    for table, parameter in (("StageTable", "StageTableName"), ("LockTable", "LockTableName")):
        assert template["Parameters"][parameter]["Default"] == ""
        name = template["Resources"][table]["Properties"]["TableName"]["Fn::If"]
        assert name[0].startswith("Has") and "${AWS::StackName}" in name[2]["Fn::Sub"]
    assert "TableName" not in template["Resources"]["ReplayTable"]["Properties"]
    assert "${AWS::StackName}" in template["Resources"]["WebhookApi"]["Properties"]["Name"]["Fn::Sub"]


def test_the_api_stage_is_throttled_and_logs_its_requests(template) -> None:
    api = template["Resources"]["WebhookApi"]["Properties"]
    [settings] = api["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    access = api["AccessLogSetting"]["Fn::If"][1]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in access["Format"] and "body" not in access["Format"].lower()


def webhook_output_gaps(template: dict[str, Any], configs: list[AppConfig]) -> list[str]:
    """The channels with no stack output giving their webhook URL (``…/${StageName}/<channel>``, overrides aside)."""
    urls = [
        str(output["Value"]["Fn::Sub"]).split("#")[0]
        for output in template["Outputs"].values()
        if isinstance(output.get("Value"), dict) and "Fn::Sub" in output["Value"]
    ]
    return [
        f"{config.name}: no output gives the URL of channel {channel!r} (a {channel.capitalize()}WebhookUrl)"
        for config in configs
        for channel in config.channels
        if not any(url.endswith(f"/${{StageName}}/{channel}") for url in urls)
    ]


def test_every_channel_s_webhook_url_is_an_output(template, configs, function_env) -> None:
    assert webhook_output_gaps(template, configs) == []
    # Before: only the three shipped outputs were looked for, so a third pipeline's channel could go without one.
    with plugin_loaded(STATUS_PLUGIN):
        status = status_config(template, function_env, "t")
    assert webhook_output_gaps(template, [status]) == [
        "status_inbound: no output gives the URL of channel 'status' (a StatusWebhookUrl)"
    ]


def test_the_outputs_give_the_webhook_urls_with_the_retry_overrides(template) -> None:
    for channel, output in (("whatsapp", "WhatsAppWebhookUrl"), ("sms", "SmsWebhookUrl")):
        url = template["Outputs"][output]["Value"]["Fn::Sub"]
        assert url.endswith(f"/${{StageName}}/{channel}#rc=2&rp=ct,rt,5xx&rt=6000")
    # SendGrid retries 5xx itself: its URL carries no Twilio connection overrides.
    assert template["Outputs"]["EmailWebhookUrl"]["Value"]["Fn::Sub"].endswith("/${StageName}/email")


# How the docs name a stack output: "the `X` output", "output `X`", "outputs `X` and `Y`", a describe-stacks query,
# or "<…Suffix output>" for each output ending so.
DOC_OUTPUTS = re.compile(
    r"`(\w+)` output|output `(\w+)`|outputs `(\w+)`(?: and `(\w+)`)?|OutputKey=='(\w+)'|<…(\w+) output>"
)


def test_every_output_the_docs_send_an_operator_to_is_an_output_of_the_stack(template) -> None:
    # Before: deploy.md said to grant "the function's role" kms:Decrypt in a customer managed key's policy, which
    # names the role by ARN, and the stack gave no output of it (its name is generated: <stack>-FunctionRole-<id>).
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        (page.name, name, match.group(6) is not None)
        for page in pages
        for match in DOC_OUTPUTS.finditer(page.read_text(encoding="utf-8"))
        for name in match.groups()
        if name
    }
    outputs = set(template["Outputs"])
    missing = [
        (page, name)
        for page, name, suffix in sorted(named)
        if not (any(output.endswith(name) for output in outputs) if suffix else name in outputs)
    ]
    assert missing == []
    assert ("deploy.md", "FunctionRoleArn", False) in named
    assert template["Outputs"]["FunctionRoleArn"]["Value"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        ("", True),
        ("arn:aws:sns:eu-west-1:123456789012:ops-alerts", True),
        ("arn:aws-cn:sns:cn-north-1:123456789012:ops_alerts", True),
        ("ops-alerts", False),
        ("arn:aws:sqs:eu-west-1:123456789012:ops-alerts", False),
        ("arn:aws:sns:eu-west-1:123456789012:ops-alerts ", False),
        ("arn:aws:sns:eu-west-1:123456789012:ops-alerts,arn:aws:sns:eu-west-1:123456789012:more", False),
    ],
)
def test_the_alarm_topic_is_an_sns_topic_arn_or_nothing(template, value: str, taken: bool) -> None:
    # Before: any text was taken, and CloudWatch refused a topic's name (not its ARN) only once the tables, queues
    # and function were created, rolling the first deployment back from its ~25 alarms.
    assert _template_takes(template, "AlarmTopicArn", value) is taken


# What the previous release's template (93167a6) gave the parameters whose setting an update of its stacks changes:
# a default (taken by an update that does not pass the parameter) or a new constraint (a value the stack holds that
# the update now refuses). deploy.md's upgrade notes must name each, with what to pass to keep the stack as it was.
PREVIOUS_RELEASE = {"Api5xxAlarmThreshold": {"Default": 5}, "AlarmTopicArn": {"AllowedPattern": None}}


def test_the_upgrade_notes_name_every_setting_a_stack_of_the_previous_release_notices(template) -> None:
    # Before: Api5xxAlarmThreshold's default went from 5 to 2 and AlarmTopicArn took an ARN pattern with no word for
    # the stacks already deployed: one updated without the parameter had its alarm tightened unannounced.
    notes = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split("\n## Upgrading a deployed stack\n", 1)
    assert len(notes) == 2, "deploy.md has no upgrade notes"
    section = notes[1].split("\n## ", 1)[0]
    for name, previous in PREVIOUS_RELEASE.items():
        for key, value in previous.items():
            now = template["Parameters"][name].get(key)
            assert now != value, f"{name} {key} is the previous release's again: drop it from PREVIOUS_RELEASE"
            assert f"`{name}`" in section, f"the upgrade notes do not say that {name} {key} changed"
            if key == "Default":
                assert f"`{name}={value}`" in section, f"the upgrade notes do not say how to keep {name} at {value}"


def _capture_bucket_expression() -> dict[str, Any]:
    return {"Fn::If": ["CreateCaptureBucket", {"Ref": "CaptureBucket"}, {"Ref": "EventCaptureBucketName"}]}


def test_event_capture_is_off_by_default_and_its_settings_reach_the_function(template, function_env) -> None:
    from runtime.capture import CaptureSettings

    parameters = template["Parameters"]
    assert parameters["EventCapture"]["Default"] == "off"
    assert template["Conditions"]["CaptureOn"] == {"Fn::Equals": [{"Ref": "EventCapture"}, "on"]}
    uri = function_env["CAPTURE_S3_URI"]["Fn::If"]
    assert uri[0] == "CaptureOn" and uri[2] == ""
    assert uri[1]["Fn::Sub"] == ["s3://${Bucket}/${EventCapturePrefix}", {"Bucket": _capture_bucket_expression()}]
    assert function_env["CAPTURE_MASK"] == {"Ref": "EventCaptureMask"}
    assert function_env["CAPTURE_SAMPLE_RATE"] == {"Ref": "EventCaptureSampleRate"}
    assert function_env["CAPTURE_KEY_SECRET"]["Fn::If"][0] == "CaptureKeyFromSecret"
    # Off: the function sees an empty URI. On, with each parameter's default: the settings it reads are valid.
    off = {name: placeholder(template, value) for name, value in function_env.items() if name.startswith("CAPTURE_")}
    assert CaptureSettings.from_env({**off, "CAPTURE_S3_URI": "", "CAPTURE_KEY_SECRET": ""}) is None
    prefix = parameters["EventCapturePrefix"]["Default"]
    on = CaptureSettings.from_env({**off, "CAPTURE_S3_URI": f"s3://captures-bucket/{prefix}", "CAPTURE_KEY_SECRET": ""})
    assert on is not None and (on.mask, on.sample_rate, on.prefix) == ("text", 1.0, prefix)
    assert set(parameters["EventCaptureMask"]["AllowedValues"]) == {"none", "text", "all"}
    rule = template["Rules"]["EventCaptureAllNeedsAKey"]
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "EventCapturePseudonymKeySecretArn"}, ""]}]
    }


def test_the_function_may_only_put_objects_under_the_capture_prefix(template) -> None:
    condition, policy = role_policies(template)["EventCapture"]
    assert condition == "CaptureOn"
    put, key = policy["PolicyDocument"]["Statement"]
    assert put["Effect"] == "Allow" and put["Action"] == "s3:PutObject"
    assert put["Resource"]["Fn::Sub"] == [
        "arn:${AWS::Partition}:s3:::${Bucket}/${EventCapturePrefix}*",
        {"Bucket": _capture_bucket_expression()},
    ]
    included, statement, otherwise = key["Fn::If"]
    assert (included, otherwise) == ("CaptureKeyFromSecret", {"Ref": "AWS::NoValue"})
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == {"Ref": "EventCapturePseudonymKeySecretArn"}


@pytest.mark.parametrize(
    ("prefix", "taken"),
    [("captures/", True), ("prod/webhook-events/", True), ("captures*/", False), ("cap?ures/", False), ("c", False)],
)
def test_the_capture_prefix_cannot_widen_the_grant_beyond_itself(template, prefix: str, taken: bool) -> None:
    # The prefix is written into the grant's resource (bucket/<prefix>*): an IAM wildcard in it (* or ?) would let
    # the function write under other prefixes too.
    assert _template_takes(template, "EventCapturePrefix", prefix) is taken


@pytest.mark.parametrize(
    ("arn", "taken"),
    [
        ("", True),
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:webhook/capture-pseudonym-key-Ab12Cd", True),
        ("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:capture-key-a1B2c3", True),
        # A partial ARN (no random suffix): Secrets Manager finds the secret, but IAM compares the grant with the
        # secret's full ARN, so every capture would be AccessDenied.
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:webhook/capture-pseudonym-key", False),
        ("webhook/capture-pseudonym-key", False),
    ],
)
def test_the_pseudonym_key_secret_is_given_by_the_full_arn_the_role_is_granted(template, arn: str, taken: bool) -> None:
    _, policy = role_policies(template)["EventCapture"]
    read = policy["PolicyDocument"]["Statement"][1]["Fn::If"][1]
    assert read["Resource"] == {"Ref": "EventCapturePseudonymKeySecretArn"}
    assert _template_takes(template, "EventCapturePseudonymKeySecretArn", arn) is taken


def test_the_capture_bucket_is_private_encrypted_tls_only_and_expiring(template) -> None:
    bucket = template["Resources"]["CaptureBucket"]
    assert bucket["Condition"] == "CreateCaptureBucket"
    props = bucket["Properties"]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (expiry,) = props["LifecycleConfiguration"]["Rules"]
    assert expiry["Status"] == "Enabled" and expiry["ExpirationInDays"] == {"Ref": "EventCaptureRetentionDays"}
    policy = template["Resources"]["CaptureBucketPolicy"]
    assert policy["Condition"] == "CreateCaptureBucket"
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# The build script (scripts/build_lambda.py): what goes into the artifact, without downloading anything.


def _installed(name: str, version: str, *requires: str) -> dict[str, Any]:
    """An item of pip's installation report (``pip install --report``), as the build resolves with."""
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}


# A resolution as pip reports it: the SDK the runtime provides, twilio with its REST client's HTTP stack, and a
# plugin's dependency (acme-client) on requests with an extra.
PIP_REPORT = [
    _installed("boto3", "1.0", "botocore<2,>=1", "jmespath<2,>=0.7.1", "s3transfer<0.20,>=0.19"),
    _installed("botocore", "1.0", "jmespath<2", "python-dateutil<3,>=2.1", "urllib3!=2.2.0,<3,>=1.25.4"),
    _installed("s3transfer", "0.19", "botocore<2,>=1.37.4", "botocore[crt]<2,>=1.37.4; extra == 'crt'"),
    _installed("jmespath", "1.0"),
    _installed("python-dateutil", "2.9", "six>=1.5"),
    _installed("six", "1.0"),
    _installed("urllib3", "2.0", "h2<5,>=4; extra == 'h2'", "pysocks!=1.5.7,<2.0,>=1.5.6; extra == 'socks'"),
    _installed("twilio", "9.13.0", "requests>=2.0.0", "PyJWT<3.0.0,>=2.0.0", "aiohttp>=3.8.4"),
    _installed("requests", "2.0", "idna<4,>=2.5", "urllib3<3,>=1.26", "certifi", 'PySocks>=1.5.6; extra == "socks"'),
    _installed("PyJWT", "2.0", 'typing_extensions>=4.0; python_version < "3.11"', 'cryptography; extra == "crypto"'),
    _installed("aiohttp", "3.0", "yarl<2.0,>=1.17", 'typing_extensions>=4.4; python_version < "3.13"'),
    _installed("yarl", "1.0", "idna>=2.0"),
    _installed("idna", "3.0", 'ruff >= 0.16.0 ; extra == "all"'),
    _installed("certifi", "2026.1"),
    _installed("typing_extensions", "4.0"),
    _installed("PyYAML", "6.0"),
    _installed("acme-client", "1.0", "requests[socks]>=2"),
    _installed("PySocks", "1.7"),
]


def test_the_artifact_holds_the_function_and_its_configuration_only(build) -> None:
    names = [name for _, name in build.source_files(ROOT)]
    assert names == sorted(names)
    assert {"handler.py", "runtime/app.py", "runtime/metrics.py", "runtime/tracing.py", "steps/sqs.py"} <= set(names)
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipelines").glob("*.yaml")} <= set(names)
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "rules").glob("*.yaml")} <= set(names)
    assert not [n for n in names if re.match(r"(tests|bench|scripts|examples|tools|\.venv)/", n)]
    assert not [n for n in names if "__pycache__" in n]


def test_the_artifact_check_finds_a_module_the_handler_needs_but_the_artifact_lacks(build) -> None:
    files = build.source_files(ROOT)
    assert build.missing_first_party(files) == []
    without = [(path, name) for path, name in files if name != "runtime/metrics.py"]
    assert build.missing_first_party(without) == ["runtime.metrics"]


def test_the_artifact_import_check_covers_every_third_party_module_the_function_imports(build) -> None:
    # The email signature imports cryptography on first use only: a build whose cryptography cannot load passed
    # the check (which named twilio, yaml, jsonschema and jmespath) and failed every email as INTERNAL_ERROR.
    imports = build.third_party_imports(build.source_files(ROOT))
    assert imports == sorted(set(imports))
    assert {
        "from cryptography.hazmat.primitives.asymmetric import ec",
        "from twilio.request_validator import RequestValidator",
        "import yaml",
        "from jsonschema import Draft202012Validator",
        "import jmespath",
    } <= set(imports)
    modules = {statement.split()[1].split(".")[0] for statement in imports}
    assert not modules & {"boto3", "botocore", "engine", "runtime", "steps", "handler", "json", "re", "threading"}
    bundled = build.third_party_imports(build.source_files(ROOT), with_boto3=True)
    assert {"boto3", "botocore"} <= {statement.split()[1].split(".")[0] for statement in bundled}


def test_the_artifact_import_check_fails_a_stage_without_a_module_the_function_imports(build, tmp_path: Path) -> None:
    (tmp_path / "bundled.py").write_text("VALUE = 1\n", encoding="utf-8")
    arch = "arm64" if platform.machine().lower() in {"arm64", "aarch64"} else "x86_64"
    build.smoke_import(tmp_path, arch, ["from bundled import VALUE"])
    with pytest.raises(subprocess.CalledProcessError):
        build.smoke_import(tmp_path, arch, ["import bundled", "from cryptography.hazmat.primitives import hashes"])


def test_the_dependencies_test_suites_and_benchmarks_stay_out_of_the_artifact(build, tmp_path: Path) -> None:
    # jsonschema, referencing and jsonschema_specifications install their test suites (which import pytest) and
    # jsonschema its benchmarks (pyperf): about 1 MB of modules the function never imports, in the artifact.
    installed = {
        "jsonschema/__init__.py": "",
        "jsonschema/validators.py": "",
        "jsonschema/tests/__init__.py": "",
        "jsonschema/tests/typing/test_all.py": "import pytest\n",
        "jsonschema/benchmarks/issue232.py": "import pyperf\n",
        "jsonschema_specifications/tests/test_jsonschema_specifications.py": "import pytest\n",
        "referencing/_core.py": "",
        "referencing/tests/test_core.py": "import pytest\n",
        "jsonschema-4.26.0.dist-info/RECORD": "",
        "typing_extensions.py": "",
    }
    own = {"handler.py": "", "steps/sqs.py": "", "runtime/app.py": "", "rules/40_routing.yaml": ""}
    for name, text in {**installed, **own}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    dropped = build.drop_dev_only(tmp_path, first_party={"engine", "runtime", "steps", "pipelines", "rules"})
    assert dropped == [
        "jsonschema/benchmarks",
        "jsonschema/tests",
        "jsonschema_specifications/tests",
        "referencing/tests",
    ]
    left = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file())
    assert left == sorted(
        {*own, "jsonschema/__init__.py", "jsonschema/validators.py", "referencing/_core.py", "typing_extensions.py"}
        | {"jsonschema-4.26.0.dist-info/RECORD"}
    )


def test_the_artifact_takes_runtime_dependencies_only(build) -> None:
    requirements = build.runtime_requirements(ROOT / "pyproject.toml")
    names = {build._name(requirement) for requirement in requirements}
    assert {"twilio", "pyyaml", "jsonschema", "jmespath"} <= names
    assert not names & {"pytest", "moto", "ruff", "mypy", "hypothesis", "cfn-lint"}
    shipped = ["boto3>=1.34", "twilio>=9.13,<10", "pyyaml>=6.0", "jmespath>=1.0"]
    assert build.keep(PIP_REPORT, shipped, with_boto3=False, slim=True) == [
        "PyYAML==6.0",
        "jmespath==1.0",
        "twilio==9.13.0",
    ]
    assert build.keep(PIP_REPORT, shipped, with_boto3=False, slim=False) == [
        "PyJWT==2.0",
        "PyYAML==6.0",
        "aiohttp==3.0",
        "certifi==2026.1",
        "idna==3.0",
        "jmespath==1.0",
        "requests==2.0",
        "twilio==9.13.0",
        "typing_extensions==4.0",
        "yarl==1.0",
    ]
    everything = build.keep(PIP_REPORT, shipped, with_boto3=True, slim=False)
    assert {"boto3==1.0", "botocore==1.0", "urllib3==2.0", "six==1.0"} <= set(everything)
    assert not {"PySocks==1.7", "acme-client==1.0"} & set(everything)


def test_the_artifact_keeps_what_a_plugin_s_dependency_needs_though_twilio_s_client_needs_it_too(build) -> None:
    # Before: a hand-kept list of twilio's HTTP stack (requests, idna, certifi, ...) was dropped from every build, so a
    # plugin requiring requests deployed without it (and, built for arm64 on x86_64, no import check said so).
    declared = ["boto3>=1.34", "twilio>=9.13,<10", "acme-client>=1"]
    kept = build.keep(PIP_REPORT, declared, with_boto3=False, slim=True)
    assert kept == [
        "PySocks==1.7",
        "acme-client==1.0",
        "certifi==2026.1",
        "idna==3.0",
        "requests==2.0",
        "twilio==9.13.0",
    ]
    assert build.runtime_provided(PIP_REPORT, declared) == {
        "boto3",
        "botocore",
        "jmespath",
        "python-dateutil",
        "s3transfer",
        "six",
        "urllib3",
    }


@pytest.mark.skipif(not os.environ.get("RUN_BUILD_TESTS"), reason="downloads the Lambda wheels (RUN_BUILD_TESTS=1)")
def test_a_declared_dependency_twilio_s_client_shares_is_resolved_into_the_artifact(build) -> None:
    requirements = [*build.runtime_requirements(ROOT / "pyproject.toml"), "requests>=2.31"]
    names = {build._name(pin.split("==")[0]) for pin in build.keep(build.resolve(requirements, "arm64"), requirements)}
    assert {"requests", "idna", "certifi", "charset-normalizer", "twilio", "cryptography", "jmespath"} <= names
    assert not names & {"aiohttp", "pyjwt", "yarl", "boto3", "botocore", "urllib3", "six", "s3transfer"}


def test_sam_build_calls_the_makefile_target_named_after_the_function(template) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^build-PipelineFunction:", makefile, re.MULTILINE)
    assert "PipelineFunction" in resources(template, "AWS::Serverless::Function")
    # In the source tree, not a scratch copy of it (.venv and all); .aws-sam/ is never committed.
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert samconfig["default"]["build"]["parameters"]["build_in_source"] is True
    assert ".aws-sam/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


@pytest.mark.skipif(not os.environ.get("RUN_BUILD_TESTS"), reason="downloads the Lambda wheels (RUN_BUILD_TESTS=1)")
def test_a_fresh_clone_builds_without_make_install_and_twice_the_same(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    trees = []
    for name in ("one", "two"):
        artifacts = tmp_path / name
        subprocess.run(["make", "build-PipelineFunction", f"ARTIFACTS_DIR={artifacts}"], cwd=clone, env=env, check=True)
        assert (artifacts / "config.stamp.json").is_file() and (artifacts / "handler.py").is_file()
        trees.append({p.relative_to(artifacts): p.read_bytes() for p in sorted(artifacts.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1]


def test_two_builds_in_different_directories_are_byte_identical(build, tmp_path: Path) -> None:
    # Issue 15 (7): each .pyc embedded its build directory. The function's own files, without downloading anything.
    if f"{sys.version_info.major}.{sys.version_info.minor}" != build.PYTHON_VERSION:
        pytest.skip("the runtime's Python is needed to precompile")
    zips = []
    for name in ("first", "second-build-dir"):
        stage = tmp_path / name / "stage"
        build.copy_sources(build.source_files(ROOT), stage)
        assert build.compile_tree(stage)
        build.write_zip(stage, tmp_path / name / "lambda.zip")
        pycs = list(stage.rglob("*.pyc"))
        assert pycs and not [p for p in pycs if str(stage).encode() in p.read_bytes()]
        assert b"/var/task/runtime/app.py" in next(p for p in pycs if p.name.startswith("app.")).read_bytes()
        zips.append((tmp_path / name / "lambda.zip").read_bytes())
    assert zips[0] == zips[1]


# Rules bundles (runtime.bundlewatch): the bucket, the function's read permission and its settings.


def test_the_rules_bucket_is_versioned_encrypted_private_and_tls_only(template) -> None:
    bucket = template["Resources"]["RulesBucket"]
    assert bucket["Condition"] == "HasRuleBundles" and bucket["DeletionPolicy"] in KEPT_WHEN_THE_STACK_IS_DELETED
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (statement,) = template["Resources"]["RulesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_function_may_only_read_the_bundle_prefix(template) -> None:
    policy = template["Resources"]["RuleBundleReadPolicy"]
    assert policy["Condition"] == "HasRuleBundles"
    assert policy["Properties"]["Roles"] == [{"Ref": "FunctionRole"}]
    read, keys = policy["Properties"]["PolicyDocument"]["Statement"]
    assert read["Effect"] == "Allow" and read["Action"] == "s3:GetObject"
    assert read["Resource"] == {"Fn::Sub": "${RulesBucket.Arn}/${RulesPrefix}*"}
    # Listing (the bucket, no object) makes S3 answer a missing deployment 404, not AccessDenied (runtime.bundlewatch).
    assert (keys["Effect"], keys["Action"], keys["Resource"]) == (
        "Allow",
        "s3:ListBucket",
        {"Fn::GetAtt": ["RulesBucket", "Arn"]},
    )


def test_the_function_is_told_where_the_bundles_are_and_how_often_to_look(template, function_env) -> None:
    assert function_env["RULES_BUCKET"] == {"Fn::If": ["HasRuleBundles", {"Ref": "RulesBucket"}, ""]}
    assert function_env["RULES_PREFIX"] == {"Ref": "RulesPrefix"}
    assert function_env["RULES_REFRESH_SECONDS"] == {"Ref": "RulesRefreshSeconds"}
    parameters = template["Parameters"]
    assert parameters["RulesPrefix"]["Default"] == "rules/"
    assert parameters["RulesRefreshSeconds"]["Default"] == 60
    assert template["Outputs"]["RulesBucketName"]["Value"] == {"Ref": "RulesBucket"}


def test_the_artifact_holds_the_bundle_watcher_but_not_the_publishing_tool(build) -> None:
    names = {name for _, name in build.source_files(ROOT)}
    assert {"runtime/bundlewatch.py", "runtime/bundles.py", "runtime/shadow.py", "runtime/verify.py"} <= names
    assert "tools/rules.py" not in names


def test_a_refused_rules_bundle_raises_the_alarm_on_the_series_emitted(template, function_env, configs) -> None:
    from runtime.bundlewatch import ERROR_METRIC
    from runtime.metrics import count_line

    resource = template["Resources"]["RulesBundleErrorsAlarm"]
    assert resource["Condition"] == template["Resources"]["RulesBucket"]["Condition"] == "HasRuleBundles"
    alarm = resource["Properties"]
    assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert alarm["TreatMissingData"] == "notBreaching"
    watched = set()
    for stat in summed_stats(alarm):
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
        assert stat["Metric"]["Namespace"] == function_env["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
        watched.add(watched_series(stat["Metric"]))
    emitted = set()
    for config in configs:
        doc = json.loads(count_line("NS", config.name, ERROR_METRIC, timestamp_ms=1, stack=STACK))
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        (dimensions,) = directive["Dimensions"]
        (metric,) = directive["Metrics"]
        emitted.add((metric["Name"], tuple(sorted((name, doc[name]) for name in dimensions))))
    assert watched == emitted and len(emitted) == len(configs) == len(pipeline_paths())


@pytest.mark.parametrize("alarm", ["ShadowTimeoutAlarm", "RulesBundleErrorsAlarm", "CaptureFailuresAlarm"])
def test_the_extending_guide_names_every_series_a_new_pipeline_adds_to_a_per_pipeline_alarm(template, alarm) -> None:
    """Before: docs/extending.md told a new pipeline to add its ShadowTimeouts to ShadowTimeoutAlarm; the alarm (and
    the test holding every pipeline to it) sums each pipeline's ShadowFailures as well, a step the guide left out."""
    guide = " ".join((ROOT / "docs" / "extending.md").read_text(encoding="utf-8").split())
    start = guide.index(f"`{alarm}` (")
    named = guide[start : guide.index(")", start)]
    assert {series.metric for series in alarm_series(template, alarm)} <= set(re.findall(r"`(\w+)`", named)), named
