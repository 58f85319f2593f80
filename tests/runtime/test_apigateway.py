"""The REST 1.0 adapter rebuilds the request's scheme from X-Forwarded-Proto: only http or https, never client text."""

from __future__ import annotations

import pytest

from engine.http import HttpRequest
from runtime.apigateway import http_request
from steps.support import public_url
from tests.support.webhooks import HOST, rest_event, whatsapp_params


def _scheme(proto: str) -> str:
    return http_request(rest_event("whatsapp", whatsapp_params(), headers={"X-Forwarded-Proto": proto})).scheme


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [
        ("https", "https"),
        ("http", "http"),
        ("HTTP", "http"),
        (" Https ", "https"),
        ("http, https", "http"),
        ("https,http", "https"),
        ("", "https"),
        ("https://evil.example/x?", "https"),
        ("http://evil", "https"),
        ("ftp", "https"),
        ("javascript", "https"),
        (",http", "https"),
    ],
)
def test_the_scheme_is_http_or_https_and_nothing_a_client_writes(proto: str, scheme: str) -> None:
    assert _scheme(proto) == scheme


@pytest.mark.parametrize("scheme", ["evil://x", "ftp", "", "https:"])
def test_the_rebuilt_url_refuses_a_scheme_that_would_reshape_it(scheme: str) -> None:
    request = HttpRequest(method="POST", path="/prod/whatsapp", host=HOST)
    assert public_url(request) == f"https://{HOST}/prod/whatsapp"
    with pytest.raises(ValueError, match=r"^the request's scheme is neither http nor https$"):
        public_url(HttpRequest(method="POST", path="/prod/whatsapp", host=HOST, scheme=scheme))


@pytest.mark.parametrize("host", [f"{HOST}/x", f"user@{HOST}", f"{HOST}?a=", f"{HOST}#f", "a b", f"{HOST}\\x"])
def test_the_rebuilt_url_refuses_a_host_that_would_reshape_it(host: str) -> None:
    with pytest.raises(ValueError, match=r"^the request's host is not a host name$"):
        public_url(HttpRequest(method="POST", path="/prod/whatsapp", host=host))
