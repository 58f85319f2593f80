"""``pipeline-serve``: the Lambda handler over HTTP on localhost, called the way API Gateway (REST) calls it.

A request under ``/{stage}/`` becomes a REST proxy event (payload 1.0): ``path`` and ``resource`` without the stage,
``requestContext.path`` with it, as API Gateway does; the handler's result becomes the HTTP response. As API
Gateway answers: a raised exception (a transient fault) is ``502 {"message": "Internal server error"}``, a path
outside the routes (``POST /{stage}/<channel>`` for each channel a pipeline serves; any other path or method)
``403 {"message": "Missing Authentication Token"}``, a body over 10 MB ``413``, an unreadable ``Content-Length``
``400``. A body in the chunked transfer coding (as a tunnel such as cloudflared forwards it) is read whole, as API
Gateway reads it; a malformed one is ``400``, any other transfer coding ``501``. One event is handled at a time, as
in one Lambda container, and on the main thread, as Lambda runs its handler (a shadow candidate and a ``matches()``
search are bounded by a ``SIGALRM`` timer, which only the main thread receives); the HTTP server answers from its
own threads. The signed URL is rebuilt from ``Host`` and ``X-Forwarded-Proto`` (``http`` unless the client, or a
tunnel in front, says otherwise), so a client signs ``http://127.0.0.1:PORT/prod/whatsapp``. As API Gateway does,
``POST /{stage}/<channel>/`` (a trailing slash) reaches the channel's route and keeps the slash on its path, so the
client signs the URL with the slash, as Twilio does.

AWS, one of:

- ``--moto``: start moto's server inside this process, create the pipelines' tables, indexes and queues there
  (``tools.needs``: whatever ``pipelines/*.yaml`` declare) and seed them from a world file (``--world``, else
  ``examples/world.yaml`` when present); a table or queue variable the user set names its resource and is kept,
  and with ``RULES_BUCKET`` set that bucket is created, versioned as the template's (``pipeline-rules`` deploys there);
- ``--endpoint-url URL``: an emulator that is already running (``--provision`` creates and seeds the resources,
  as ``--moto``); a table, index or queue the pipelines need, or a rules bucket, the emulator lacks is named at start;
- neither: the account of the default credentials, with the resource names from the environment. Writes and sends
  are then real, so the server starts only with replay records (``REPLAY_TABLE_NAME``) and a URL that does not
  believe any ``Host`` (``ALLOWED_HOSTS`` or ``PUBLIC_BASE_URL``): ``real_account_problems``.

The function is the project of the working directory, as every tool reads it: its ``pipelines/``, ``rules/`` and
plugins, loaded as ``handler`` loads its task root, and again before the next event once a file of ``pipelines/``
or ``rules/`` changed (``ServedFunction``); an edit to code (a plugin's module) is said to need a restart. The
listening socket is bound first, then the configuration is checked: an address that cannot be listened on (a port
in use, a host that does not resolve), a missing ``pipelines/`` or a pipeline that does not load is an error
(exit 2) before moto starts or anything is provisioned.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from engine.config import display_path, inspect_config
from engine.errors import ConfigError, Problem
from runtime.layout import PIPELINES_DIR, RULES_DIR, pipeline_files
from runtime.masking import MASKED_TEXT
from tools.console import EXIT_OK, EXIT_USAGE, console_script, load_project_plugins, problem_lines
from tools.events import rest_event
from tools.httpbody import REFUSAL_MESSAGES, BodyTooLong, read_chunked, refusal_status
from tools.requires import MissingTool, require
from tools.watch import code_stamp, configuration_stamp

if TYPE_CHECKING:
    from runtime.app import Application
    from tools.dryrun.world import WorldSpec

__all__ = [
    "BodyTooLong",
    "Gateway",
    "GatewayResponse",
    "LocalContext",
    "ServedFunction",
    "gateway_event",
    "load_function",
    "main",
    "query_values_masked",
    "project_problems",
    "provision_and_seed",
    "read_chunked",
    "real_account_problems",
]

# The project: the working directory, as for every tool (runtime.plugins, runtime.layout).
PROJECT = Path(".")
DEFAULT_WORLD = PROJECT / "examples" / "world.yaml"
# What the deployed function gets (template.yaml); the handler reads its time budget from it.
FUNCTION_TIMEOUT_SECONDS = 13.0
# API Gateway refuses larger payloads itself (413), before any integration runs.
MAX_BODY_BYTES = 10 * 1024 * 1024
# A refused body's rest is read and dropped (so that the client reads the refusal) up to this much, while it comes,
# for this long at most (a client trickling it in would otherwise hold a server thread).
DISCARD_MAX_BYTES = 64 * 1024 * 1024
DISCARD_IDLE_SECONDS = 2.0
DISCARD_MAX_SECONDS = 10.0
# Connections the listening socket queues while the server is busy (the standard library's default is 5).
LISTEN_BACKLOG = 128
# The (Host, X-Forwarded-Host) pairs remembered as warned of: any client can send new ones, so only the latest.
MAX_HOSTS_WARNED_OF = 64

Invoke = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The parts of the Lambda context object the handler reads."""

    aws_request_id: str
    function_name: str = "pipeline-serve"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        """A local stand-in for the function ARN."""
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@dataclass(frozen=True)
class GatewayResponse:
    """An HTTP answer: status, headers (repeatable) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def gateway_event(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    stage: str,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any] | None:
    """The REST proxy event for a request arriving now, or None when its path is outside ``/{stage}/``."""
    parts = urlsplit(target)
    prefix = f"/{stage}"
    if parts.path != prefix and not parts.path.startswith(prefix + "/"):
        return None
    pairs = list(headers)
    if not any(name.lower() == "x-forwarded-proto" for name, _ in pairs):
        pairs.append(("X-Forwarded-Proto", "http"))
    host = next((value for name, value in reversed(pairs) if name.lower() == "host"), None)
    return rest_event(
        method,
        parts.path,
        host=host,
        headers=pairs,
        body=body or None,
        stage=stage,
        query=parse_qsl(parts.query, keep_blank_values=True),
        source_ip=source_ip,
        request_id=request_id,
        request_time_ms=int(time.time() * 1000),
    )


def _json(status: int, document: Mapping[str, Any], request_id: str) -> GatewayResponse:
    body = json.dumps(document).encode()
    return GatewayResponse(status, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)], body)


class Gateway:
    """API Gateway's part: requests to events, one invocation at a time, results to responses.

    ``routes`` are the last path segments deployed as ``POST`` resources (None: any path under the stage).
    """

    def __init__(
        self,
        invoke: Invoke,
        stage: str,
        *,
        timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS,
        routes: Collection[str] | None = None,
    ) -> None:
        self._invoke = invoke
        self.stage = stage
        self._timeout = timeout_seconds
        self._routes = frozenset(routes) if routes is not None else None
        self._lock = threading.Lock()
        self._rewritten: dict[tuple[str, str], None] = {}  # in the order warned of
        self._rewritten_lock = threading.Lock()  # requests note pairs from their own threads, outside ``_lock``

    def _routed(self, method: str, target: str) -> bool:
        if self._routes is None:
            return True
        path = urlsplit(target).path
        resource = path[:-1] if path.endswith("/") else path
        return method.upper() == "POST" and resource.count("/") == 2 and resource.rsplit("/", 1)[-1] in self._routes

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1"
    ) -> GatewayResponse:
        """Answer one HTTP request."""
        request_id = str(uuid.uuid4())
        event = gateway_event(
            method, target, headers, body, stage=self.stage, source_ip=source_ip, request_id=request_id
        )
        if event is None or not self._routed(method, target):
            return _json(403, {"message": "Missing Authentication Token"}, request_id)
        self._note_rewritten_host(headers, urlsplit(target).path)
        with self._lock:
            # The function's clock starts when it is invoked, not while the event queues behind the one before it.
            context = LocalContext(aws_request_id=request_id, timeout_seconds=self._timeout)
            try:
                result = self._invoke(event, context)
            except Exception as exc:  # noqa: BLE001 - a function error is what API Gateway turns into a 502
                print(f"pipeline-serve: the handler raised {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                return _json(502, {"message": "Internal server error"}, request_id)
        return self._response(result, request_id)

    def _note_rewritten_host(self, headers: Sequence[tuple[str, str]], path: str) -> None:
        """Say (once per pair) that a proxy rewrote Host: the URL rebuilt from it is not the public one Twilio signed.

        Only said: X-Forwarded-Host is never trusted in its place (anyone can send it), as API Gateway does not. Only
        for a request carrying Twilio's signature, the one that covers the URL (an email's signs no URL). The latest
        ``MAX_HOSTS_WARNED_OF`` pairs are remembered.
        """
        from runtime.apigateway import forwarded_scheme
        from steps.twilio.parse import SIGNATURE_HEADER

        last = {name.lower(): value for name, value in headers}
        host, public = last.get("host", ""), last.get("x-forwarded-host", "").split(",")[0].strip()
        if not public or public == host or os.environ.get("PUBLIC_BASE_URL") or SIGNATURE_HEADER.lower() not in last:
            return
        with self._rewritten_lock:
            if (host, public) in self._rewritten:
                return
            self._rewritten[host, public] = None
            if len(self._rewritten) > MAX_HOSTS_WARNED_OF:
                del self._rewritten[next(iter(self._rewritten))]
        checked = f"{forwarded_scheme(last.get('x-forwarded-proto', 'http'))}://{host}{path}"
        _say(
            f"warning: the request came through a proxy that set Host to {host!r} and X-Forwarded-Host to {public!r}: "
            f"the signature is checked over {checked}, not the public URL Twilio signed; let the tunnel pass Host "
            f"through (ngrok: without --host-header=rewrite), or set PUBLIC_BASE_URL=https://{public}/{self.stage}"
        )

    @staticmethod
    def _response(result: Any, request_id: str) -> GatewayResponse:
        """The HTTP answer for the handler's result; API Gateway's 502 for one that is no proxy response."""
        answer = _proxy_answer(result) if isinstance(result, Mapping) else None
        if answer is None:
            print("pipeline-serve: malformed Lambda proxy response", file=sys.stderr, flush=True)
            return _json(502, {"message": "Internal server error"}, request_id)
        status, headers, body = answer
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.append(("x-amzn-RequestId", request_id))
        return GatewayResponse(status, headers, body)


def _proxy_answer(result: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """The status, headers and body of a Lambda proxy response; None when it is malformed."""
    status = result.get("statusCode")
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if type(status) is not int or not isinstance(multi, Mapping) or not isinstance(single, Mapping):
        return None
    if not all(isinstance(values, list) for values in multi.values()):
        return None
    headers = [(str(name), str(value)) for name, values in multi.items() for value in values]
    headers.extend((str(name), str(value)) for name, value in single.items() if name not in multi)
    raw = result.get("body") or ""
    try:
        body = base64.b64decode(str(raw), validate=True) if result.get("isBase64Encoded") else str(raw).encode()
    except ValueError:  # binascii.Error: not base64
        return None
    return status, headers, body


class MainThread:
    """Invocations run on the main thread, handed over by the request threads that wait for their results."""

    def __init__(self) -> None:
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()

    def invoker(self, invoke: Invoke) -> Invoke:
        """``invoke``, run on the main thread (which ``run`` must be serving) whichever thread calls it."""

        def on_main_thread(event: dict[str, Any], context: Any) -> Any:
            done: Future[Any] = Future()
            self._calls.put((lambda: invoke(event, context), done))
            return done.result()

        return on_main_thread

    def run(self) -> None:
        """Run the invocations handed over, one at a time, until interrupted (KeyboardInterrupt)."""
        while True:
            with contextlib.suppress(queue.Empty):
                call, done = self._calls.get(timeout=0.2)
                try:
                    done.set_result(call())
                except Exception as exc:  # noqa: BLE001 - the invocation's error is the waiting request's answer
                    done.set_exception(exc)
                except KeyboardInterrupt:
                    done.set_exception(RuntimeError("pipeline-serve stopped during the invocation"))
                    raise


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        answer = self._refusal()
        refused = answer is not None
        if answer is None:
            body = self._body()
            if isinstance(body, GatewayResponse):
                answer, refused = body, True
            else:
                answer = self.server.gateway.handle(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
        self._answer(answer)
        if refused:
            self._discard_rest()

    def _discard_rest(self) -> None:
        """Drop what the client still sends of a refused body (bounded), so that it reads the refusal, not a reset.

        A client that sends its whole body before reading (Python's http.client, requests) would otherwise have its
        connection closed under it: a broken pipe instead of the 413. Nothing is kept. The bounds are bytes
        (``DISCARD_MAX_BYTES``), silence (``DISCARD_IDLE_SECONDS``) and the whole time (``DISCARD_MAX_SECONDS``).
        """
        self.wfile.flush()
        deadline = time.monotonic() + DISCARD_MAX_SECONDS
        with contextlib.suppress(OSError):  # the client closed, or went quiet (the timeout)
            left = DISCARD_MAX_BYTES
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(min(DISCARD_IDLE_SECONDS, remaining))
                if not (dropped := self.rfile.read1(min(left, 65536))):
                    return
                left -= len(dropped)

    def _body(self) -> bytes | GatewayResponse:
        """The request's body (chunked or of Content-Length bytes), or the answer refusing a chunked one."""
        if self.headers.get("Transfer-Encoding") is None:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        try:
            return read_chunked(self.rfile, MAX_BODY_BYTES)
        except BodyTooLong:
            return self._refused(413)
        except ValueError:
            return self._refused(400)

    def _refused(self, status: int) -> GatewayResponse:
        """API Gateway's answer ``status`` to a request whose body is not (or no longer) read: the connection closes."""
        self.close_connection = True
        return _json(status, {"message": REFUSAL_MESSAGES[status]}, str(uuid.uuid4()))

    def _refusal(self) -> GatewayResponse | None:
        """The answer to a request whose body must not be read (unreadable, too long, another coding), else None."""
        status = refusal_status(
            self.headers.get("Transfer-Encoding"), self.headers.get("Content-Length"), MAX_BODY_BYTES
        )
        return None if status is None else self._refused(status)

    def _answer(self, answer: GatewayResponse) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"pipeline-serve: {self.address_string()} {query_values_masked(format % args)}\n")


# A query string runs to the next blank: ' is allowed in it unencoded, and a client may send ". A quote at its end
# (with the parenthesis after it) is the log line's own, around the request line or its repr, and stays.
_QUERY = re.compile(r"\?(\S*?)((?:[\"']\)?)?)(?=\s|$)")


def _masked_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if not equals:
        return MASKED_TEXT if name else name
    return f"{name}={MASKED_TEXT}" if value else pair


def query_values_masked(text: str) -> str:
    """``text`` with each query string's values ``[masked]`` (a URL may carry a credential), as event capture does."""
    return _QUERY.sub(lambda match: "?" + "&".join(map(_masked_pair, match[1].split("&"))) + match[2], text)


class _Server(ThreadingHTTPServer):
    """The listening socket, bound when made (OSError when it cannot be); ``gateway``, set before serving, answers."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    gateway: Gateway

    def __init__(self, address: tuple[str, int], quiet: bool) -> None:
        super().__init__(address, _Handler)
        self.quiet = quiet

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that reset or closed its connection (a kept-alive one, mid-answer) is no server failure."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def provision_and_seed(
    endpoint_url: str, region: str, world: WorldSpec | None, environment: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Create the pipelines' resources at ``endpoint_url``, seed them, and return the Lambda environment.

    A table or queue variable ``environment`` sets (the user's) names its resource and keeps its value
    (``tools.localaws.provision``; UnusableName for a queue URL that names no queue); with ``RULES_BUCKET`` set
    there, that bucket is created, versioned as the template's, for ``pipeline-rules`` and the function's bundles.
    """
    import boto3

    from tools.dryrun.world import SECTIONS
    from tools.localaws import provision, provision_rules_bucket, put_items, put_secrets

    session = boto3.session.Session(region_name=region)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    resources = provision(dynamodb, sqs, environment=environment)
    rules_bucket = (environment or {}).get("RULES_BUCKET", "").strip()
    if rules_bucket:
        provision_rules_bucket(session.client("s3", endpoint_url=endpoint_url), rules_bucket, region)
    if world is not None:
        for section, (table_attribute, _) in SECTIONS.items():
            put_items(dynamodb, getattr(resources, table_attribute), world.rows.get(section, ()))
        put_secrets(session.client("secretsmanager", endpoint_url=endpoint_url), world.secrets)
    return {**resources.environment(), **({"RULES_BUCKET": rules_bucket} if rules_bucket else {})}


def _warn_missing(endpoint_url: str, region: str) -> None:
    """Name each table, index or queue the pipelines need that the emulator lacks (their events would fail).

    And the rules bucket (``RULES_BUCKET``) when it lacks it or keeps it unversioned (``pipeline-rules`` would fail).
    """
    import boto3
    import botocore.exceptions

    from tools.localaws import missing_resources, missing_rules_bucket

    session = boto3.session.Session(region_name=region)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    try:
        missing = missing_resources(dynamodb, session.client("sqs", endpoint_url=endpoint_url), os.environ)
        missing += missing_rules_bucket(session.client("s3", endpoint_url=endpoint_url), os.environ)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        _say(f"warning: could not check the emulator's tables, queues and rules bucket: {exc}")
        return
    if missing:
        lines = "".join(f"\n  {line}" for line in missing)
        _say(f"warning: the emulator lacks what the pipelines need (--provision creates it):{lines}")


def start_moto(port: int) -> tuple[Any, str]:
    """Start moto's server on 127.0.0.1 in a thread of this process: (server, endpoint URL).

    OSError when ``port`` cannot be listened on (moto's thread would stop and leave ``start`` waiting for ever).
    """
    server_module = require("moto.server", "pipeline-serve --moto")
    if port:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as moto's server binds
            probe.bind(("127.0.0.1", port))

    # Its request log would drown the function's own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def _port(text: str) -> int:
    """A TCP port number (0: a free one), for argparse."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535; 0 picks a free one)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline-serve",
        description="Serve the function of the project here over HTTP, as API Gateway (REST) would call it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=3000, help="port (default 3000; 0 picks a free one)")
    parser.add_argument("--stage", default="prod", help="API Gateway stage, the first path segment (default prod)")
    aws = parser.add_mutually_exclusive_group()
    aws.add_argument("--moto", action="store_true", help="start moto's server here and provision the resources")
    aws.add_argument("--endpoint-url", help="an AWS emulator that is already running (sets AWS_ENDPOINT_URL)")
    parser.add_argument("--moto-port", type=_port, default=0, help="port for --moto's server (default: a free one)")
    parser.add_argument("--provision", action="store_true", help="with --endpoint-url: create and seed the resources")
    parser.add_argument("--world", type=Path, help="seed file (YAML/JSON: conversations, secrets, locks, stage)")
    parser.add_argument("--timeout", type=float, default=FUNCTION_TIMEOUT_SECONDS, help="function timeout, seconds")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser


def _say(text: str) -> None:
    print(f"pipeline-serve: {text}", file=sys.stderr, flush=True)


def _say_problems(heading: str, problems: Sequence[Problem]) -> None:
    """``heading`` as the server's error line, then the problems as every tool prints them (FILE:LINE:COLUMN: …)."""
    _say(f"error: {heading}:")
    print(problem_lines(problems), end="", file=sys.stderr, flush=True)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


@console_script("pipeline-serve")
def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted; return the exit status."""
    from tools.dryrun.world import load_world

    args = _parser().parse_args(argv)
    if args.provision and not args.endpoint_url:
        _parser().error("--provision needs --endpoint-url")
    if args.world and not (args.moto or args.provision):
        _parser().error("--world needs --moto or --provision")
    load_project_plugins()
    world_path: Path | None = args.world
    if world_path is None and args.moto and DEFAULT_WORLD.is_file():
        world_path = DEFAULT_WORLD
    try:
        world = load_world(world_path) if world_path is not None else None
    except ConfigError as exc:
        _say_problems("the world file cannot be used", exc.problems)
        return EXIT_USAGE
    try:
        server = _Server((args.host, args.port), args.quiet)
    except OSError as exc:
        _say(f"error: cannot listen on {args.host}:{args.port}: {_reason(exc)}")
        return EXIT_USAGE
    try:
        problems = project_problems()
        if not problems and (args.moto or args.endpoint_url):
            problems = needs_problems()
        if problems:
            _say_problems("the configuration cannot run", problems)
            return EXIT_USAGE
        unguarded = [] if args.moto or args.endpoint_url else real_account_problems(os.environ)
        if unguarded:
            _say("error: against a real account " + "; ".join(unguarded))
            return EXIT_USAGE
        return _prepare_and_serve(args, world, server)
    finally:
        server.server_close()


def real_account_problems(env: Mapping[str, str]) -> list[str]:
    """Why serving against the account of the default credentials (real writes and sends) would not be replay-safe.

    Here the platform's domain is the ``Host`` the client sent, so a request Twilio signed for the production URL
    is valid with that Host unless the URL is pinned (``PUBLIC_BASE_URL``) or the hosts listed (``ALLOWED_HOSTS``);
    and without ``REPLAY_TABLE_NAME`` no record refuses a captured request posted again, however old.
    An emulator (``AWS_ENDPOINT_URL``) holds nothing at stake.
    """
    if env.get("AWS_ENDPOINT_URL", "").strip():
        return []
    problems: list[str] = []
    if not env.get("REPLAY_TABLE_NAME", "").strip():
        problems.append("set REPLAY_TABLE_NAME (the stack's replay table), or a captured request is staged again")
    if not (env.get("ALLOWED_HOSTS", "").strip() or env.get("PUBLIC_BASE_URL", "").strip()):
        problems.append(
            "set ALLOWED_HOSTS (the tunnel's host) or PUBLIC_BASE_URL: without either any Host is believed, and a "
            "request signed for another URL (production's) is valid here"
        )
    return problems


def project_problems() -> list[Problem]:
    """Load the project's plugins; the errors that keep its pipelines from loading (unset variables aside)."""
    load_project_plugins(PROJECT)
    paths = pipeline_files(PROJECT / PIPELINES_DIR)
    if not paths:
        reason = "no pipeline files (*.yaml) found; run pipeline-serve in the project's directory"
        return [Problem(display_path(PROJECT / PIPELINES_DIR), 1, 1, reason)]
    inspections = [inspect_config(path, PROJECT / RULES_DIR, os.environ, missing_env="warning") for path in paths]
    return [problem for each in inspections for problem in each.problems if problem.severity == "error"]


def needs_problems() -> list[Problem]:
    """What keeps local AWS from holding the pipelines' tables, indexes and queues (``tools.needs``), located."""
    from tools.needs import shipped_needs

    try:
        shipped_needs()
    except ConfigError as exc:
        return list(exc.problems)
    return []


def load_function() -> Application:
    """The function as ``handler`` starts it, from the project instead of the handler's own directory."""
    from runtime.app import Application
    from runtime.logs import setup_logging

    setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
    return Application.from_root(PROJECT)


class ServedFunction:
    """The project's function, loaded again before the next event once a file of ``pipelines/`` or ``rules/`` changed.

    As a new container would be, fresh (caches, clients), its load not counted in the event's time budget (as a cold
    start's init is not): an edited rule decides the next event. A configuration that
    no longer loads answers each event as a cold start that fails (502), its problems printed, until it is fixed.
    The routes (the channels served) stay those of the start.
    """

    def __init__(self) -> None:
        self._stamp = configuration_stamp(PROJECT)
        self.function: Application | None = load_function()  # ConfigError: the configuration cannot run
        self._code = code_stamp(PROJECT)

    def handle(self, event: dict[str, Any], context: Any) -> Any:
        """Run ``event`` through the function of the configuration as it is now."""
        code = code_stamp(PROJECT)
        for file in sorted(name for name, stamp in code.items() if self._code.get(name, stamp) != stamp):
            _say(f"warning: {file} changed: code is loaded once, at the start; restart pipeline-serve to run it")
        self._code.update(code)
        stamp = configuration_stamp(PROJECT)
        if stamp != self._stamp:
            self._stamp = stamp
            if self.function is not None and self.function.capture is not None:
                self.function.capture.close()  # its thread would otherwise wait on its queue for good
            try:
                self.function = load_function()
            except ConfigError as exc:
                self.function = None
                _say_problems(
                    "the configuration changed and cannot run (each event is answered 502 until it is fixed)",
                    exc.problems,
                )
            else:
                _say("the configuration changed: loaded again")
            if isinstance(context, LocalContext):
                # A cold start's init runs before the invocation's clock starts, as Lambda times it.
                context.started = time.monotonic()
        if self.function is None:
            raise RuntimeError("the configuration cannot run (its problems are printed above)")
        return self.function.handle(event, context)


def _prepare_and_serve(args: argparse.Namespace, world: WorldSpec | None, server: _Server) -> int:
    """Point the function at AWS (starting moto, provisioning and seeding as asked), then serve on ``server``."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    os.environ.setdefault("AWS_REGION", region)
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    moto_server = None
    endpoint: str | None = args.endpoint_url
    if args.moto or endpoint:
        from tools.localaws import stand_in_credentials

        stand_in_credentials(always=args.moto)
    if args.moto:
        try:
            moto_server, endpoint = start_moto(args.moto_port)
        except MissingTool as exc:
            _say(f"error: {exc}")
            return EXIT_USAGE
        except OSError as exc:
            _say(f"error: cannot start moto's server on 127.0.0.1:{args.moto_port}: {_reason(exc)}")
            return EXIT_USAGE
        _say(f"moto server at {endpoint}")
    try:
        if endpoint:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            if args.moto or args.provision:
                import botocore.exceptions

                from tools.localaws import UnusableName

                try:
                    provided = provision_and_seed(endpoint, region, world, os.environ)
                except UnusableName as exc:
                    _say(f"error: {exc}")
                    return EXIT_USAGE
                except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                    # Only a connection that failed may be an emulator not running: an answered error was its own.
                    running = not isinstance(exc, botocore.exceptions.ConnectionError)
                    where = endpoint if running else f"{endpoint} (is the emulator running?)"
                    _say(f"error: cannot create the pipelines' resources at {where}: {exc}")
                    return EXIT_USAGE
                kept = sorted(name for name in provided if os.environ.get(name, "").strip())
                if kept:
                    # The user's names win over the local ones; said, so that nobody looks for the other table.
                    _say(
                        "created under the names the environment sets: " + ", ".join(f"{n}={provided[n]}" for n in kept)
                    )
                os.environ.update(provided)
                if world is not None:
                    counts = ", ".join(f"{len(rows)} {section}" for section, rows in world.rows.items())
                    _say(f"seeded from {world.file}: {counts}, {len(world.secrets)} secret(s)")
            _warn_missing(endpoint, region)
        return _serve(args, server)
    finally:
        if moto_server is not None:
            moto_server.stop()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace, server: _Server) -> int:
    try:
        served = ServedFunction()
    except ConfigError as exc:
        _say_problems("the configuration cannot run", exc.problems)
        return EXIT_USAGE
    assert served.function is not None
    routes = {channel for config in served.function.configs for channel in config.channels}
    main = MainThread()
    server.gateway = Gateway(main.invoker(served.handle), args.stage, timeout_seconds=args.timeout, routes=routes)
    port = server.server_address[1]
    base = f"http://{args.host}:{port}/{args.stage}"
    channels = sorted(routes)
    _say(f"listening on {base} (POST " + ", ".join(f"{base}/{channel}" for channel in channels) + ")")
    signal.signal(signal.SIGTERM, _interrupt)
    listening = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    listening.start()
    with contextlib.suppress(KeyboardInterrupt):
        main.run()
    server.shutdown()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
