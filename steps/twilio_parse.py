"""``twilio.parse``: read a Twilio messaging webhook out of an API Gateway event."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from engine.clock import iso_millis
from engine.context import Context, StepResult
from engine.errors import StepFailure
from engine.http import EventError, HttpRequest, last_segment, parse_http_event
from engine.registry import BuildInfo, ParamError, register

__all__ = ["FormParams", "TwilioParse"]

SIGNATURE_HEADER = "x-twilio-signature"
SIGNATURE_SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
_ADDRESS_PREFIX = re.compile(r"^[a-z]+:")
_MEDIA_URL = re.compile(r"^MediaUrl(\d+)$")


class FormParams:
    """Form pairs as the Twilio validator reads them: every key, and every value of a repeated key."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getall(self, name: str) -> list[str]:
        """Every value sent under ``name``."""
        return self._values[name]

    def first(self, name: str) -> str | None:
        """The first value sent under ``name``, or None."""
        values = self._values.get(name)
        return values[0] if values else None

    def as_fields(self) -> dict[str, str | list[str]]:
        """A JSON object of the form: one value, or a list for a repeated key."""
        return {name: values[0] if len(values) == 1 else list(values) for name, values in self._values.items()}


def _address(value: str) -> str:
    return _ADDRESS_PREFIX.sub("", value, count=1)


def _media(form: FormParams) -> list[dict[str, str]]:
    indexes = sorted(int(match.group(1)) for name in form if (match := _MEDIA_URL.match(name)))
    return [
        {"url": form.first(f"MediaUrl{index}") or "", "content_type": form.first(f"MediaContentType{index}") or ""}
        for index in indexes
    ]


def _num_media(form: FormParams, media: list[dict[str, str]]) -> int:
    text = form.first("NumMedia") or ""
    # isdigit() alone accepts digits int() refuses (e.g. '²').
    return int(text) if text.isascii() and text.isdigit() else len(media)


_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?")


def _host_name(host: str | None) -> str:
    """``host`` as compared with the allow-list: lower case, no trailing dot."""
    return (host or "").strip().lower().rstrip(".")


def _allowed_hosts(value: Any) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    hosts = frozenset(_host_name(item) for item in items if _host_name(item))
    for host in sorted(hosts):
        if not _HOST.fullmatch(host):
            raise ParamError(("allowed_hosts",), f"{host!r} is not a host name (e.g. hooks.example.com)")
    return hosts


@register(
    "twilio.parse",
    provides="request",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["channels"],
        "properties": {
            "channels": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string"},
                "description": "Last path segments accepted as channels (/…/whatsapp → whatsapp).",
            },
            "public_base_url": {
                "type": "string",
                "description": "When set, the signed URL is this base + '/' + channel (+ query); "
                "otherwise it is rebuilt from the event.",
            },
            "allowed_hosts": {
                "type": ["string", "array"],
                "items": {"type": "string"},
                "description": "Hosts the URL may be rebuilt with (a list, or one comma-separated string); a "
                "request for any other Host is refused with INVALID_SIGNATURE before any AWS call. "
                "Empty: any host. Not consulted when public_base_url is set (the Host header is then ignored).",
            },
            "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 1048576},
            "max_params": {"type": "integer", "minimum": 10, "maximum": 10000},
        },
    },
    example={"channels": ["whatsapp", "sms"], "public_base_url": "${env:PUBLIC_BASE_URL:-}"},
)
class TwilioParse:
    """Parse the webhook: channel from the path, form fields, numbers, media, status-callback detection."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._channels = frozenset(params["channels"])
        base = str(params.get("public_base_url") or "").strip()
        if base and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", base):
            raise ParamError(
                ("public_base_url",),
                f"public_base_url {base!r} is not an http(s) URL without query or fragment "
                "(e.g. https://hooks.example.com/prod)",
            )
        self._base = base.rstrip("/")
        self._hosts = _allowed_hosts(params.get("allowed_hosts"))
        self._max_body = int(params.get("max_body_bytes", 65536))
        self._max_params = int(params.get("max_params", 500))

    def _signed_url(self, http: HttpRequest, channel: str) -> str:
        url = (
            http.public_url()
            if not self._base
            else f"{self._base}/{channel}" + (f"?{http.query}" if http.query else "")
        )
        # The validator encodes the URL and reads its port: a hostile one must fail here, as PARSING_ERROR.
        try:
            url.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the request URL is not valid UTF-8") from None
        try:
            _ = urlsplit(url).port
        except ValueError:
            raise ValueError("the request's host has an invalid port") from None
        return url

    def run(self, ctx: Context) -> StepResult:
        try:
            http = parse_http_event(ctx.event, max_body_bytes=self._max_body)
        except EventError as exc:
            # A Twilio channel's path with an unreadable body is still answered in that channel's format.
            if last_segment(exc.path) in self._channels:
                ctx.doc["request"] = {"channel": last_segment(exc.path)}
            raise StepFailure("PARSING_ERROR", str(exc)) from None
        channel = http.last_segment
        if channel not in self._channels:
            raise StepFailure(
                "PARSING_ERROR", "unknown webhook path; expected …/" + " or …/".join(sorted(self._channels))
            )
        ctx.doc["request"] = {"channel": channel}
        if http.method is not None and http.method.upper() != "POST":
            raise StepFailure("PARSING_ERROR", f"method {http.method} is not accepted; Twilio webhooks POST")
        signature = http.header(SIGNATURE_HEADER)
        if not signature:
            raise StepFailure("INVALID_SIGNATURE", "missing X-Twilio-Signature header")
        if not self._base and self._hosts and _host_name(http.host) not in self._hosts:
            # A signature Twilio made for another URL of the account must not become valid here by a forged Host.
            raise StepFailure("INVALID_SIGNATURE", "the request's host is not one this webhook is registered under")
        try:
            pairs = parse_qsl(http.body, keep_blank_values=True, max_num_fields=self._max_params)
        except ValueError:
            raise StepFailure("PARSING_ERROR", f"the form has more than {self._max_params} form parameters") from None
        try:
            url = self._signed_url(http, channel)
        except ValueError as exc:
            raise StepFailure("PARSING_ERROR", f"unreadable request: {exc}") from None
        form = FormParams(pairs)
        for required in ("From", "To", "MessageSid"):
            if not (form.first(required) or "").strip():
                raise StepFailure("PARSING_ERROR", f"missing required parameter {required}")
        sender, recipient = _address(form.first("From") or ""), _address(form.first("To") or "")
        if not sender.strip() or not recipient.strip():
            raise StepFailure("PARSING_ERROR", "From and To must carry a number")
        status = form.first("MessageStatus")
        is_callback = status is not None
        media = _media(form)
        ctx.private["form"] = form
        ctx.private["signature"] = signature
        ctx.private["signature_settings"] = http.header(SIGNATURE_SETTINGS_HEADER)
        request = {
            "channel": channel,
            "kind": "status_callback" if is_callback else "message",
            "is_status_callback": is_callback,
            "message_sid": form.first("MessageSid"),
            "account_sid": form.first("AccountSid"),
            "from": form.first("From"),
            "to": form.first("To"),
            "user_number": recipient if is_callback else sender,
            "company_number": sender if is_callback else recipient,
            "body": form.first("Body") or "",
            "num_media": _num_media(form, media),
            "media": media,
            "message_status": status,
            "fields": form.as_fields(),
            "url": url,
            "received_at": iso_millis(ctx.services.clock.now()),
        }
        return StepResult(output=request, decision=f"{channel} {request['kind']}")
