"""pipeline-serve's API Gateway part: HTTP requests to REST proxy events, handler results to HTTP answers."""

from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from moto import mock_aws

from runtime.apigateway import http_request
from steps.support import public_url
from tests.support.webhooks import EMPTY_TWIML, sign, whatsapp_params
from tools.localaws import provision, put_secrets
from tools.serve import Gateway, LocalContext, _Server, gateway_event, main

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1:3000"
FORM = [("Body", "hi there"), ("MediaUrl0", ""), ("Body", "again")]


def request(path: str = "/prod/whatsapp", *, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Any:
    return gateway_event(
        "POST", path, headers or [("Host", HOST), ("X-Twilio-Signature", "sig")], body, stage="prod", request_id="r-1"
    )


def test_a_request_under_the_stage_becomes_a_rest_proxy_event_as_api_gateway_builds_it() -> None:
    event = request("/prod/whatsapp?b=2&a=1&a=", body=urlencode(FORM).encode())
    assert (event["path"], event["resource"], event["httpMethod"]) == ("/whatsapp", "/whatsapp", "POST")
    context = event["requestContext"]
    assert (context["path"], context["stage"], context["requestId"], context["domainName"]) == (
        "/prod/whatsapp",
        "prod",
        "r-1",
        HOST,
    )
    assert event["multiValueQueryStringParameters"] == {"b": ["2"], "a": ["1", ""]}
    assert event["queryStringParameters"] == {"b": "2", "a": ""}
    assert (event["body"], event["isBase64Encoded"]) == (urlencode(FORM), False)
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["multiValueHeaders"]["Host"] == [HOST]


def test_a_trailing_slash_stays_in_the_path_but_not_in_the_resource_template() -> None:
    event = request("/prod/whatsapp/")
    assert (event["path"], event["resource"], event["requestContext"]["resourcePath"]) == (
        "/whatsapp/",
        "/whatsapp",
        "/whatsapp",
    )
    assert event["requestContext"]["path"] == "/prod/whatsapp/"


def test_the_handler_rebuilds_the_url_the_client_used() -> None:
    http = http_request(request())
    assert public_url(http) == f"http://{HOST}/prod/whatsapp"
    tunnelled = request(headers=[("Host", "abc.ngrok.app"), ("X-Forwarded-Proto", "https")])
    assert public_url(http_request(tunnelled)) == "https://abc.ngrok.app/prod/whatsapp"


def test_bodies_that_are_not_text_arrive_base64_and_repeated_headers_are_kept() -> None:
    event = request(headers=[("Host", HOST), ("X-A", "1"), ("X-A", "2")], body=b"\xff\x00")
    assert (event["body"], event["isBase64Encoded"]) == (base64.b64encode(b"\xff\x00").decode(), True)
    assert (event["multiValueHeaders"]["X-A"], event["headers"]["X-A"]) == (["1", "2"], "2")
    assert request()["body"] is None


@pytest.mark.parametrize("path", ["/whatsapp", "/production/whatsapp", "/", "/prodwhatsapp"])
def test_paths_outside_the_stage_are_not_events(path: str) -> None:
    assert request(path) is None


def test_the_context_counts_down_from_the_function_timeout() -> None:
    context = LocalContext("r-1", timeout_seconds=6.0)
    assert 5_000 < context.get_remaining_time_in_millis() <= 6_000
    assert LocalContext("r-2", timeout_seconds=0.0).get_remaining_time_in_millis() == 0


def answered(result: Any = None, error: Exception | None = None) -> Any:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        if error is not None:
            raise error
        return result

    return Gateway(invoke, "prod").handle("POST", "/prod/whatsapp", [("Host", HOST)], b"")


def test_a_raised_exception_is_api_gateways_502() -> None:
    answer = answered(error=RuntimeError("QUEUE_TRANSIENT_ERROR: send failed"))
    assert (answer.status, answer.body) == (502, b'{"message": "Internal server error"}')


@pytest.mark.parametrize(
    "result",
    [
        None,
        "OK",
        {"body": "no status"},
        {"statusCode": "200"},
        {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
        {"statusCode": 200, "headers": ["Content-Type", "text/xml"]},
        {"statusCode": 200, "multiValueHeaders": {"Set-Cookie": "a=1"}},
    ],
)
def test_a_malformed_proxy_response_is_a_502(result: Any) -> None:
    assert answered(result).status == 502


def test_the_proxy_response_becomes_the_http_answer() -> None:
    result = {
        "statusCode": 200,
        "headers": {"Content-Type": "text/xml"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"<Response/>").decode(),
        "isBase64Encoded": True,
    }
    answer = answered(result)
    assert (answer.status, answer.body) == (200, b"<Response/>")
    assert [h for h in answer.headers if h[0] != "x-amzn-RequestId"] == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "text/xml"),
    ]
    plain = answered({"statusCode": 204})
    assert (plain.body, ("Content-Type", "application/json") in plain.headers) == (b"", True)


def test_outside_the_stage_the_handler_is_not_called() -> None:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        raise AssertionError("called")

    answer = Gateway(invoke, "prod").handle("POST", "/whatsapp", [("Host", HOST)], b"")
    assert (answer.status, answer.body) == (403, b'{"message": "Missing Authentication Token"}')


def test_the_real_handler_accepts_a_request_signed_over_the_local_url(world, lambda_handler) -> None:
    world.add_conversation()
    world.add_default_secrets()
    params = whatsapp_params()
    headers = [("Host", HOST), ("X-Twilio-Signature", sign(f"http://{HOST}/prod/whatsapp", params))]
    answer = Gateway(lambda_handler, "prod").handle("POST", "/prod/whatsapp", headers, urlencode(params).encode())
    assert (answer.status, answer.body.decode()) == (200, EMPTY_TWIML)
    assert len(world.sent("whatsapp")) == 1


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["pipeline-serve"] == "tools.serve:main"


@pytest.mark.parametrize("args", [["--provision"], ["--world", "w.yaml"], ["--moto", "--endpoint-url", "http://x"]])
def test_inconsistent_options_are_refused(args: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2


def test_a_broken_world_file_is_reported_with_its_position(tmp_path: Path, capsys) -> None:
    world = tmp_path / "world.yaml"
    world.write_text("conversations:\n  - primary_channel: '+1'\n")
    assert main(["--moto", "--world", str(world)]) == 2
    assert f"{world.name}:2" in capsys.readouterr().err


# Issue 15 (7): pipeline-serve answers as API Gateway would, and survives what a client may send.


def routed(invoke: Any = None) -> Gateway:
    return Gateway(invoke or (lambda event, context: {"statusCode": 200, "body": "ok"}), "prod", routes={"whatsapp"})


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/prod/whatsapp"), ("POST", "/prod/unknown"), ("POST", "/prod/x/whatsapp"), ("DELETE", "/prod/whatsapp")],
)
def test_only_the_deployed_routes_reach_the_handler(method: str, path: str) -> None:
    answer = routed().handle(method, path, [("Host", HOST)], b"")
    assert (answer.status, answer.body) == (403, b'{"message": "Missing Authentication Token"}')
    assert routed().handle("POST", "/prod/whatsapp", [("Host", HOST)], b"").status == 200


@contextmanager
def listening(gateway: Gateway) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), quiet=True)
    server.gateway = gateway
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        return connection.recv(65536)


@pytest.mark.parametrize(
    ("length", "status"),
    [("abc", b"400"), ("-1", b"400"), (str(20 * 1024 * 1024), b"413")],
)
def test_an_unreadable_or_oversized_content_length_is_refused_without_reading_the_body(
    length: str, status: bytes, capsys
) -> None:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        raise AssertionError("called")

    with listening(routed(invoke)) as port:
        head = f"POST /prod/whatsapp HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {length}\r\n\r\n".encode()
        answer = raw_exchange(port, head)
    assert answer.split(b" ", 2)[1] == status
    assert "Traceback" not in capsys.readouterr().err


def test_fifty_clients_at_once_are_all_answered() -> None:
    def slow(event: dict[str, Any], context: Any) -> Any:
        time.sleep(0.005)
        return {"statusCode": 200, "body": "ok"}

    with listening(routed(slow)) as port:
        start = threading.Barrier(50)

        def post(_: int) -> int:
            start.wait()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", "/prod/whatsapp", body=b"", headers={"Host": HOST})
                return connection.getresponse().status
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(post, range(50)))
    assert statuses == [200] * 50


def test_the_event_carries_its_arrival_time_as_api_gateway_sets_it() -> None:
    """``pipeline-dryrun`` replays a captured event at its ``requestTimeEpoch``: one served here must carry it too."""
    events: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        events.append(event)
        return {"statusCode": 200, "body": "ok"}

    before = time.time() * 1000
    Gateway(invoke, "prod").handle("POST", "/prod/whatsapp", [("Host", HOST)], b"")
    arrived = events[0]["requestContext"].get("requestTimeEpoch")
    assert isinstance(arrived, int) and before - 1 <= arrived <= time.time() * 1000


def test_an_event_waiting_for_the_one_before_it_still_gets_the_whole_timeout() -> None:
    first_running, remaining = threading.Event(), []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        remaining.append(context.get_remaining_time_in_millis())
        if len(remaining) == 1:
            first_running.set()
            time.sleep(2.5)
        return {"statusCode": 200, "body": "ok"}

    # A clock that ran while the second event queued would leave it at most 1.5 s; the 1.5 s above the threshold
    # are for a loaded machine to hand the second event over.
    gateway = Gateway(invoke, "prod", timeout_seconds=4.0)
    first = threading.Thread(target=gateway.handle, args=("POST", "/prod/whatsapp", [("Host", HOST)], b""))
    first.start()
    assert first_running.wait(5)
    assert gateway.handle("POST", "/prod/whatsapp", [("Host", HOST)], b"").status == 200
    first.join()
    assert remaining[1] > 2_500, "the second event's clock ran while it queued behind the first"


def test_provisioning_twice_keeps_the_resources_and_updates_the_secrets() -> None:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        dynamodb, sqs, secrets = (session.client(name) for name in ("dynamodb", "sqs", "secretsmanager"))
        first = provision(dynamodb, sqs)
        put_secrets(secrets, {"a/b": {"twilio_auth_token": "one"}})
        assert provision(dynamodb, sqs) == first
        put_secrets(secrets, {"a/b": {"twilio_auth_token": "two"}})
        assert json.loads(secrets.get_secret_value(SecretId="a/b")["SecretString"]) == {"twilio_auth_token": "two"}


def without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere; whatever ``main`` puts in the environment is taken out after the test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.setenv(name, "")  # recorded, so that the value main sets is removed again
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "set by main; restored after the test")


def test_an_endpoint_url_without_credentials_gets_the_emulators_stand_ins(monkeypatch, tmp_path: Path) -> None:
    import tools.serve

    without_credentials(monkeypatch, tmp_path)
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: 0)
    assert main(["--endpoint-url", "http://127.0.0.1:9", "--port", "0"]) == 0
    assert boto3.session.Session().get_credentials() is not None


def test_an_endpoint_url_without_credentials_is_the_endpoint_used_and_no_moto_is_started(
    monkeypatch, tmp_path: Path
) -> None:
    import tools.serve

    without_credentials(monkeypatch, tmp_path)

    def no_moto(port: int) -> Any:
        raise AssertionError("--endpoint-url names a running emulator: no moto server is started")

    seen: list[str] = []
    monkeypatch.setattr(tools.serve, "start_moto", no_moto)
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: seen.append(os.environ["AWS_ENDPOINT_URL"]) or 0)
    assert main(["--endpoint-url", "http://127.0.0.1:9", "--port", "0"]) == 0
    assert seen == ["http://127.0.0.1:9"]


def test_provisioning_refused_by_a_running_emulator_is_not_blamed_on_the_emulator_not_running(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    """Defect: every AWS failure while provisioning was printed with "(is the emulator running?)", an AccessDenied
    answered by the emulator itself too. The hint is for a connection that failed; an answered error is shown alone."""
    import moto.settings
    from moto.server import ThreadedMotoServer

    import tools.serve

    without_credentials(monkeypatch, tmp_path)
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: 0)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        iam.create_user(UserName="no-permissions")
        key = iam.create_access_key(UserName="no-permissions")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the emulator enforces IAM from now

        assert main(["--endpoint-url", endpoint, "--provision", "--port", "0"]) == 2
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert err.startswith(f"pipeline-serve: error: cannot create the pipelines' resources at {endpoint}: "), err
    assert "403" in err and "is the emulator running" not in err

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nothing = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: the connection is refused
        assert main(["--endpoint-url", nothing, "--provision", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pipeline-serve: error: cannot create the pipelines' resources at {nothing} "), err
    assert f"{nothing} (is the emulator running?): " in err


# An address that cannot be listened on is a usage error, found before moto starts or anything is provisioned.


def no_moto(port: int) -> Any:
    raise AssertionError("moto was started although the server cannot listen")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_port_in_use_is_refused_before_moto_starts(monkeypatch, capsys, taken_port: int) -> None:
    import tools.serve

    monkeypatch.setattr(tools.serve, "start_moto", no_moto)
    assert main(["--moto", "--port", str(taken_port)]) == 2
    assert capsys.readouterr().err == (
        f"pipeline-serve: error: cannot listen on 127.0.0.1:{taken_port}: Address already in use\n"
    )


def test_a_host_that_does_not_resolve_is_refused_before_moto_starts(monkeypatch, capsys) -> None:
    import tools.serve

    monkeypatch.setattr(tools.serve, "start_moto", no_moto)
    assert main(["--moto", "--host", "999.1.1.1", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("pipeline-serve: error: cannot listen on 999.1.1.1:0: ")


def test_outside_a_project_the_server_says_so_before_moto_starts(monkeypatch, capsys, tmp_path: Path) -> None:
    import tools.serve

    monkeypatch.setattr(tools.serve, "start_moto", no_moto)
    monkeypatch.chdir(tmp_path)
    assert main(["--moto", "--port", "0"]) == 2
    assert capsys.readouterr().err == (
        "pipeline-serve: error: the configuration cannot run:\n"
        "pipelines:1:1: no pipeline files (*.yaml) found; run pipeline-serve in the project's directory\n"
    )


def test_a_pipeline_that_does_not_load_is_refused_before_moto_starts(monkeypatch, capsys, tmp_path: Path) -> None:
    import tools.serve

    monkeypatch.setattr(tools.serve, "start_moto", no_moto)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "rules").mkdir()
    source = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text(encoding="utf-8")
    (tmp_path / "pipelines" / "twilio_inbound.yaml").write_text(source.replace("uses: twilio.parse", "uses: nope"))
    monkeypatch.chdir(tmp_path)
    assert main(["--moto", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pipeline-serve: error: the configuration cannot run:\npipelines/")
    assert "pipelines/twilio_inbound.yaml:" in err
    assert "moto server at" not in err


def test_a_table_local_aws_cannot_create_is_refused_before_moto_starts(monkeypatch, capsys, tmp_path: Path) -> None:
    # Before: a ConfigError traceback from provisioning, after moto had started.
    import tools.serve

    monkeypatch.setattr(tools.serve, "start_moto", no_moto)
    (tmp_path / "pipelines").mkdir()
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    source = (ROOT / "pipelines" / "email_inbound.yaml").read_text(encoding="utf-8")
    tables = "tables:\n  outbox: ${env:OUTBOX_TABLE_NAME:-outbox}\n"
    (tmp_path / "pipelines" / "email_inbound.yaml").write_text(source.replace("tables:\n", tables, 1))
    monkeypatch.chdir(tmp_path)
    assert main(["--moto", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pipeline-serve: error: the configuration cannot run:\npipelines/")
    assert "pipelines/email_inbound.yaml:18:11: table role 'outbox' has no known key schema" in err
    assert "moto server at" not in err


@pytest.mark.parametrize("option", ["--port", "--moto-port"])
@pytest.mark.parametrize("value", ["70000", "-1", "http"])
def test_a_port_outside_0_to_65535_is_an_argument_error(option: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--moto", option, value])
    assert stopped.value.code == 2
    assert f"argument {option}: " in capsys.readouterr().err


def test_a_moto_port_in_use_is_refused_instead_of_waiting_for_ever(capsys, taken_port: int) -> None:
    assert main(["--moto", "--port", "0", "--moto-port", str(taken_port)]) == 2
    assert f"cannot start moto's server on 127.0.0.1:{taken_port}: Address already in use" in capsys.readouterr().err


def test_the_command_on_a_port_in_use_prints_one_line_and_no_traceback(taken_port: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.serve", "--moto", "--port", str(taken_port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == f"pipeline-serve: error: cannot listen on 127.0.0.1:{taken_port}: Address already in use\n"


# API Gateway routes POST /prod/whatsapp/ to the /whatsapp resource and keeps the slash on the path; Twilio signs the
# console's URL exactly, so a webhook configured with the slash is signed over it.


def test_a_trailing_slash_reaches_the_channels_route() -> None:
    seen: list[str] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        seen.append(event["requestContext"]["path"])
        return {"statusCode": 200, "body": "ok"}

    assert routed(invoke).handle("POST", "/prod/whatsapp/", [("Host", HOST)], b"").status == 200
    assert seen == ["/prod/whatsapp/"]
    for path in ("/prod/whatsapp//", "/prod/", "/prod/x/whatsapp/"):
        assert routed(invoke).handle("POST", path, [("Host", HOST)], b"").status == 403, path


@pytest.mark.parametrize(("signed", "queued"), [("/prod/whatsapp/", 1), ("/prod/whatsapp", 0)])
def test_a_request_with_a_trailing_slash_is_checked_against_the_url_with_the_slash(
    world, lambda_handler, signed: str, queued: int
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    params = whatsapp_params()
    headers = [("Host", HOST), ("X-Twilio-Signature", sign(f"http://{HOST}{signed}", params))]
    gateway = Gateway(lambda_handler, "prod", routes={"whatsapp", "sms"})
    answer = gateway.handle("POST", "/prod/whatsapp/", headers, urlencode(params).encode())
    assert (answer.status, answer.body.decode()) == (200, EMPTY_TWIML)
    assert len(world.sent("whatsapp")) == queued


def access_log(capsys: pytest.CaptureFixture[str], targets: tuple[str, ...], malformed: str) -> str:
    """The console of a real server after a POST to each target (each answered 200) and one malformed request line."""
    server = _Server(("127.0.0.1", 0), quiet=False)
    server.gateway = routed()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        for target in targets:
            head = f"POST {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n".encode()
            assert raw_exchange(port, head).startswith(b"HTTP/1.1 200")
        assert b"Error code explanation: 400" in raw_exchange(port, f"GET {malformed} HTTP/1.1 extra\r\n\r\n".encode())
    finally:
        server.shutdown()
        server.server_close()
    return capsys.readouterr().err


def test_the_access_log_masks_the_values_of_the_query_string(capsys) -> None:
    """A webhook URL may carry a credential (``?key=…``): the console shows the names, as event capture keeps them."""
    credential = "qs-credential-0123456789abcdef"
    targets = (f"/prod/whatsapp?key={credential}&tenant=acme", f"/prod/whatsapp?{credential}")
    console = access_log(capsys, targets, f"/prod/x?key={credential}")
    assert credential not in console
    assert '"POST /prod/whatsapp?key=[masked]&tenant=[masked] HTTP/1.1" 200' in console
    assert '"POST /prod/whatsapp?[masked] HTTP/1.1" 200' in console
    assert '"GET /prod/x?key=[masked] HTTP/1.1 extra" 400' in console


def test_the_access_log_masks_a_query_value_holding_a_quote_whole(capsys) -> None:
    """' is allowed in a query unencoded (and a client may send "): the value is masked past it, not up to it."""
    secret = "tail-of-the-credential-0123456789"
    targets = (f"/prod/whatsapp?key=ab'{secret}", f'/prod/whatsapp?key=ab"{secret}&tenant=acme')
    console = access_log(capsys, targets, f"/prod/x?key=ab'{secret}")
    assert secret not in console
    assert '"POST /prod/whatsapp?key=[masked] HTTP/1.1" 200' in console
    assert '"POST /prod/whatsapp?key=[masked]&tenant=[masked] HTTP/1.1" 200' in console
    assert '"GET /prod/x?key=[masked] HTTP/1.1 extra" 400' in console


def test_invocations_run_on_the_main_thread_and_their_errors_reach_the_request() -> None:
    """SIGALRM (the shadow's and matches()'s bound) reaches the main thread only: the request threads hand over."""
    from tools.serve import MainThread

    main_thread = MainThread()
    on_main: list[bool] = []
    answers: list[Any] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        on_main.append(threading.current_thread() is threading.main_thread())
        if event.get("fail"):
            raise ValueError("a transient fault")
        if event.get("stop"):
            raise KeyboardInterrupt
        return {"statusCode": 200}

    def request_thread() -> None:
        handle = main_thread.invoker(invoke)
        answers.append(handle({}, None))
        for event in ({"fail": True}, {"stop": True}):
            try:
                handle(event, None)
            except Exception as exc:  # noqa: BLE001 - the answer the request thread gets
                answers.append(type(exc).__name__)

    thread = threading.Thread(target=request_thread, daemon=True)
    thread.start()
    with pytest.raises(KeyboardInterrupt):
        main_thread.run()
    thread.join(5)
    assert on_main == [True, True, True]
    assert answers == [{"statusCode": 200}, "ValueError", "RuntimeError"]


# A tunnel in front of pipeline-serve (cloudflared over QUIC, cloudflare/cloudflared#479, #1485) forwards a webhook's
# body with ``Transfer-Encoding: chunked`` and no Content-Length; API Gateway takes such a body whole.


def test_a_chunked_twilio_post_reaches_the_handler_whole_and_the_connection_stays_usable(world, lambda_handler) -> None:
    world.add_conversation()
    world.add_default_secrets()
    params = whatsapp_params(body="Hola 👋 a+b=c & 100% ok\nbye")
    body = urlencode(params).encode()
    with listening(Gateway(lambda_handler, "prod", routes={"whatsapp", "sms"})) as port:
        host = f"127.0.0.1:{port}"
        headers = {"Host": host, "X-Twilio-Signature": sign(f"http://{host}/prod/whatsapp", params)}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            # An iterable body is sent chunked (one chunk per piece), with no Content-Length.
            pieces = iter([body[:7], body[7:100], body[100:]])
            connection.request("POST", "/prod/whatsapp", body=pieces, headers=headers, encode_chunked=True)
            first = connection.getresponse()
            answers = [(first.status, first.read().decode())]
            # The chunks were all consumed: the next request on the connection is read as a request.
            connection.request("POST", "/prod/whatsapp", body=b"", headers={"Host": host})
            second = connection.getresponse()
            answers.append((second.status, second.read().decode()))
        finally:
            connection.close()
    assert answers == [(200, EMPTY_TWIML), (200, EMPTY_TWIML)]
    [row] = world.stage_rows()
    assert row["body"] == params["Body"]
    assert len(world.sent("whatsapp")) == 1


@pytest.mark.parametrize(
    ("coding", "body", "status"),
    [
        ("gzip, chunked", b"0\r\n\r\n", b"501"),
        ("chunked", b"zz\r\nabc\r\n0\r\n\r\n", b"400"),
        ("chunked", f"{20 * 1024 * 1024:x}\r\n".encode(), b"413"),
    ],
)
def test_a_transfer_coding_that_cannot_be_read_is_refused_without_calling_the_handler(
    coding: str, body: bytes, status: bytes, capsys
) -> None:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        raise AssertionError("called")

    with listening(routed(invoke)) as port:
        head = f"POST /prod/whatsapp HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: {coding}\r\n\r\n".encode()
        answer = raw_exchange(port, head + body)
    assert answer.split(b" ", 2)[1] == status
    assert "Traceback" not in capsys.readouterr().err


def chunked(head: str, body: bytes, size: int = 7) -> bytes:
    """A request whose body is sent in chunks of ``size`` bytes, each with an extension, and a trailer field."""
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\nX-Trailer: t\r\n\r\n"


def test_chunk_extensions_and_trailer_fields_are_skipped_and_the_connection_stays_in_step(
    world, lambda_handler
) -> None:
    """A chunked body as a tunnel may stream it (many small chunks, chunk extensions, a trailer field) is the body the
    handler gets, and the next request on the connection is answered as itself, not read from the body's rest."""
    world.add_conversation()
    world.add_default_secrets()
    params = whatsapp_params()
    signature = sign(f"http://{HOST}/prod/whatsapp", params)
    head = (
        f"POST /prod/whatsapp HTTP/1.1\r\nHost: {HOST}\r\nX-Twilio-Signature: {signature}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
    )
    gateway = Gateway(lambda_handler, "prod", routes={"whatsapp"})
    with listening(gateway) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(chunked(head, urlencode(params).encode()))
        answer = connection.makefile("rb")
        assert answer.readline() == b"HTTP/1.1 200 OK\r\n"
        headers = {}
        while (line := answer.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        assert answer.read(int(headers["content-length"])).decode() == EMPTY_TWIML
        connection.sendall(f"POST /prod/nowhere HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n".encode())
        assert answer.readline() == b"HTTP/1.1 403 Forbidden\r\n"
    assert len(world.sent("whatsapp")) == 1


# Against a real account (no --moto, no --endpoint-url) the server writes and sends for real. The platform's domain
# is then the Host the client sent, so without PUBLIC_BASE_URL or ALLOWED_HOSTS a request Twilio signed for the
# production URL, posted here with that Host, is valid; and without REPLAY_TABLE_NAME (the contract's variables
# alone) nothing refuses it as a replay: a captured request staged and triggered again, however old.
REAL_ACCOUNT_GUARDS = ("REPLAY_TABLE_NAME", "ALLOWED_HOSTS", "PUBLIC_BASE_URL")


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({}, "REPLAY_TABLE_NAME"),
        ({"ALLOWED_HOSTS": "abc123.ngrok.app"}, "REPLAY_TABLE_NAME"),
        ({"REPLAY_TABLE_NAME": "replay"}, "ALLOWED_HOSTS"),
    ],
    ids=["neither", "no replay records", "any Host"],
)
def test_against_a_real_account_the_server_needs_replay_records_and_its_hosts(
    settings: dict[str, str], missing: str, world, monkeypatch, capsys
) -> None:
    import tools.serve

    for name in (*REAL_ACCOUNT_GUARDS, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    served: list[bool] = []
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: served.append(True) or 0)

    assert main(["--port", "0"]) == 2
    assert served == []
    assert missing in capsys.readouterr().err


@pytest.mark.parametrize(
    "hosts", [{"ALLOWED_HOSTS": "abc123.ngrok.app"}, {"PUBLIC_BASE_URL": "https://x.example/prod"}]
)
def test_against_a_real_account_with_replay_records_and_its_hosts_the_server_starts(
    hosts: dict[str, str], world, monkeypatch
) -> None:
    import tools.serve

    for name in (*REAL_ACCOUNT_GUARDS, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPLAY_TABLE_NAME", world.resources.replay_table)
    for name, value in hosts.items():
        monkeypatch.setenv(name, value)
    served: list[bool] = []
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: served.append(True) or 0)
    assert main(["--port", "0"]) == 0
    assert served == [True]


def test_ctrl_c_while_starting_ends_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    """Defect: Ctrl-C before the server listened (an emulator slow to answer, moto starting, provisioning) printed a
    KeyboardInterrupt traceback through botocore's frames, as an interrupted start is not an error of the tool."""
    with socket.socket() as silent:  # an emulator that accepts the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.serve", "--port", "0", "--endpoint-url", endpoint, "--provision"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A shell's foreground command takes Ctrl-C (a parent may have left SIGINT ignored).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            silent.settimeout(60)
            waiting, _ = silent.accept()  # the start is creating the tables: Ctrl-C now
            with waiting:
                process.send_signal(signal.SIGINT)
                _, err = process.communicate(timeout=60)
        finally:
            process.kill()
            process.wait()
    assert "Traceback" not in err, err
    assert err.endswith("pipeline-serve: interrupted\n"), err
    assert process.returncode == 130


ALICE = {"From": "whatsapp:+447700900101", "To": "whatsapp:+14155238886", "Body": "hi"}  # examples/world.yaml
ACME_TOKEN = "9f86d081884c7d659a2feaa0c55ad015"


class Served:
    """``pipeline-serve --moto`` running in a copy of the project: post to it, read its event log lines."""

    def __init__(self, root: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.serve", "--moto", "--port", "0", "--quiet"],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=lambda s=stream, q=lines: [q.put(line) for line in s], daemon=True).start()
        listening = self.wait(self.err, "listening on http://")
        self.port = int(listening.split("listening on http://127.0.0.1:")[1].split("/")[0])

    @staticmethod
    def wait(lines: queue.Queue[str], text: str) -> str:
        while text not in (line := lines.get(timeout=60)):
            pass
        return line

    def post(self, sid: str) -> tuple[int, str]:
        """Alice's WhatsApp message ``sid``, signed as Twilio signs it: the status and the event's outcome."""
        url = f"http://127.0.0.1:{self.port}/prod/whatsapp"
        form = {**ALICE, "MessageSid": sid}
        headers = {"X-Twilio-Signature": sign(url, form, ACME_TOKEN)}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", "/prod/whatsapp", urlencode(form).encode(), headers)
            status = connection.getresponse().status
        finally:
            connection.close()
        if status != 200:
            return status, ""
        return status, json.loads(self.wait(self.out, '"message": "event"'))["outcome"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def test_a_rule_edited_while_serving_decides_the_next_event_as_a_new_container_would(tmp_path: Path) -> None:
    """Defect: pipeline-serve read pipelines/ and rules/ once, at start: a rule edited while it ran (the loop of
    someone pointing a Twilio number at it) went on deciding the old way, with no word that the edit was not in use.
    Now an edit is picked up at the next event, as by a new container; a file that no longer loads answers that
    event 502 (as a cold start that fails), its problem printed, until it is fixed."""
    for directory in ("pipelines", "rules", "examples"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    served = Served(tmp_path)
    try:
        assert served.post("SM" + "1" * 32) == (200, "QUEUED")
        routing = tmp_path / "rules" / "40_routing.yaml"
        shipped = routing.read_text(encoding="utf-8")
        routing.write_text(shipped.replace("then: {target_from: request.channel}", "then: {target: handoff}", 1))
        assert served.post("SM" + "2" * 32) == (200, "HANDED_OFF")

        routing.write_text(shipped.replace("kind: routing", "kind: [routing", 1), encoding="utf-8")
        assert served.post("SM" + "3" * 32) == (502, "")
        assert served.wait(served.err, "rules/40_routing.yaml").startswith("rules/40_routing.yaml:4:10: invalid YAML")
        routing.write_text(shipped, encoding="utf-8")
        assert served.post("SM" + "4" * 32) == (200, "BATCHED")  # the channel's queue again, under the first's lock
    finally:
        served.stop()


def test_a_client_that_sends_a_body_over_10_mb_whole_gets_the_413() -> None:
    """Defect: the 413 was written and the connection closed with the body unread, so a client that sends its body
    before reading (Python's http.client, requests; curl only waits for larger ones) got a broken pipe or a reset,
    never the answer. The rest of the body is now discarded (never kept) before the connection closes."""

    def invoke(event: dict[str, Any], context: Any) -> Any:
        raise AssertionError("called")

    with listening(routed(invoke)) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("POST", "/prod/whatsapp", body=b"a" * (11 * 1024 * 1024), headers={"Host": HOST})
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (413, b'{"message": "Request Too Long"}')
        finally:
            connection.close()


MEGABYTE = b"a" * (1024 * 1024)


@pytest.mark.parametrize(
    ("headers", "body", "answer"),
    [
        # Chunked, one 1 MB chunk at a time: the 11th passes the limit, the rest is still coming.
        ({}, [MEGABYTE] * 24, (413, b'{"message": "Request Too Long"}')),
        ({"Transfer-Encoding": "chunked"}, MEGABYTE * 11, (400, b'{"message": "Bad Request"}')),
        ({"Transfer-Encoding": "gzip, chunked"}, MEGABYTE * 11, (501, b'{"message": "Not Implemented"}')),
        ({"Content-Length": "11 MB"}, MEGABYTE * 11, (400, b'{"message": "Bad Request"}')),
    ],
    ids=["chunked over 10 MB", "malformed chunks", "another transfer coding", "unreadable Content-Length"],
)
def test_a_client_that_sends_a_refused_body_whole_gets_the_refusal(
    headers: dict[str, str], body: Any, answer: tuple[int, bytes]
) -> None:
    """Every refusal, not only the 413 of a Content-Length over 10 MB, is read by a client that sends its whole body
    before reading (an iterable body is sent chunked by http.client; a body with the headers given is sent as is)."""

    def invoke(event: dict[str, Any], context: Any) -> Any:
        raise AssertionError("called")

    with listening(routed(invoke)) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            chunked = isinstance(body, list)
            connection.request(
                "POST",
                "/prod/whatsapp",
                body=iter(body) if chunked else body,
                headers={"Host": HOST, **headers},
                encode_chunked=chunked,
            )
            response = connection.getresponse()
            assert (response.status, response.read()) == answer
        finally:
            connection.close()


def test_a_tunnel_that_rewrote_host_is_named_with_the_fix(world, lambda_handler, monkeypatch, capsys) -> None:
    """Defect: behind a tunnel that rewrites Host to the local address (ngrok --host-header=rewrite, and others that
    put the public name in X-Forwarded-Host only), every genuine message was refused INVALID_SIGNATURE (200, empty
    TwiML, as Twilio gets it) with no word of the URL checked: the signature is over the public URL. The server now
    says so once, with the two fixes."""
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    world.add_conversation()
    world.add_default_secrets()
    params = whatsapp_params()
    public = "abc123.ngrok-free.app"
    headers = [
        ("Host", "localhost:3000"),
        ("X-Forwarded-Host", public),
        ("X-Forwarded-Proto", "https"),
        ("X-Twilio-Signature", sign(f"https://{public}/prod/whatsapp", params)),
    ]
    gateway = Gateway(lambda_handler, "prod", routes={"whatsapp"})
    for _ in range(2):
        answer = gateway.handle("POST", "/prod/whatsapp", headers, urlencode(params).encode())
        assert (answer.status, answer.body.decode()) == (200, EMPTY_TWIML)
    assert world.sent("whatsapp") == []
    err = capsys.readouterr().err
    assert err.count("pipeline-serve: warning: ") == 1, err
    assert (
        "pipeline-serve: warning: the request came through a proxy that set Host to 'localhost:3000' and "
        f"X-Forwarded-Host to {public!r}: the signature is checked over https://localhost:3000/prod/whatsapp, "
        f"not the public URL Twilio signed; let the tunnel pass Host through (ngrok: without --host-header=rewrite), "
        f"or set PUBLIC_BASE_URL=https://{public}/prod\n"
    ) in err

    # A tunnel that passes Host through, as the docs' ngrok example does, is accepted and nothing is said.
    passed = [("Host", public), ("X-Forwarded-Host", public), *headers[2:]]
    answer = gateway.handle("POST", "/prod/whatsapp", passed, urlencode(params).encode())
    assert (answer.status, len(world.sent("whatsapp"))) == (200, 1)
    assert "warning" not in capsys.readouterr().err


def test_a_rewritten_host_is_not_warned_of_for_a_request_no_url_signature_covers(monkeypatch, capsys) -> None:
    """Defect: the warning that a tunnel rewrote Host ("the signature is checked over https://localhost:3000/…, not
    the public URL Twilio signed") was printed for any request, so an email (SendGrid signs its timestamp and body,
    no URL), accepted behind such a tunnel, read as if every message were refused. Only a request carrying Twilio's
    signature, which covers the URL, is warned of."""
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    gateway = Gateway(lambda event, context: {"statusCode": 200, "body": "ok"}, "prod", routes={"email", "whatsapp"})
    rewritten = [("Host", "localhost:3000"), ("X-Forwarded-Host", "abc123.ngrok-free.app")]
    email = [
        *rewritten,
        ("Content-Type", "multipart/form-data; boundary=x"),
        ("X-Twilio-Email-Event-Webhook-Signature", "s"),
    ]
    assert gateway.handle("POST", "/prod/email", email, b"--x--\r\n").status == 200
    assert "warning" not in capsys.readouterr().err

    assert gateway.handle("POST", "/prod/whatsapp", [*rewritten, ("X-Twilio-Signature", "s")], b"").status == 200
    assert "pipeline-serve: warning: the request came through a proxy that set Host" in capsys.readouterr().err


def capture_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "event-capture" and thread.is_alive()]


def test_a_reload_stops_the_capture_thread_of_the_function_it_replaces(world, monkeypatch, tmp_path: Path) -> None:
    """Defect: each reload (a rules edit) made a new function whose capture started a worker thread of its own, and
    the old one's stayed blocked on its queue for good: a thread leaked per edit over a day of editing. The replaced
    function's capture worker now ends (after the captures it was still given)."""
    from tools.serve import ServedFunction

    for directory in ("pipelines", "rules"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    monkeypatch.chdir(tmp_path)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="captures")
    monkeypatch.setenv("CAPTURE_S3_URI", "s3://captures/events/")
    before = len(capture_threads())
    served = ServedFunction()
    routing = tmp_path / "rules" / "40_routing.yaml"
    for edit in range(4):
        served.handle(request(), LocalContext(f"r-{edit}"))
        routing.write_text(routing.read_text(encoding="utf-8") + f"# edit {edit}\n", encoding="utf-8")
    served.handle(request(), LocalContext("r-last"))
    s3 = boto3.client("s3", region_name="us-east-1")

    def stored() -> int:
        return len(s3.list_objects_v2(Bucket="captures").get("Contents", []))

    # The workers end, and the last capture lands, in their own threads: waited for (generously, on a loaded machine).
    deadline = time.monotonic() + 30
    while (len(capture_threads()) > before + 1 or stored() < 5) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(capture_threads()) == before + 1
    assert stored() == 5


def test_a_reload_does_not_count_against_the_events_time_budget(monkeypatch, tmp_path: Path) -> None:
    """Defect: the function loaded again after an edit inside the event's invocation, so its load time was taken from
    the event's 13 s budget; a real Lambda's cold start (its init) runs before the invocation's clock starts."""
    import tools.serve
    from tools.serve import ServedFunction

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "rules").mkdir()
    pipeline = tmp_path / "pipelines" / "p.yaml"
    pipeline.write_text("name: p\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    seen: list[int] = []

    class Function:
        capture = None

        def handle(self, event: Any, context: Any) -> Any:
            seen.append(context.get_remaining_time_in_millis())
            return {"statusCode": 200}

    def slow_load() -> Any:
        time.sleep(2.0)  # counted, it would leave at most 11 s: 1 s below the threshold, and 1 s above for load
        return Function()

    monkeypatch.setattr(tools.serve, "load_function", Function)
    served = ServedFunction()
    monkeypatch.setattr(tools.serve, "load_function", slow_load)
    pipeline.write_text("name: p2\n", encoding="utf-8")
    served.handle({}, LocalContext("r-1", timeout_seconds=13.0))
    assert seen[0] > 12_000, seen


def test_the_hosts_warned_of_are_bounded(monkeypatch) -> None:
    """Defect: every (Host, X-Forwarded-Host) pair warned of was kept for the server's life, and any client can send
    new ones: the set grew without limit. Only the most recent pairs are kept."""
    import tools.serve

    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    gateway = routed()
    for number in range(2000):
        headers = [("Host", HOST), ("X-Forwarded-Host", f"t{number}.example"), ("X-Twilio-Signature", "s")]
        gateway._note_rewritten_host(headers, "/prod/whatsapp")
    assert len(gateway._rewritten) <= tools.serve.MAX_HOSTS_WARNED_OF


def test_hosts_warned_of_by_concurrent_requests_are_noted_and_stay_bounded(monkeypatch, capsys) -> None:
    """Defect: the pairs warned of were remembered outside any lock while the server answers each request in a
    thread of its own: two requests past the bound evicted the same pair (KeyError) or one iterated the pairs while
    another added one (RuntimeError), failing the request (no answer, a traceback), and the bound was passed."""
    import tools.serve

    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    gateway = routed()
    failures: list[str] = []

    def requests(thread: int) -> None:
        for number in range(2000):
            headers = [("Host", HOST), ("X-Forwarded-Host", f"t{thread}-{number}.example"), ("X-Twilio-Signature", "s")]
            try:
                gateway._note_rewritten_host(headers, "/prod/whatsapp")
            except Exception as exc:  # noqa: BLE001 - what the request's thread would have died of
                failures.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: the interleavings a busy server meets, within a second
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(requests, range(8)))
    finally:
        sys.setswitchinterval(interval)
    capsys.readouterr()
    assert failures == []
    assert len(gateway._rewritten) <= tools.serve.MAX_HOSTS_WARNED_OF


def test_a_refused_body_trickled_in_does_not_hold_a_server_thread_past_the_discard_time(monkeypatch) -> None:
    """Defect: the rest of a refused body was read while bytes kept coming, up to 64 MB, each read waiting up to 2 s:
    a client sending a byte a second held a server thread for days. The discard now ends after a total time too."""
    import tools.serve

    monkeypatch.setattr(tools.serve, "DISCARD_MAX_SECONDS", 1.0, raising=False)
    with listening(routed()) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"POST /prod/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n")
        started = time.monotonic()
        assert connection.recv(65536).startswith(b"HTTP/1.1 413")
        closed = False
        while not closed and time.monotonic() - started < 4:
            try:
                connection.sendall(b"a")
                connection.settimeout(0.1)
                closed = connection.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
        assert closed, "the server still reads the refused body"


def test_a_client_resetting_a_kept_alive_connection_prints_no_traceback(capsys) -> None:
    """Defect: a client that reset its kept-alive connection (a closed tab, a tunnel restarting) got the server to
    print socketserver's traceback of the ConnectionResetError, as if the server had failed."""
    import struct

    with listening(routed()) as port:
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.sendall(b"POST /prod/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()  # a reset, not a close
        time.sleep(0.5)
    assert "Traceback" not in capsys.readouterr().err


def test_an_edit_of_the_same_size_and_time_is_loaded_again(monkeypatch, tmp_path: Path) -> None:
    """Defect: an edit was noticed by each file's modification time and size only, and file times move by the
    filesystem's granularity (a second on HFS+ and some network or container mounts, a clock tick on Linux before
    6.13), not per write: a second save of the same length within the granularity of the event that read the first
    (an editor's save then its formatter's), or a file put back with its time kept (``cp -p``, ``rsync -t``), left
    the function deciding with the replaced rules, no word said. The files' content now says whether they changed."""
    import tools.serve
    from tools.serve import ServedFunction

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "rules").mkdir()
    pipeline = tmp_path / "pipelines" / "p.yaml"
    pipeline.write_text("name: p1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    loaded: list[str] = []

    class Function:
        capture = None

        def __init__(self) -> None:
            loaded.append(pipeline.read_text(encoding="utf-8"))

        def handle(self, event: Any, context: Any) -> Any:
            return {"statusCode": 200}

    monkeypatch.setattr(tools.serve, "load_function", Function)
    served = ServedFunction()
    before = pipeline.stat()
    pipeline.write_text("name: p2\n", encoding="utf-8")
    os.utime(pipeline, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same tick, as a fast second save has
    served.handle({}, LocalContext("r-1"))
    assert loaded == ["name: p1\n", "name: p2\n"]


def test_an_edit_to_a_plugins_code_says_it_needs_a_restart(monkeypatch, capsys, tmp_path: Path) -> None:
    """Defect: an edit to a plugin's module (a step's code) while pipeline-serve ran was taken by no event and said
    nothing: a module is imported once, so the edited step never ran, though an edit to rules/ is picked up and the
    operator, told edits are picked up at the next event, tested the old code. It is now said once, at the next event,
    that the module changed and that running it needs a restart."""
    import tools.serve
    from tools.serve import ServedFunction

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text("name: p\n", encoding="utf-8")
    plugin = tmp_path / "served_plugin_steps.py"
    plugin.write_text("LIMIT = 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PIPELINE_PLUGINS", "served_plugin_steps")
    monkeypatch.delitem(sys.modules, "served_plugin_steps", raising=False)
    __import__("served_plugin_steps")

    class Function:
        capture = None

        def handle(self, event: Any, context: Any) -> Any:
            return {"statusCode": 200}

    monkeypatch.setattr(tools.serve, "load_function", Function)
    served = ServedFunction()
    served.handle({}, LocalContext("r-1"))
    assert "restart" not in capsys.readouterr().err
    plugin.write_text("LIMIT = 22\n", encoding="utf-8")
    served.handle({}, LocalContext("r-2"))
    served.handle({}, LocalContext("r-3"))
    said = capsys.readouterr().err
    assert said.count("restart") == 1, said
    assert "served_plugin_steps.py changed" in said, said


def test_provisioning_an_emulator_that_is_not_running_is_a_named_error_not_a_traceback(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    """Before: `--provision --endpoint-url` with nothing listening there (LocalStack not started yet) ended in
    botocore's EndpointConnectionError traceback, through two chained exceptions."""
    without_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert main(["--port", "0", "--endpoint-url", "http://127.0.0.1:9", "--provision"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "pipeline-serve: error: cannot create the pipelines' resources at http://127.0.0.1:9 (is the emulator "
        'running?): Could not connect to the endpoint URL: "http://127.0.0.1:9/"\n'
    )


@contextmanager
def emulator() -> Iterator[str]:
    """moto's server in a thread of the test, empty (its backends are the process's): its endpoint URL."""
    from urllib.request import Request, urlopen

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        urlopen(Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
        yield endpoint
    finally:
        server.stop()


def provisioned_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]) -> dict[str, str]:
    """The environment ``main`` serves with after ``args``; what it sets is taken out after the test."""
    import tools.serve
    from tools.localaws import local_resources

    without_credentials(monkeypatch, tmp_path)
    for name in [*local_resources(lambda name: name).environment(), "RULES_BUCKET"]:
        if name not in os.environ:
            monkeypatch.setenv(name, "")  # recorded, so that the value main sets is removed again
            monkeypatch.delenv(name)
    seen: dict[str, str] = {}
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: seen.update(os.environ) or 0)
    assert main(["--port", "0", *args]) == 0
    return seen


def test_provisioning_keeps_the_table_and_queue_names_the_user_set_and_creates_them_under_those_names(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    """Defect: `--provision` (and `--moto`) replaced REPLAY_TABLE_NAME=my-replay (any table or queue variable the
    user had set) with its own name, conversations-replay, without a word: the function wrote elsewhere than asked."""
    with emulator() as endpoint:
        monkeypatch.setenv("REPLAY_TABLE_NAME", "my-replay")
        # Spelled otherwise than the URL moto answers (localhost, not 127.0.0.1): the user's text is kept as written.
        user_url = f"{endpoint.replace('127.0.0.1', 'localhost')}/123456789012/my-whatsapp"
        monkeypatch.setenv("WHATSAPP_QUEUE_URL", user_url)
        served = provisioned_environment(monkeypatch, tmp_path, ["--endpoint-url", endpoint, "--provision"])
        session = boto3.session.Session(region_name="us-east-1")
        dynamodb, sqs = session.client("dynamodb", endpoint_url=endpoint), session.client("sqs", endpoint_url=endpoint)
        tables = dynamodb.list_tables()["TableNames"]
        queues = sqs.list_queues()["QueueUrls"]
    assert served["REPLAY_TABLE_NAME"] == "my-replay"
    assert served["WHATSAPP_QUEUE_URL"] == user_url
    assert "my-replay" in tables and "conversations-replay" not in tables
    assert any(url.endswith("/my-whatsapp") for url in queues)
    assert not any(url.endswith("/whatsapp") for url in queues)
    # The others are provisioned under their local names, as before.
    assert served["CONVERSATIONS_TABLE_NAME"] == "conversations" and "conversations" in tables
    err = capsys.readouterr().err
    assert "REPLAY_TABLE_NAME=my-replay" in err and "lacks" not in err


def test_a_queue_url_set_to_no_queue_is_refused_by_name_before_anything_is_created(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    import tools.serve

    without_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("SMS_QUEUE_URL", "http://127.0.0.1:5000/")
    monkeypatch.setattr(tools.serve, "_serve", lambda args, server: 0)
    with emulator() as endpoint:
        assert main(["--port", "0", "--endpoint-url", endpoint, "--provision"]) == 2
        tables = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1").list_tables()["TableNames"]
    err = capsys.readouterr().err
    assert err == (
        "pipeline-serve: error: SMS_QUEUE_URL='http://127.0.0.1:5000/' names no queue: a queue URL ends with the "
        "queue's name (…/ACCOUNT/NAME)\n"
    )
    assert tables == []


def test_provisioning_with_rules_bucket_set_creates_that_bucket_versioned_as_the_templates(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    """Defect: `--provision` (and `--moto`) made no rules bucket, so with RULES_BUCKET=local-rules the function read
    no deployment (NoSuchBucket) and `pipeline-rules publish` failed until a bucket was made by hand."""
    with emulator() as endpoint:
        monkeypatch.setenv("RULES_BUCKET", "local-rules")
        served = provisioned_environment(monkeypatch, tmp_path, ["--endpoint-url", endpoint, "--provision"])
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        versioning = s3.get_bucket_versioning(Bucket="local-rules").get("Status")
        again = provisioned_environment(monkeypatch, tmp_path, ["--endpoint-url", endpoint, "--provision"])
    assert served["RULES_BUCKET"] == again["RULES_BUCKET"] == "local-rules"
    assert versioning == "Enabled"  # as template.yaml's RulesBucket: every earlier deployment document recoverable
    err = capsys.readouterr().err
    assert "RULES_BUCKET=local-rules" in err and "lacks" not in err


def test_a_rules_bucket_the_emulator_lacks_or_keeps_unversioned_is_named_at_start(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    with emulator() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="unversioned-rules")
        monkeypatch.setenv("RULES_BUCKET", "missing-rules")
        provisioned_environment(monkeypatch, tmp_path, ["--endpoint-url", endpoint])
        missing = capsys.readouterr().err
        monkeypatch.setenv("RULES_BUCKET", "unversioned-rules")
        provisioned_environment(monkeypatch, tmp_path, ["--endpoint-url", endpoint])
        unversioned = capsys.readouterr().err
    assert "\n  bucket 'missing-rules' (RULES_BUCKET) does not exist" in missing, missing
    assert "\n  bucket 'unversioned-rules' (RULES_BUCKET) is not versioned" in unversioned, unversioned
