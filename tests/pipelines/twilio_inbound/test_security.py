"""Security checks: the signature gates every use of conversation data, comparisons do not exit early, a forged
Host cannot borrow another URL's signature, credential names are confined, logs and dry-run output carry no
token, and YAML is loaded safely.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import twilio.request_validator
import yaml

from engine.config import load_config
from engine.errors import ConfigError
from tests.support import logscan
from tests.support.faults import ROOT, FaultInjector, new_container
from tests.support.webhooks import EMPTY_TWIML, HOST, rest_event, sign, whatsapp_params
from tests.support.world import TOKEN, WA_SECRET, World
from tools.localaws import put_secrets

OTHER_HOST = "other.example.com"
AWS_READS = ("query", "secret", "get")


@pytest.fixture
def seeded(world: World) -> World:
    world.add_conversation()
    world.add_default_secrets()
    return world


def container(world: World, monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Any, FaultInjector]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return new_container(world.resources)


def outcome(application: Any, event: dict[str, Any]) -> Any:
    handled = application.process(event, None)
    assert handled.raised is None
    assert handled.response["statusCode"] == 200 and handled.response["body"] == EMPTY_TWIML
    return handled


# --- the signature comes first -------------------------------------------------------------------------------


def test_a_request_without_a_signature_makes_no_aws_call(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, injector = container(seeded, monkeypatch)
    handled = outcome(application, rest_event("whatsapp", whatsapp_params(), signature=""))
    assert handled.result.outcome == "INVALID_SIGNATURE"
    assert sum(injector.calls.values()) == 0


def test_forged_requests_never_read_the_conversation_or_write(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, injector = container(seeded, monkeypatch)
    for index in range(10):
        handled = outcome(application, rest_event("whatsapp", whatsapp_params(f"SM{index:032d}"), token="forged"))
        assert handled.result.outcome == "INVALID_SIGNATURE"
        assert "conversation" not in handled.result.doc and "route" not in handled.result.doc
        assert handled.result.rules == []
    # Only the credential reference is read: one lookup per request, the secret once plus one rotation re-fetch.
    assert dict(injector.calls) == {"query": 10, "secret": 2}


# --- comparisons ---------------------------------------------------------------------------------------------


class Probe(str):
    """A signature whose characters count every comparison made with them."""

    compared = 0

    def __iter__(self) -> Any:
        return iter([_Char(c) for c in str.__str__(self)])


class _Char:
    def __init__(self, char: str) -> None:
        self.char = char

    def __eq__(self, other: object) -> bool:
        Probe.compared += 1
        return self.char == other

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize("provided", ["X" * 28, "Y" + "A" * 27])
def test_the_signature_comparison_does_not_stop_at_the_first_difference(provided: str) -> None:
    expected = sign(f"https://{HOST}/prod/whatsapp", whatsapp_params())
    Probe.compared = 0
    assert twilio.request_validator.compare(expected, Probe(provided)) is False
    assert Probe.compared == len(expected)


def test_the_pipeline_compares_signatures_with_the_librarys_comparison(
    seeded: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[str] = []
    original = twilio.request_validator.compare

    def spy(expected: str, provided: str) -> bool:
        compared.append(provided)
        return bool(original(expected, provided))

    monkeypatch.setattr(twilio.request_validator, "compare", spy)
    application, _ = container(seeded, monkeypatch)
    event = rest_event("whatsapp", whatsapp_params())
    assert outcome(application, event).result.outcome == "QUEUED"
    assert event["headers"]["X-Twilio-Signature"] in compared


# --- a forged Host -------------------------------------------------------------------------------------------


def borrowed_signature() -> dict[str, Any]:
    """A delivery Twilio signed for another webhook URL of the same account, replayed to us with its Host."""
    event = rest_event("whatsapp", whatsapp_params(), host=OTHER_HOST)
    event["requestContext"]["domainName"] = HOST
    return event


def test_without_public_base_url_or_allowed_hosts_the_host_must_be_the_domain_the_request_arrived_on(
    seeded: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 15 (4): the Host header used to decide the signed URL, so this borrowed signature was QUEUED.
    application, injector = container(seeded, monkeypatch)
    assert outcome(application, borrowed_signature()).result.outcome == "INVALID_SIGNATURE"
    assert sum(injector.calls.values()) == 0
    assert outcome(application, rest_event("whatsapp", whatsapp_params())).result.outcome == "QUEUED"


@pytest.mark.parametrize("host", [f"{OTHER_HOST}/tenant-x", f"{HOST}/x", f"{HOST}:99999", f"user@{HOST}", ""])
def test_a_host_that_is_not_a_host_name_is_refused(host: str, seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, injector = container(seeded, monkeypatch)
    event = rest_event("whatsapp", whatsapp_params(), host=HOST, signed_url=f"https://{host}/prod/whatsapp")
    event["headers"]["Host"] = event["multiValueHeaders"]["Host"][0] = host
    event["requestContext"]["domainName"] = host or None
    assert outcome(application, event).result.outcome in ("PARSING_ERROR", "INVALID_SIGNATURE")
    assert sum(injector.calls.values()) == 0


def test_behind_an_allow_list_the_client_does_not_choose_the_scheme(
    seeded: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    application, injector = container(seeded, monkeypatch, ALLOWED_HOSTS=HOST)
    downgraded = rest_event(
        "whatsapp", whatsapp_params(), signed_url=f"http://{HOST}/prod/whatsapp", headers={"X-Forwarded-Proto": "http"}
    )
    assert outcome(application, downgraded).result.outcome == "INVALID_SIGNATURE"
    assert injector.calls["get"] == 0
    honest = rest_event("whatsapp", whatsapp_params(), headers={"X-Forwarded-Proto": "http"})
    assert outcome(application, honest).result.outcome == "QUEUED"


def test_public_base_url_ignores_the_host_header(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, injector = container(seeded, monkeypatch, PUBLIC_BASE_URL=f"https://{HOST}/prod")
    assert outcome(application, borrowed_signature()).result.outcome == "INVALID_SIGNATURE"
    assert injector.calls["get"] == 0
    genuine = rest_event("whatsapp", whatsapp_params())
    genuine["headers"]["Host"] = genuine["multiValueHeaders"]["Host"][0] = OTHER_HOST
    assert outcome(application, genuine).result.outcome == "QUEUED"


def test_allowed_hosts_refuse_other_hosts_before_any_aws_call(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, injector = container(seeded, monkeypatch, ALLOWED_HOSTS=f" {HOST.upper()} , hooks-eu.example.com")
    handled = outcome(application, borrowed_signature())
    assert handled.result.outcome == "INVALID_SIGNATURE"
    assert sum(injector.calls.values()) == 0
    assert outcome(application, rest_event("whatsapp", whatsapp_params())).result.outcome == "QUEUED"


@pytest.mark.parametrize("signed_url", [f"https://{HOST}:443/prod/whatsapp", f"https://{HOST}/prod/whatsapp"])
def test_behind_an_allow_list_a_host_with_the_https_port_is_that_host(
    signed_url: str, seeded: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Host: name:443`` (a webhook URL configured with the port) names the allowed host, as it does without an
    allow-list; it was refused as INVALID_SIGNATURE (200), a genuine message lost. Another port still is refused."""
    application, injector = container(seeded, monkeypatch, ALLOWED_HOSTS=HOST)
    event = rest_event("whatsapp", whatsapp_params(), host=f"{HOST}:443", signed_url=signed_url)
    event["requestContext"]["domainName"] = HOST
    assert outcome(application, event).result.outcome == "QUEUED"
    other = rest_event("whatsapp", whatsapp_params("SM" + "9" * 32), host=f"{HOST}:8443", signed_url=signed_url)
    other["requestContext"]["domainName"] = HOST
    injector.reset_counts()
    assert outcome(application, other).result.outcome == "INVALID_SIGNATURE"
    assert sum(injector.calls.values()) == 0


def test_allowed_hosts_are_not_consulted_with_public_base_url(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, _ = container(
        seeded, monkeypatch, PUBLIC_BASE_URL=f"https://{HOST}/prod", ALLOWED_HOSTS="hooks-eu.example.com"
    )
    assert outcome(application, rest_event("whatsapp", whatsapp_params())).result.outcome == "QUEUED"


def test_a_malformed_allowed_host_fails_the_cold_start(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "https://hooks.example.com/prod")
    with pytest.raises(ConfigError) as caught:
        new_container(world.resources)
    (problem,) = caught.value.problems
    assert problem.file.endswith("twilio_inbound.yaml") and "is not a host name" in problem.message


# --- credential names ----------------------------------------------------------------------------------------


# The template's patterns (WhatsAppSecretNamePattern / SmsSecretNamePattern at their defaults, as it sets them).
TEMPLATE_PATTERNS = {
    "WHATSAPP_SECRET_NAME_PATTERN": "ai-multi-comms/whatsapp-credentials/.+",
    "SMS_SECRET_NAME_PATTERN": "ai-multi-comms/sms-credentials/.+",
}


def test_without_pattern_variables_a_conversation_may_name_any_secret_as_the_contract_says(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: the shipped defaults confined names to the contract's example prefix, so a conversation naming its
    secret otherwise (the contract: the name is the credentials id, any Secrets Manager name) was refused."""
    put_secrets(world.secretsmanager, {"acme-twilio": {"twilio_auth_token": TOKEN}})
    world.add_conversation(channel_config={"whatsapp_credentials_id": "acme-twilio"})
    application, injector = container(world, monkeypatch)
    assert outcome(application, rest_event("whatsapp", whatsapp_params())).result.outcome == "QUEUED"
    assert injector.calls["secret"] == 1


def test_the_templates_patterns_confine_each_channel_to_its_own_credentials(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    application, _ = container(world, monkeypatch, **TEMPLATE_PATTERNS)
    lookup = next(
        step for step in application.pipeline("twilio_inbound").pipeline.steps() if step.uses == "conversations.lookup"
    )
    patterns = lookup.step._patterns  # the compiled per-channel patterns of the shipped pipeline
    assert patterns["whatsapp"].fullmatch(WA_SECRET)
    assert patterns["sms"].fullmatch("ai-multi-comms/sms-credentials/a/b/twilio-prod")
    # Per channel: a WhatsApp conversation cannot name an SMS secret, nor anything else.
    assert not patterns["whatsapp"].fullmatch("ai-multi-comms/sms-credentials/a/b/twilio-prod")
    assert not patterns["whatsapp"].fullmatch("ai-multi-comms/x/y-credentials/z")
    assert not patterns["sms"].fullmatch("prod/payments/db-password")


@pytest.mark.parametrize(
    ("secret_name", "env", "expected"),
    [
        ("prod/payments/db-password", TEMPLATE_PATTERNS, "MISSING_CREDENTIAL_CONFIG"),
        ("ai-multi-comms/sms-credentials/acme/sales/twilio-prod", TEMPLATE_PATTERNS, "MISSING_CREDENTIAL_CONFIG"),
        (
            "ai-multi-comms/whatsapp-credentials/../../prod/db",
            {"WHATSAPP_SECRET_NAME_PATTERN": r"ai-multi-comms/[\w-]+/\w+/.+"},
            "MISSING_CREDENTIAL_CONFIG",
        ),
        (
            WA_SECRET,
            {"WHATSAPP_SECRET_NAME_PATTERN": "ai-multi-comms/whatsapp-credentials/globex/.+"},
            "MISSING_CREDENTIAL_CONFIG",
        ),
        (WA_SECRET, {"WHATSAPP_SECRET_NAME_PATTERN": "ai-multi-comms/whatsapp-credentials/acme/.+"}, "QUEUED"),
    ],
)
def test_credential_names_outside_the_pattern_are_refused_unread(
    world: World, monkeypatch: pytest.MonkeyPatch, secret_name: str, env: dict[str, str], expected: str
) -> None:
    world.add_default_secrets()
    world.add_conversation(channel_config={"whatsapp_credentials_id": secret_name})
    application, injector = container(world, monkeypatch, **env)
    assert outcome(application, rest_event("whatsapp", whatsapp_params())).result.outcome == expected
    assert injector.calls["secret"] == (expected == "QUEUED")


# --- YAML ----------------------------------------------------------------------------------------------------

UNSAFE_YAML = {
    "load",
    "load_all",
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "UnsafeLoader",
    "FullLoader",
    "CLoader",
    "CUnsafeLoader",
    "CFullLoader",
}


def test_no_code_uses_an_unsafe_yaml_loader() -> None:
    sources = [ROOT / "handler.py", *(ROOT / "engine").rglob("*.py"), *(ROOT / "steps").rglob("*.py")]
    found = []
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
                and node.attr in UNSAFE_YAML
            ):
                found.append(f"{source.relative_to(ROOT)}:{node.lineno}: yaml.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "yaml":
                found += [
                    f"{source.relative_to(ROOT)}:{node.lineno}: {a.name}" for a in node.names if a.name in UNSAFE_YAML
                ]
    assert len(sources) > 10 and found == []


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system"])
def test_python_tags_in_configuration_are_refused(tmp_path: Path, tag: str) -> None:
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    marker = tmp_path / "pwned"
    rules = tmp_path / "rules" / "10_project_status.yaml"
    rules.write_text(rules.read_text() + f'owner: {tag} ["touch {marker}"]\n')
    env = {
        name: "x" for name in ("CONVERSATIONS_TABLE_NAME", "STAGE_TABLE_NAME", "LOCK_TABLE_NAME", "REPLAY_TABLE_NAME")
    }
    env |= {name: "x" for name in ("WHATSAPP_QUEUE_URL", "SMS_QUEUE_URL", "HANDOFF_QUEUE_URL")}
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "pipelines" / "twilio_inbound.yaml", tmp_path / "rules", env)
    assert any(problem.file.endswith("10_project_status.yaml") for problem in caught.value.problems)
    assert not marker.exists()


# --- logs and dry-run output ---------------------------------------------------------------------------------


def test_the_log_scan_finds_tokens_bodies_and_numbers() -> None:
    lines = [
        json.dumps({"message": "event", "ms": 12345.6, "function_request_id": "a-12345b"}),
        json.dumps({"message": "token 12345"}),
        json.dumps({"message": "from +14155550123"}),
        json.dumps({"conversation_id": "ci#pi#uuid#14155550123"}),
        json.dumps({"message": "Hello there! 👋 (escaped by json.dumps)"}),
    ]
    leaks = logscan.find_leaks(lines, logscan.SENSITIVE)
    assert [line for _, line in leaks] == lines[1:]


def test_the_log_scan_sees_the_engines_lines(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, _ = container(seeded, monkeypatch)
    outcome(application, rest_event("whatsapp", whatsapp_params()))
    outcome(application, rest_event("whatsapp", whatsapp_params(), token="forged"))
    lines = [json.loads(line) for line in logscan.captured()]
    events = [line for line in lines if line.get("message") == "event"]
    assert [line["outcome"] for line in events] == ["QUEUED", "INVALID_SIGNATURE"]
    assert {line["level"] for line in lines} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}
    assert all("signature" in line["steps"] for line in events)


def test_dry_run_text_output_with_data_shown_carries_no_token(capsys: pytest.CaptureFixture[str]) -> None:
    from tools.dryrun.cli import main

    world = yaml.safe_load((ROOT / "examples" / "world.yaml").read_text())
    tokens = {value["twilio_auth_token"] for value in world["secrets"].values() if "twilio_auth_token" in value}
    logscan.forbid(*tokens)
    status = main(
        [
            *("--world", str(ROOT / "examples" / "world.yaml"), "--show-data"),
            *("--pipeline", str(ROOT / "pipelines" / "twilio_inbound.yaml"), "--rules", str(ROOT / "rules")),
            str(ROOT / "examples" / "events"),
        ]
    )
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "QUEUED" in printed.out and "INVALID_SIGNATURE" in printed.out
    assert [token for token in tokens if token in printed.out + printed.err] == []


# --- the scheme of the rebuilt URL ---------------------------------------------------------------------------

ATTACKER = "+447700900999"


def test_x_forwarded_proto_cannot_reshape_the_signed_url(world, lambda_handler, outcomes) -> None:
    # A value holding "://" used to prefix the signed URL with anything: a genuine signature over the attacker's own
    # WhatsApp message, re-cut at the URL boundary, validated a forged SMS "from" another user.
    from urllib.parse import urlencode

    from tests.support.webhooks import ACCOUNT, COMPANY_SMS, STAGE, USER

    world.add_conversation()
    world.add_conversation(
        primary_channel=ATTACKER,
        gsi_recipient_tel=ATTACKER,
        recipient_tel=ATTACKER,
        conversation_id=f"ci-aaa-000#pi-aaa-000#attacker#{ATTACKER[1:]}",
    )
    world.add_default_secrets()
    forged_sid, forged_body = "SM" + "f" * 32, "please send my balance to attacker@evil.example"
    forged_prefix = f"AccountSid{ACCOUNT}Body{forged_body}From{USER}MessageSid{forged_sid}To{COMPANY_SMS}Zz"
    tail = f"://{HOST}/{STAGE}/sms"
    genuine = whatsapp_params(
        sid="SM" + "a" * 32, body=tail + forged_prefix, From=f"whatsapp:{ATTACKER}", WaId=ATTACKER[1:]
    )
    wa_url = f"https://{HOST}/{STAGE}/whatsapp"
    signature = sign(wa_url, genuine)
    signed_string = wa_url + "".join(f"{k}{genuine[k]}" for k in sorted(genuine))
    proto, _, after = signed_string.partition(tail)
    forged = {
        "AccountSid": ACCOUNT,
        "Body": forged_body,
        "From": USER,
        "MessageSid": forged_sid,
        "To": COMPANY_SMS,
        "Zz": after[len(forged_prefix) :],
    }
    assert proto + tail + "".join(f"{k}{forged[k]}" for k in sorted(forged)) == signed_string

    event = rest_event(
        "sms", forged, signature=signature, headers={"X-Forwarded-Proto": proto}, body=urlencode(list(forged.items()))
    )
    lambda_handler(event, None)

    # The re-cut form spells the genuine From (whatsapp:+…) inside its last value: refused as it is parsed, before
    # its signature is checked (test_identity_fields.py). The header still cannot reshape the URL:
    from runtime.apigateway import forwarded_scheme

    assert forwarded_scheme(proto) == "https"
    assert outcomes()[-1] == ("PARSING_ERROR", "PARSING_ERROR")
    assert [row for row in world.stage_rows() if row["message_sid"] == forged_sid] == []


@pytest.mark.parametrize("proto", ["https", "HTTPS", " https ", "https, http", "https,http", "evil://x", "", "ftp"])
def test_a_request_signed_over_https_is_valid_whatever_else_x_forwarded_proto_says(
    proto: str, seeded: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    application, _ = container(seeded, monkeypatch)
    event = rest_event("whatsapp", whatsapp_params(), headers={"X-Forwarded-Proto": proto})
    assert outcome(application, event).result.outcome == "QUEUED"


def test_a_proxy_that_says_http_first_gets_an_http_url(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    application, _ = container(seeded, monkeypatch)
    signed_url = f"http://{HOST}/prod/whatsapp"
    event = rest_event(
        "whatsapp", whatsapp_params(), signed_url=signed_url, headers={"X-Forwarded-Proto": "HTTP, https"}
    )
    assert outcome(application, event).result.outcome == "QUEUED"
