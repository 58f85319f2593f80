"""``twilio.parse``: read a Twilio messaging webhook (form post) out of the request.

The channel is the request's last path segment (one of the pipeline's ``channels:``). The form is parsed
with every pair kept (blank values and repeated keys: Twilio signs them); ``whatsapp:`` prefixes are
stripped to get the user's and the company's numbers. A request carrying ``MessageStatus`` is a status
callback, whose ``From`` is the company, so the two are swapped. A missing ``X-Twilio-Signature`` ends
the event here, before any AWS call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from copy import copy as copy_of
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from engine.context import Context, StepResult
from engine.errors import ErrorSpec, StepFailure
from engine.http import HttpRequest
from engine.registry import BuildInfo, ParamError, register
from steps.support import iso_millis, public_url, webhook_post
from steps.twilio.form import FormParams

__all__ = ["INVALID_SIGNATURE", "PARSING_ERROR", "SIGNATURE_HEADER", "TwilioParse"]

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
# The secret's field that signs when the request was signed with a shared key (SIGNATURE_SETTINGS_HEADER).
WEBHOOK_KEY_FIELD = "twilio_webhook_key"
PARSING_ERROR = ErrorSpec("PARSING_ERROR", description="the request is not a readable Twilio webhook")
INVALID_SIGNATURE = ErrorSpec("INVALID_SIGNATURE", description="the request's signature is missing or wrong")

_ADDRESS_PREFIX = re.compile(r"^[a-z]+:")
# Twilio numbers media from 0 and sends at most 10: a longer run of digits is no index or count of Twilio's (and
# int() refuses one over 4300 digits, which made a forged request an INTERNAL_ERROR before its signature was read).
_MEDIA_URL = re.compile(r"MediaUrl([0-9]{1,4})")
_COUNT = re.compile(r"[0-9]{1,4}")
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?")
# Twilio signs the sorted key+value pairs with no separator, so a captured request can be re-cut
# (``MessageSid=SM…&MessageType=text`` signs as ``MessageSid=SM…MessageTypetext``): every field used as an
# identity must have its exact shape, or a shifted variant would pass as a new message.
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
_ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# A field's name and a value of its shape, wherever they stand in the text Twilio signs (the sorted name+value pairs,
# no separators). A body that spells ``From+1…MessageSidSM…`` and a last name whose value swallows the text Twilio
# wrote after the body sign exactly as the genuine message, yet read as another sender's, with another SID; a status
# callback's ``MessageStatusdelivered`` cut as ``MessageStatusd=elivered`` reads as an inbound message. So each such
# spelling must be the field itself (or, for a SID, a field whose name ends so: ``OriginalRepliedMessageSid``).
_SPELLED_IDENTITIES = (
    ("MessageSid", re.compile(r"MessageSid((?:SM|MM)[0-9a-f]{32})"), True),
    ("From", re.compile(r"From((?:[a-z]+:)?\+[0-9]+)"), False),
    ("To", re.compile(r"To((?:[a-z]+:)?\+[0-9]+)"), False),
    ("MessageStatus", re.compile(r"MessageStatus([a-z_]+)"), False),
)
_FIELD_NAME = re.compile(r"[A-Za-z]+")
# The channels whose addresses carry a prefix (``whatsapp:+1415…``); any other channel's are bare numbers.
_PREFIXED = frozenset({"whatsapp"})


def _address(value: str) -> str:
    return _ADDRESS_PREFIX.sub("", value, count=1)


def _identity_problem(form: FormParams, channel: str) -> str | None:
    """Why the fields that identify the message (sids, numbers) are not what Twilio sends, or None."""
    sid = form.first("MessageSid") or ""
    if not _MESSAGE_SID.fullmatch(sid):
        return "MessageSid is not a Twilio message SID"
    if len(form.getall("MessageSid")) > 1:
        return "MessageSid is repeated"
    for alias in ("SmsMessageSid", "SmsSid"):
        if alias in form and any(value != sid for value in form.getall(alias)):
            return f"{alias} differs from MessageSid"
    account = form.first("AccountSid")
    if account is not None and not _ACCOUNT_SID.fullmatch(account):
        return "AccountSid is not a Twilio account SID"
    prefix = f"{channel}:" if channel in _PREFIXED else ""
    for name in ("From", "To"):
        values = form.getall(name)
        value = values[0]
        if len(values) > 1 or not value.startswith(prefix) or not _E164.fullmatch(value.removeprefix(prefix)):
            return f"{name} is not a {prefix}+E.164 number"
    respelled = _respelled_identity(form)
    if respelled is not None:
        return f"the signed text spells {respelled} outside that field (it would read as another message)"
    return None


def _respelled_identity(form: FormParams) -> str | None:
    """The identity field whose name and value the signed text spells outside that field, or None.

    Twilio's validator signs each name (sorted) followed by each of its distinct values (sorted), with nothing
    between them: the same text can be cut into other pairs. Every place the text spells an identity, where a
    pair could end (at the end of the text, or before a character that may start a later name), must be the end of
    that field's own pair (for a SID, of any field whose name is a word ending so) with the value that follows there.
    """
    parts: list[str] = []
    ends: dict[int, tuple[str, str]] = {}
    length = 0
    for name in sorted(form):
        for value in sorted(set(form.getall(name))):
            parts.append(name + value)
            length += len(name) + len(value)
            ends[length] = (name, value)
    text = "".join(parts)
    for field, spelled, any_prefix in _SPELLED_IDENTITIES:
        for match in spelled.finditer(text):
            following = text[match.end() : match.end() + 1]
            if following and following < field[0]:
                continue  # no name sorted after the field's can start here: no pair could end here ("Up To+50%")
            name, value = ends.get(match.end(), ("", ""))
            named = name.endswith(field) and bool(_FIELD_NAME.fullmatch(name)) if any_prefix else name == field
            if value != match.group(1) or not named:
                return field
    return None


def _media(form: FormParams) -> list[dict[str, str]]:
    indexes = sorted(int(match.group(1)) for name in form if (match := _MEDIA_URL.fullmatch(name)))
    return [
        {"url": form.first(f"MediaUrl{index}") or "", "content_type": form.first(f"MediaContentType{index}") or ""}
        for index in indexes
    ]


def _num_media(form: FormParams, media: list[dict[str, str]]) -> int:
    text = form.first("NumMedia") or ""
    return int(text) if _COUNT.fullmatch(text) else len(media)


def _host_name(host: str | None) -> str:
    """``host`` as compared with the allow-list: lower case, no trailing dot."""
    return (host or "").strip().lower().rstrip(".")


def _without_port(host: str) -> str:
    return host.rsplit(":", 1)[0] if ":" in host else host


def _without_https_port(host: str) -> str:
    """``host`` without an explicit ``:443``: the same https URL, as the validator compares it either way."""
    return host.removesuffix(":443")


def _allowed_hosts(value: Any) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    hosts = frozenset(_host_name(item) for item in items if _host_name(item))
    for host in sorted(hosts):
        if not _HOST.fullmatch(host):
            raise ParamError(("allowed_hosts",), f"{host!r} is not a host name (e.g. hooks.example.com)")
    return hosts


def _fail(message: str) -> StepFailure:
    return StepFailure(PARSING_ERROR.code, message)


@register(
    "twilio.parse",
    provides="request",
    errors=(PARSING_ERROR, INVALID_SIGNATURE),
    auth_headers=(SIGNATURE_HEADER,),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "public_base_url": {
                "type": "string",
                "description": "When set, the signed URL is this base + '/' + channel (+ the request path's "
                "trailing slash, + query); otherwise it is rebuilt from the event.",
            },
            "allowed_hosts": {
                "type": ["string", "array"],
                "items": {"type": "string"},
                "description": "Hosts the URL may be rebuilt with (a list, or one comma-separated string); a "
                "request for any other Host is refused with INVALID_SIGNATURE before any AWS call (a listed name "
                "with the https port, name:443, is that name), and the URL's scheme is https whatever "
                "X-Forwarded-Proto says. Empty: the Host must be the domain the platform received the request on "
                "(requestContext.domainName). Not consulted when public_base_url is set (the Host header is then "
                "ignored).",
            },
            "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 1048576},
            "max_params": {"type": "integer", "minimum": 10, "maximum": 10000},
        },
    },
    example={"public_base_url": "${env:PUBLIC_BASE_URL:-}"},
)
class TwilioParse:
    """Parse the webhook: channel from the path, form fields, numbers, media, status-callback detection."""

    # The fields of the request it provides (``--check`` warns about a condition reading another: always null).
    request_fields = frozenset(
        [
            "channel",
            "kind",
            "is_status_callback",
            "message_sid",
            "account_sid",
            "from",
            "to",
            "user_number",
            "company_number",
            "body",
            "num_media",
            "media",
            "message_status",
            "fields",
            "url",
            "signing_key_field",
            "received_at",
        ]
    )
    # The type of each field that holds one (null aside): --check warns about a case or a condition using another.
    request_field_kinds: Mapping[str, str] = MappingProxyType(
        {
            **dict.fromkeys(["channel", "kind", "from", "to", "user_number", "company_number", "body"], "string"),
            **dict.fromkeys(["message_sid", "account_sid", "message_status", "url", "received_at"], "string"),
            "is_status_callback": "boolean",
            "num_media": "number",
        }
    )

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._channels = frozenset(info.channels)
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
        self._readdressed = False
        self._rehosted = False

    def _check_host(self, ctx: Context, http: HttpRequest) -> None:
        """Refuse a Host the signed URL must not be rebuilt with (fail closed: see ``allowed_hosts``).

        A Host that ``allowed_hosts`` does not list but that is the domain the platform received the request on (a
        custom domain Twilio was pointed at and the list not told of) is refused all the same, and the request
        records it (``unlisted_host``) so that its signature can be checked (``rehosted``) and a genuine message
        counted as lost. A copy made by ``rehosted`` accepts only such a Host.
        """
        host = _host_name(http.host)
        if not _HOST.fullmatch(host):
            raise _fail("the request's Host is not a host name")
        domain = _host_name(http.domain)
        if self._hosts:
            # The URL is https here, so ``name:443`` is ``name``; any other port must be listed as such.
            allowed = host in self._hosts or _without_https_port(host) in self._hosts
            # The platform names the domain it received the request on without a port (it listens on https's).
            if not allowed and domain and _without_https_port(host) == _without_https_port(domain):
                if self._rehosted:
                    return
                ctx.doc["request"]["unlisted_host"] = True
                raise StepFailure(
                    INVALID_SIGNATURE.code, "the request's host, the domain it arrived on, is not in allowed_hosts"
                )
        else:
            # A signature Twilio made for another URL of the account must not become valid here by a forged
            # Host: by default the Host must be the domain the platform says the request arrived on.
            allowed = bool(domain) and _without_port(host) == _without_port(domain)
        if not allowed or self._rehosted:
            raise StepFailure(INVALID_SIGNATURE.code, "the request's host is not one this webhook is registered under")

    def _signed_url(self, http: HttpRequest, channel: str) -> str:
        if self._base:
            # Twilio signs the URL as configured in its console: a trailing slash there is one on the request path.
            slashes = http.path[len(http.path.rstrip("/")) :]
            url = f"{self._base}/{channel}{slashes}" + (f"?{http.query}" if http.query else "")
        else:
            # Behind an allow-list the scheme is https: a client's X-Forwarded-Proto must not choose it.
            url = public_url(http, scheme="https" if self._hosts else None)
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

    def _form(self, http: HttpRequest) -> FormParams:
        if len(http.body) > self._max_body:
            raise _fail(f"body exceeds {self._max_body} bytes")
        try:
            text = http.text()
        except ValueError as exc:
            raise _fail(str(exc)) from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=self._max_params)
        except ValueError:
            raise _fail(f"the form has more than {self._max_params} form parameters") from None
        return FormParams(pairs)

    def readdressed(self) -> TwilioParse:
        """A copy of the step that reads a request posted to another channel's path as the channel it is addressed as.

        Only to check the signature of such a request, refused as ``PARSING_ERROR`` all the same
        (``runtime.misroute``): the signed URL stays the one it was posted to, the one Twilio signed.
        """
        copy = copy_of(self)
        copy._readdressed = True
        return copy

    def rehosted(self) -> TwilioParse:
        """A copy of the step that reads a request refused for its unlisted Host as if ``allowed_hosts`` listed it.

        Only to check the signature of such a request (``unlisted_host``), refused as ``INVALID_SIGNATURE`` all the
        same (``runtime.misroute``): the signed URL is rebuilt with the Host it arrived on, the one Twilio signed.
        """
        copy = copy_of(self)
        copy._rehosted = True
        return copy

    def _addressed(self, form: FormParams, channel: str) -> str | None:
        """The other channel of this pipeline whose every identity check the request passes, or None."""
        others = sorted(self._channels - {channel})
        return next((other for other in others if _identity_problem(form, other) is None), None)

    def _misrouted(self, ctx: Context, form: FormParams, channel: str) -> StepFailure | None:
        """The refusal of a request that is all another channel's (of this pipeline) posted to ``channel``'s path.

        A Messaging Service holding WhatsApp and SMS senders posts both to its one webhook URL; the path decides the
        channel (a message is not re-read as another channel's), so such a request is lost. Its refusal says so and
        the request records the channel its addresses name (``addressed_channel``), so that its signature can be
        checked (``readdressed``) and a genuine one counted apart from junk. None when it is no other channel's either.
        """
        addressed = self._addressed(form, channel)
        if addressed is None:
            return None
        is_callback = "MessageStatus" in form
        ctx.doc["request"].update(addressed_channel=addressed, is_status_callback=is_callback)
        kind = "status callback" if is_callback else "message"
        return _fail(
            f"a {kind} addressed as on …/{addressed} was posted to …/{channel}: the path decides the channel "
            f"(register each channel's own webhook URL)"
        )

    def run(self, ctx: Context) -> StepResult:
        http = webhook_post(ctx, self._channels, PARSING_ERROR.code, "Twilio webhooks POST")
        channel = http.channel
        signature = http.header(SIGNATURE_HEADER)
        if not signature:
            raise StepFailure(INVALID_SIGNATURE.code, "missing X-Twilio-Signature header")
        if not self._base:
            self._check_host(ctx, http)
        form = self._form(http)
        sid = form.first("MessageSid") or ""
        if _MESSAGE_SID.fullmatch(sid) and len(form.getall("MessageSid")) == 1:
            # A SID of Twilio's shape is no personal data: the event's log line names it even if parsing fails.
            ctx.doc["request"]["message_sid"] = sid
        try:
            url = self._signed_url(http, channel)
        except ValueError as exc:
            raise _fail(f"unreadable request: {exc}") from None
        # A status callback refused here loses nothing (unlike a message): the reason says which it was. One whose
        # From is no number (an alphanumeric sender ID) names no company to look up, so no key to check it with.
        kind = "status callback: " if "MessageStatus" in form else ""
        for required in ("From", "To", "MessageSid"):
            if not (form.first(required) or "").strip():
                raise _fail(f"{kind}missing required parameter {required}")
        if self._readdressed:
            addressed = self._addressed(form, channel)
            if addressed is None:
                raise _fail("the request is no other channel's either")
            channel = addressed
        problem = _identity_problem(form, channel)
        if problem is not None:
            raise self._misrouted(ctx, form, channel) or _fail(kind + problem)
        sender, recipient = _address(form.first("From") or ""), _address(form.first("To") or "")
        status = form.first("MessageStatus")
        is_callback = status is not None
        media = _media(form)
        settings = http.header(SIGNATURE_SETTINGS_HEADER)
        ctx.private["form"] = form
        ctx.private["signature"] = signature
        ctx.private["signature_settings"] = settings
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
            "signing_key_field": WEBHOOK_KEY_FIELD if settings else None,
            "received_at": iso_millis(ctx.services.clock.now()),
        }
        # From here on every log line of the invocation names the message (a validated Twilio SID, no personal data).
        log = {"message_sid": str(request["message_sid"])}
        return StepResult(output=request, decision=f"{channel} {request['kind']}", log=log)
