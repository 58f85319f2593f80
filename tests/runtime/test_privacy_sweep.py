"""Every output channel of the function, searched for an event's secrets and personal data.

Each scenario drives the real handler (moto behind it; Twilio signatures computed with the twilio library, SendGrid's
with a P-256 key) with distinctive canary values: an auth token and a webhook key in the tenant's secret; a body, a
WhatsApp ProfileName, a phone number, an e-mail address, a display name and a subject in the request, and canaries in
the odd places a hostile client may put them (unknown field names, header values, query strings, part names and file
names, JSON that does not parse, the AWS error messages that quote a request). Every output is then searched:

- the log lines at INFO and above (``runtime.logs.JsonFormatter``): no canary at all;
- the log lines at DEBUG (a container with ``LOG_LEVEL=DEBUG``): no secret;
- the EMF metrics documents (stdout) and the X-Ray subsegments (UDP, as the daemon receives them): no canary;
- the webhook's answer (or the text of what the handler raised): no canary.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from runtime import tracing
from runtime.logs import JsonFormatter
from tests.runtime.test_shadow import ops, shadowed  # noqa: F401 - the fixtures of the shadow tests
from tests.support.bundles import ROUTING, Ops
from tests.support.email import add_email_world, email_event
from tests.support.webhooks import rest_event, sms_params, status_params, whatsapp_params
from tests.support.world import SMS_SECRET, WA_SECRET, World
from tools.sendgrid_events import Attachment, Email, KeyPair

TOKEN = "c0ffee11c0ffee22c0ffee33c0ffee44"
WEBHOOK_KEY = "webhook-key-canary-7f3a9e"
BODY = "Canary body: meet me at the old mill"
PROFILE_NAME = "Zelda Quillfeather"
PHONE = "+447700900123"
ADDRESS = "zelda.quill@example.org"
DISPLAY_NAME = "Ottoline Brackwater"
SUBJECT = "Canary subject: my divorce papers"
ODD = "canary-odd-place"
SECRETS = (TOKEN, WEBHOOK_KEY)
PERSONAL = (BODY, PROFILE_NAME, "Quillfeather", PHONE, PHONE[1:], ADDRESS, DISPLAY_NAME, "Brackwater", SUBJECT, ODD)
TRACE_ROOT = "1-5759e988-bd862e3fe1be46a994272793"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Outputs:
    """What one scenario made the function write, by channel."""

    logs: list[str]
    emf: list[str]
    xray: list[str]
    answers: list[str]

    def outcomes(self) -> list[str]:
        return [str(json.loads(line)["outcome"]) for line in self.logs if '"message": "event"' in line]


def _found(texts: list[str], values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, text[:300]) for text in texts for value in values if value in text]


def _received(sock: socket.socket) -> list[str]:
    documents = []
    while True:
        try:
            documents.append(sock.recv(65535).decode().split("\n", 1)[1])
        except TimeoutError:
            return documents


def _context() -> Any:
    return SimpleNamespace(aws_request_id="req-sweep", get_remaining_time_in_millis=lambda: 6000)


def _call(handler: Callable[..., Any], event: dict[str, Any]) -> str:
    try:
        return json.dumps(handler(event, _context()))
    except Exception as exc:  # noqa: BLE001 - a transient fault: Lambda logs the text of what the handler raised
        return f"{type(exc).__name__}: {exc}"


def _tenant(world: World) -> None:
    """The user's WhatsApp/SMS conversation and the tenant's secret, holding the token and the webhook key."""
    world.add_user_conversation(PHONE, "ci-sweep")
    secret = {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY}
    for name in (WA_SECRET, SMS_SECRET):
        world.create_secret(name, json.dumps(secret))


def _message(**extra: str) -> dict[str, str]:
    return {**whatsapp_params(body=BODY, ProfileName=PROFILE_NAME, From=f"whatsapp:{PHONE}", WaId=PHONE[1:]), **extra}


def _email(**fields: Any) -> Email:
    kept: dict[str, Any] = {
        "sender": f"{DISPLAY_NAME} <{ADDRESS}>",
        "subject": SUBJECT,
        "text": BODY,
        "html": f"<p>{BODY}</p>",
        "envelope_from": ADDRESS,
    }
    return Email(**{**kept, **fields})


def _email_tenant(world: World) -> None:
    add_email_world(
        world,
        primary_channel=ADDRESS,
        gsi_recipient_email=ADDRESS,
        recipient_email=ADDRESS,
        conversation_id=f"ci-sweep#pi-sweep#0c1d2e3f#{ADDRESS}",
    )


Scenario = Callable[[World, Callable[..., Any], Any], list[str]]
SCENARIOS: dict[str, tuple[Scenario, list[str]]] = {}


def scenario(*outcomes: str) -> Callable[[Scenario], Scenario]:
    def register(run: Scenario) -> Scenario:
        SCENARIOS[run.__name__] = (run, list(outcomes))
        return run

    return register


@scenario("QUEUED")
def whatsapp_queued(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    return [_call(handler, rest_event("whatsapp", _message(), token=TOKEN))]


@scenario("HANDED_OFF")
def whatsapp_handed_off(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    world.add_user_conversation(PHONE, "ci-sweep", hand_off_to_human=True)
    world.create_secret(WA_SECRET, json.dumps({"twilio_auth_token": TOKEN}))
    return [_call(handler, rest_event("whatsapp", _message(), token=TOKEN))]


@scenario("INVALID_SIGNATURE", "INVALID_SIGNATURE")
def signature_refused(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    settings = {"X-Twilio-Webhooks-Signature-Settings": f"key={ODD},algorithm={BODY}"}
    return [
        _call(handler, rest_event("whatsapp", _message(), token=WEBHOOK_KEY[::-1])),
        _call(handler, rest_event("whatsapp", _message(), token=WEBHOOK_KEY, headers=settings)),
    ]


@scenario("QUEUED")
def odd_places(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    params = _message(**{f"{ODD}-{PROFILE_NAME}": BODY, "ChannelMetadata": '{"data": "' + BODY, "ListTitle": SUBJECT})
    headers = {"X-Client-Note": f"{ODD} {BODY}", "User-Agent": PROFILE_NAME}
    event = rest_event("whatsapp", params, token=TOKEN, headers=headers, query={ODD: [BODY, PHONE]})
    return [_call(handler, event)]


@scenario("PARSING_ERROR", "PARSING_ERROR", "PARSING_ERROR", "PARSING_ERROR")
def parse_refusals(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    over_long = _message(Body=BODY * 3000)
    return [
        _call(handler, rest_event("whatsapp", _message(From=f"whatsapp:{PROFILE_NAME}"), token=TOKEN)),
        _call(handler, rest_event("whatsapp", _message(To=ADDRESS), token=TOKEN)),
        _call(handler, rest_event("whatsapp", over_long, token=TOKEN)),
        _call(handler, rest_event("whatsapp", _message(MessageSid=BODY), token=TOKEN)),
    ]


@scenario("PARSING_ERROR")
def misrouted(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    return [_call(handler, rest_event("whatsapp", sms_params(body=BODY, From=PHONE), token=TOKEN))]


@scenario("CONVERSATION_NOT_FOUND")
def stranger(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    params = _message(From="whatsapp:+447700900999", WaId="447700900999")
    return [_call(handler, rest_event("whatsapp", params, token=TOKEN))]


@scenario("STATUS_CALLBACK")
def status_callback(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _tenant(world)
    params = {**status_params(), "To": f"whatsapp:{PHONE}", "ErrorMessage": BODY, "ProfileName": PROFILE_NAME}
    return [_call(handler, rest_event("whatsapp", params, token=TOKEN))]


@scenario("SECRET_FETCH_FAILED", "DB_TRANSIENT_ERROR", "STAGE_WRITE_ERROR", "QUEUE_ERROR")
def aws_faults_quoting_the_request(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    """AWS error messages may quote the item or the request: none of their text is written anywhere."""
    _tenant(world)
    quoted = f"One or more parameter values were invalid: {BODY} from {PHONE} ({TOKEN})"
    answers = []
    stage = world.resources.stage_table
    for call, code, where in (
        ("secretsmanager.GetSecretValue", "AccessDeniedException", None),
        ("dynamodb.Query", "ProvisionedThroughputExceededException", None),
        ("dynamodb.PutItem", "ValidationException", lambda params: params.get("TableName") == stage),
        ("sqs.SendMessage", "InvalidParameterValue", None),
    ):
        aws.fail(call, code, message=quoted, times=1, where=where)
        sid = f"SM{len(answers):032d}"
        params = _message(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
        answers.append(_call(handler, rest_event("whatsapp", params, token=TOKEN)))
    return answers


@scenario("QUEUED")
def email_queued(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _email_tenant(world)
    attachment = Attachment(f"{ODD} {DISPLAY_NAME}.pdf", "application/pdf", BODY.encode())
    copied = f"{PROFILE_NAME} <{ADDRESS}>"
    headers = {"X-Mailer-Note": f"{ODD} {BODY}", "Reply-To": f"{DISPLAY_NAME} <{ADDRESS}>"}
    return [_call(handler, email_event(_email(cc=copied, attachments=(attachment,), extra_headers=headers)))]


@scenario("QUEUED", "REPLAY")
def email_replayed(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _email_tenant(world)
    event = email_event(_email())
    return [_call(handler, event), _call(handler, event)]


@scenario("INVALID_SIGNATURE", "INVALID_SIGNATURE")
def email_signature_refused(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _email_tenant(world)
    return [
        _call(handler, email_event(_email(), key=KeyPair())),
        _call(handler, email_event(_email(), timestamp=1)),
    ]


@scenario("PARSING_ERROR", "PARSING_ERROR", "PARSING_ERROR")
def email_parse_refusals(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _email_tenant(world)
    boundary = "xYzZY"
    bad_part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{ODD} {BODY}"; filename="{PROFILE_NAME}"\r\n'
        f"X-{ODD}: {ADDRESS}\r\n{BODY}\r\n--{boundary}--\r\n"
    ).encode()
    repeated = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="from"\r\n\r\n{DISPLAY_NAME} <{ADDRESS}>\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="from"\r\n\r\n{PROFILE_NAME} <{ADDRESS}>\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    no_sender = _email(sender=f"{DISPLAY_NAME} {SUBJECT}", envelope_from="")
    return [
        _call(handler, email_event(body=bad_part)),
        _call(handler, email_event(body=repeated)),
        _call(handler, email_event(no_sender)),
    ]


@scenario("CONVERSATION_NOT_FOUND")
def email_stranger(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    add_email_world(world)
    return [_call(handler, email_event(_email()))]


@scenario("DB_TRANSIENT_ERROR")
def email_transient(world: World, handler: Callable[..., Any], aws: Any) -> list[str]:
    _email_tenant(world)
    aws.fail("dynamodb.Query", "InternalServerError", status=500, message=f"quoting {ADDRESS} and {SUBJECT}")
    return [_call(handler, email_event(_email()))]


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """A UDP socket standing in for the X-Ray daemon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()
        tracing.reset()


@pytest.fixture
def sweep(world: World, cold_start: Any, daemon: socket.socket, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(name: str, level: str) -> Outputs:
        lines = _Lines()
        root = logging.getLogger()
        root.addHandler(lines)
        try:
            container = cold_start(
                LOG_LEVEL=level,
                TRACING_ENABLED="true",
                AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}",
                _X_AMZN_TRACE_ID=f"Root={TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1",
            )
            capsys.readouterr()
            answers = SCENARIOS[name][0](world, container.handler, container.aws)
        finally:
            root.removeHandler(lines)
        out = capsys.readouterr()
        emf = [line for line in out.out.splitlines() if '"_aws"' in line]
        return Outputs(lines.lines, emf, _received(daemon), answers)

    return run


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_output_at_info_carries_a_secret_or_personal_data(name: str, sweep: Any) -> None:
    outputs: Outputs = sweep(name, "INFO")

    assert outputs.outcomes() == SCENARIOS[name][1]
    assert outputs.emf and outputs.xray
    canaries = SECRETS + PERSONAL
    assert _found(outputs.logs, canaries) == []
    assert _found(outputs.emf, canaries) == []
    assert _found(outputs.xray, canaries) == []
    assert _found(outputs.answers, canaries) == []


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_at_debug_no_output_carries_a_secret(name: str, sweep: Any) -> None:
    outputs: Outputs = sweep(name, "DEBUG")

    assert any('"level": "DEBUG"' in line for line in outputs.logs)
    assert _found(outputs.logs, SECRETS) == []
    assert _found(outputs.emf + outputs.xray + outputs.answers, SECRETS + PERSONAL) == []


NIGHT_ROUTING = ROUTING.replace(
    "rules:\n",
    """rules:
  - id: sent_at_night
    description: A message whose text is a late hour goes to a person.
    when: "hour(request.body || '2026-01-01T12:00:00Z', 'Europe/London') >= `22`"
    then: {target: handoff}
""",
    1,
).replace(
    "tests:\n",
    """tests:
  - name: a late hour goes to a person
    given: {request: {channel: whatsapp, body: "2026-11-25T22:30:00Z"}, conversation: {}}
    expect: {rule: sent_at_night, target: handoff}
""",
    1,
)


def test_a_shadow_candidate_failing_on_the_body_writes_none_of_it(
    ops: Ops,  # noqa: F811
    shadowed: Callable[[], Any],  # noqa: F811
    world: World,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The candidate's rule fails on the text it reads (no ISO time): its verdict is logged, never the text."""
    ops.edit("40_routing.yaml", NIGHT_ROUTING)
    ops.publish("--shadow")
    container = shadowed()
    world.add_conversation()
    lines = _Lines()
    logging.getLogger().addHandler(lines)
    capsys.readouterr()
    try:
        params = whatsapp_params(body=BODY, ProfileName=PROFILE_NAME, ListTitle=SUBJECT)
        answer = container.application.handle(rest_event("whatsapp", params), _context())
    finally:
        logging.getLogger().removeHandler(lines)

    assert answer["statusCode"] == 200
    [mismatch] = [json.loads(line) for line in lines.lines if '"message": "shadow_mismatch"' in line]
    assert (mismatch["candidate"]["outcome"], mismatch["candidate"]["rules"]["routing"]) == (
        "INTERNAL_ERROR",
        "sent_at_night",
    )
    emf = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any('"ShadowMismatches":1' in line for line in emf)
    assert _found(lines.lines + emf + [json.dumps(answer)], SECRETS + PERSONAL) == []
