"""An HTTP proxy in front of moto's server that records the AWS operation of every request and refuses writes.

Clients are pointed at the proxy (``endpoint_url``); each request's operation is read from the wire (the
``X-Amz-Target`` header of the JSON protocols, else the ``Action`` of a query-protocol body), recorded, and
forwarded only when it is in ``allowed``. Anything else is answered ``403 AccessDenied`` and recorded in
``refused``: a write can neither happen nor go unnoticed, whichever client in whichever process sends it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["RecordingProxy", "operation_of", "recording_proxy"]


def operation_of(headers: dict[str, str], body: bytes) -> str:
    """``service:Operation`` of a request (``DynamoDB_20120810.Query`` -> ``dynamodb:Query``)."""
    target = headers.get("x-amz-target", "")
    if target:
        prefix, _, operation = target.partition(".")
        service = {"dynamodb_20120810": "dynamodb", "secretsmanager": "secretsmanager", "amazonsqs": "sqs"}.get(
            prefix.lower(), prefix.lower()
        )
        return f"{service}:{operation}"
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return f"query:{action}" if action else "unknown"


@dataclass
class RecordingProxy:
    """What went through: every operation in order, and the ones refused."""

    url: str
    allowed: frozenset[str]
    operations: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@contextmanager
def recording_proxy(target: str, allowed: frozenset[str]) -> Iterator[RecordingProxy]:
    """A proxy to ``target`` (``http://host:port``) on a free local port, for as long as the block runs."""
    upstream = urlsplit(target)
    lock = threading.Lock()
    proxy = RecordingProxy("", allowed)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            operation = operation_of(headers, body)
            with lock:
                proxy.operations.append(operation)
                if operation not in allowed:
                    proxy.refused.append(operation)
            if operation not in allowed:
                message = b'{"__type":"AccessDeniedException","message":"refused by the read-only proxy"}'
                self.send_response(403)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=30)
            forwarded = {name: value for name, value in self.headers.items() if name.lower() != "host"}
            connection.request(self.command, self.path, body=body, headers=forwarded)
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
