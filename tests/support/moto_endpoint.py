"""A moto server in a thread of the test process, for a tool run in a subprocess to reach with ``--endpoint-url``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.request import Request, urlopen

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """A running moto server's URL, its world empty; the server stops on leaving."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto keeps one state per process, whichever server serves it: each test starts from an empty world.
        urlopen(Request(f"{endpoint}/moto-api/reset", method="POST")).close()
        yield endpoint
    finally:
        server.stop()
