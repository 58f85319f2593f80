"""Watch and break the application's own AWS clients at the HTTP boundary, through botocore events.

Nothing here fakes AWS: every call still goes to moto unless a hook deliberately answers it first,
the way a throttled, failing or timed-out AWS endpoint would.

- ``before-call.<service>.<Operation>`` runs once per API call, before any request is built into an
  HTTP exchange; a handler that returns ``(http_response, parsed)`` *is* AWS's answer (no retry, no
  request sent). ``AwsSpy.fail`` uses it for throttling, 5xx and permanent errors.
- ``before-send.<service>.<Operation>`` runs once per HTTP attempt (so botocore's retries are seen);
  ``AwsSpy.time_out`` raises ``ReadTimeoutError`` there, as urllib3 would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

# botocore's hyphenated service ids, as they appear in event names.
SERVICE_IDS = {"dynamodb": "dynamodb", "sqs": "sqs", "secretsmanager": "secrets-manager"}


@dataclass(frozen=True)
class Call:
    """One API call the application made: ``service.Operation`` and its decoded request parameters."""

    name: str
    params: dict[str, Any]


class _Raw:
    def stream(self, **_: Any) -> Any:
        yield b""


def error_response(code: str, status: int, message: str = "injected by the test") -> tuple[AWSResponse, dict[str, Any]]:
    """What botocore would have parsed from an AWS error answer."""
    http = AWSResponse("https://fault.invalid/", status, {}, _Raw())
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
    }
    return http, parsed


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    body = params.get("body") or b"{}"
    try:
        decoded = json.loads(body)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


class AwsSpy:
    """Records every API call of an application's clients and injects faults on demand."""

    def __init__(self, application: Any, pipeline: str = "twilio_inbound") -> None:
        services = application.services_for(pipeline)
        self.clients: dict[str, Any] = {
            "dynamodb": services.tables.client,
            "sqs": services.queues.client,
            "secretsmanager": services.secrets.store.client,
        }
        self.calls: list[Call] = []
        self.attempts: list[str] = []
        self._lock = threading.Lock()
        for service, client in self.clients.items():
            client.meta.events.register(f"before-call.{SERVICE_IDS[service]}", self._recorder(service))

    def _recorder(self, service: str) -> Callable[..., None]:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            with self._lock:
                self.calls.append(Call(f"{service}.{model.name}", _decode(params)))

        return record

    def names(self) -> list[str]:
        """The calls made so far, as ``service.Operation``."""
        return [call.name for call in self.calls]

    def count(self, name: str) -> int:
        """How many calls of ``service.Operation`` were made."""
        return sum(1 for call in self.calls if call.name == name)

    def of(self, name: str) -> list[dict[str, Any]]:
        """The request parameters of every ``service.Operation`` call."""
        return [call.params for call in self.calls if call.name == name]

    def _event(self, kind: str, name: str) -> tuple[Any, str]:
        service, operation = name.split(".")
        return self.clients[service], f"{kind}.{SERVICE_IDS[service]}.{operation}"

    def fail(
        self,
        name: str,
        code: str,
        status: int = 400,
        *,
        times: int | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
        message: str = "injected by the test",
    ) -> None:
        """Answer ``service.Operation`` with an AWS error (only ``times`` times; only calls matching ``where``).

        ``message`` is the error's text, as AWS words it (a ``ValidationException`` may quote the item's values).
        """
        client, event = self._event("before-call", name)
        left = [times]

        def answer(params: dict[str, Any], **_: Any) -> Any:
            if where is not None and not where(_decode(params)):
                return None
            with self._lock:
                if left[0] is not None:
                    if left[0] <= 0:
                        return None
                    left[0] -= 1
            return error_response(code, status, message)

        client.meta.events.register(event, answer)

    def time_out(self, name: str) -> None:
        """Every HTTP attempt of ``service.Operation`` times out reading the answer."""
        client, event = self._event("before-send", name)

        def hang(request: Any, **_: Any) -> None:
            with self._lock:
                self.attempts.append(name)
            raise ReadTimeoutError(endpoint_url=request.url)

        # First, so that moto's own before-send handler never sees (nor applies) the request.
        client.meta.events.register_first(event, hang)

    def before(self, name: str, action: Callable[[dict[str, Any]], None]) -> None:
        """Run ``action(request params)`` just before each ``service.Operation`` call goes out."""
        client, event = self._event("before-call", name)

        def run(params: dict[str, Any], **_: Any) -> None:
            action(_decode(params))

        client.meta.events.register(event, run)

    def page_size(self, name: str, limit: int) -> None:
        """Every ``service.Operation`` call asks for at most ``limit`` items (``Limit``): moto then pages by count."""
        client, event = self._event("before-parameter-build", name)

        def limit_page(params: dict[str, Any], **_: Any) -> None:
            params["Limit"] = limit

        client.meta.events.register(event, limit_page)


def iam_user(iam: Any, name: str, actions: list[str]) -> dict[str, str]:
    """An IAM user (made through ``iam``, a boto3 client) allowed ``actions`` only: its key, as client arguments."""
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="grant", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
