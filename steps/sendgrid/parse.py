"""``sendgrid.parse``: address an inbound email that SendGrid's Inbound Parse posts (multipart/form-data).

Anyone can post, and the signature is checked after the lookup, so with ``defer_content`` this step reads only
what the lookup and the event's log line need: the form (every check that refuses it, before any AWS call), the
sender, the recipient and the email's id. ``sendgrid.read``, after ``sendgrid.signature``, reads the rest (text,
HTML, a raw MIME message's parts, attachments), whose cost grows with the body, from the form left in
``Context.private``. Without it (a pipeline file written before ``sendgrid.read``), this step reads it all.

The email's identity is a stable ``EM…`` id (from its ``Message-ID`` and the parse address it was delivered
to, else the body's digest), used as the stage row's ``message_sid``. The sender is the user
(``user_address``), the parse address it was sent to is the company (``company_address``, without a ``+tag``
subaddress; ``to`` keeps it), both lower-cased. A ``From`` header that cannot be read (too long, or nested too
deep) leaves the envelope's sender.
A request without SendGrid's signature headers, or signed too long ago (a replay) or in the future, ends here
with ``INVALID_SIGNATURE``, before any AWS call.

What ``sendgrid.read`` stages and hands off is bounded by this step's ``max_text_bytes`` (with the largest, a
stage row stays under 330 KB, inside DynamoDB's 400 KB item limit), and so is the time reading takes: an
HTML-only email's text is read from its first ``HTML_CHARS_PER_TEXT_BYTE`` x ``max_text_bytes`` characters.

The multipart and email modules are imported by the first email, not at the cold start (they pull in the
standard library's ``email`` package, several milliseconds a container that may never see an email).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.context import Context, StepResult
from engine.errors import ErrorSpec, StepFailure
from engine.http import HttpRequest
from engine.registry import BuildInfo, ParamError, register
from steps.sendgrid.ecdsa import SIGNATURE_HEADER, TIMESTAMP_HEADER, is_fresh
from steps.support import iso_millis, webhook_post

if TYPE_CHECKING:
    from steps.sendgrid.message import Addressing
    from steps.sendgrid.multipart import MultipartForm

__all__ = [
    "HTML_CHARS_PER_TEXT_BYTE",
    "INVALID_SIGNATURE",
    "KEPT_FIELDS",
    "MAX_FIELD_BYTES",
    "MAX_MEDIA_LISTED",
    "PARSING_ERROR",
    "REQUEST_FIELDS",
    "REQUEST_FIELD_KINDS",
    "STALE_SIGNATURE",
    "UNREAD",
    "SendGridParse",
    "Unread",
]

PARSING_ERROR = ErrorSpec("PARSING_ERROR", description="the request is not a readable Inbound Parse post")
INVALID_SIGNATURE = ErrorSpec("INVALID_SIGNATURE", description="the request's signature is missing, stale or wrong")
# Why a post signed too long before (or after) the clock's time is refused; tools name it to say what to do.
STALE_SIGNATURE = "the signature's timestamp is outside the accepted window"
# Fields copied to ``request.fields``: what a person handling the email needs besides its text.
KEPT_FIELDS = ("to", "from", "cc", "subject", "envelope", "spam_score", "SPF", "dkim", "attachments")
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
# SendGrid's parsed format posts one form part per attachment, inline images included (a long Outlook thread carries
# hundreds of quoted signatures' logos); reading a part takes microseconds, so the bound is the raw format's.
DEFAULT_MAX_PARTS = 1024
DEFAULT_MAX_TEXT_BYTES = 128 * 1024
# SendGrid retries a failed post for up to 72 hours, maybe signed as first posted: 4 days covers that with margin.
DEFAULT_MAX_AGE_SECONDS = 4 * 86400
MAX_TEXT_BYTES = 256 * 1024
# How much HTML an HTML-only email's text is read from, per byte of text kept: Gmail clips HTML over about
# 100 KB, so the default's 512 K characters leave room for markup-heavy mail while bounding the time taken.
HTML_CHARS_PER_TEXT_BYTE = 4
# Bounds on the rest of what is staged or handed off (UTF-8 bytes; media entries).
MAX_FIELD_BYTES = 2 * 1024
MAX_MEDIA_LISTED = 128
# The fields SendGrid posts once each: a second one is refused, never chosen between (a second `from` could only
# come from an email's own text, were SendGrid ever to let its boundary through).
_SINGLE_FIELDS = (
    *KEPT_FIELDS,
    "headers",
    "email",
    "text",
    "html",
    "charsets",
    "attachment-info",
    "content-ids",
    "sender_ip",
    "spam_report",
)
# The request's fields once ``sendgrid.read`` has read the email, in their order; ``sendgrid.parse`` gives
# ``ADDRESSED_FIELDS`` of them, all that the lookup and the logs need before the signature is checked.
REQUEST_FIELDS = (
    "channel",
    "kind",
    "is_status_callback",
    "message_sid",
    "message_id_source",
    "from",
    "to",
    "user_address",
    "company_address",
    "subject",
    "body",
    "body_truncated",
    "body_bytes",
    "num_media",
    "media",
    "spam_score",
    "auto_submitted",
    "sender_authenticated",
    "fields",
    "received_at",
)
# The type of each field that holds one (null aside): --check warns about a case or a condition using another.
REQUEST_FIELD_KINDS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(["channel", "kind", "message_sid", "message_id_source", "from", "to"], "string"),
        **dict.fromkeys(["user_address", "company_address", "subject", "body", "received_at"], "string"),
        **dict.fromkeys(["is_status_callback", "body_truncated", "auto_submitted", "sender_authenticated"], "boolean"),
        **dict.fromkeys(["body_bytes", "num_media", "spam_score"], "number"),
    }
)
ADDRESSED_FIELDS = frozenset(
    {"channel", "kind", "is_status_callback", "message_sid", "message_id_source", "from", "to", "user_address"}
    | {"company_address", "received_at"}
)
# Where ``sendgrid.parse`` leaves the form for ``sendgrid.read`` (``Context.private``: never logged or shown).
UNREAD = "sendgrid_unread"


@dataclass(frozen=True, slots=True)
class Unread:
    """A post ``sendgrid.parse`` has addressed, whose content ``sendgrid.read`` reads once it is authentic."""

    form: MultipartForm
    addressing: Addressing
    max_text_bytes: int


def _fail(message: str) -> StepFailure:
    return StepFailure(PARSING_ERROR.code, message)


def _request(addressing: Addressing, channel: str, received_at: str) -> dict[str, Any]:
    """The request as far as it is read before the signature: the email's id and addresses."""
    sender = (addressing.sender or "").lower()
    return {
        "channel": channel,
        "kind": "message",
        "is_status_callback": False,
        "message_sid": addressing.message_id,
        "message_id_source": addressing.id_source,
        "from": sender,
        "to": addressing.recipients[0] if addressing.recipients else "",
        "user_address": sender,
        "company_address": addressing.company_address,
        "received_at": received_at,
    }


@register(
    "sendgrid.parse",
    provides="request",
    errors=(PARSING_ERROR, INVALID_SIGNATURE),
    # The timestamp is signed data, not a credential: a masked recording keeps it for the replay's window.
    auth_headers=(SIGNATURE_HEADER,),
    signature_expires=True,
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 10485760},
            "max_parts": {"type": "integer", "minimum": 4, "maximum": DEFAULT_MAX_PARTS},
            "max_age_seconds": {
                "type": "number",
                "minimum": 1,
                "maximum": 31536000,
                "description": "Oldest signature timestamp accepted. SendGrid re-posts a failed email for up to "
                "72 hours, maybe with its first signature, so the default is 4 days; replay records stop repeats.",
            },
            "replay_horizon_seconds": {
                "type": "number",
                "minimum": 1,
                "description": "How long the pipeline's replay records are kept: max_age_seconds and "
                "max_future_seconds together may not exceed it, or a post older than its record would be accepted "
                "again.",
            },
            "max_future_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
            "defer_content": {
                "type": "boolean",
                "description": "Read only the addresses and the email's id here, leaving the text, HTML, raw MIME "
                "parts and attachments to a sendgrid.read step after sendgrid.signature (unsigned posts then cost "
                "no full read). Default false: this step reads the whole email, as a pipeline file without "
                "sendgrid.read needs.",
            },
            "max_text_bytes": {
                "type": "integer",
                "minimum": 1024,
                "maximum": MAX_TEXT_BYTES,
                "description": "Longest text (UTF-8 bytes) kept, staged and handed off; a longer one is cut at "
                "a character boundary and marked body_truncated, with its whole size in body_bytes (default "
                "131072; the maximum keeps a stage row within DynamoDB's 400 KB item limit).",
            },
        },
    },
    example={"max_age_seconds": DEFAULT_MAX_AGE_SECONDS, "max_text_bytes": DEFAULT_MAX_TEXT_BYTES},
)
class SendGridParse:
    """Parse the Inbound Parse post: sender, recipient, subject, text, attachments, the email's stable id."""

    # The fields of the request it provides (``--check`` warns about a condition reading another: always null);
    # with ``defer_content``, ``sendgrid.read`` provides the rest once the signature is checked.
    request_fields: frozenset[str] = frozenset(REQUEST_FIELDS)
    request_field_kinds = REQUEST_FIELD_KINDS

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._channels = frozenset(info.channels)
        self._max_body = int(params.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        self._max_parts = int(params.get("max_parts", DEFAULT_MAX_PARTS))
        self._max_age = float(params.get("max_age_seconds", DEFAULT_MAX_AGE_SECONDS))
        self._max_future = float(params.get("max_future_seconds", 60))
        horizon = params.get("replay_horizon_seconds")
        if horizon is not None and self.signature_max_age_seconds > float(horizon):
            raise ParamError(
                ("max_age_seconds",),
                f"{self._max_age:g} s, and the {self._max_future:g} s a timestamp may be ahead of the clock, is longer "
                f"than the replay horizon ({float(horizon):g} s): a post older than its replay record would be "
                "accepted again",
            )
        self._max_text = int(params.get("max_text_bytes", DEFAULT_MAX_TEXT_BYTES))
        self._defer = bool(params.get("defer_content", False))
        if self._defer:
            self.request_fields = ADDRESSED_FIELDS

    @property
    def signature_max_age_seconds(self) -> float:
        """How long after its acceptance a signed post stays valid; replay records must live at least this long.

        That is its window and the time its timestamp may have been ahead of the clock (``runtime.verify`` checks).
        """
        return self._max_age + self._max_future

    def fresh_at(self, timestamp: str, now: float) -> bool:
        """Whether a post signed at ``timestamp`` is inside the window at ``now`` (``pipeline-dryrun`` asks)."""
        return is_fresh(timestamp, now, max_age_seconds=self._max_age, max_future_seconds=self._max_future)

    def _authentication(self, ctx: Context, http: HttpRequest) -> tuple[str, str]:
        signature, timestamp = http.header(SIGNATURE_HEADER), http.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise StepFailure(INVALID_SIGNATURE.code, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        now = ctx.services.clock.now().timestamp()
        if not self.fresh_at(timestamp, now):
            raise StepFailure(INVALID_SIGNATURE.code, STALE_SIGNATURE)
        return signature, timestamp

    def run(self, ctx: Context) -> StepResult:
        http = webhook_post(ctx, self._channels, PARSING_ERROR.code, "Inbound Parse posts")
        channel = http.channel
        signature, timestamp = self._authentication(ctx, http)
        from steps.sendgrid import multipart
        from steps.sendgrid.message import read_addressing

        try:
            form = multipart.parse(
                http.body, http.header("content-type") or "", max_body_bytes=self._max_body, max_parts=self._max_parts
            )
        except multipart.MultipartError as exc:
            raise _fail(str(exc)) from None
        repeated = [name for name in _SINGLE_FIELDS if len(form.fields.get(name, ())) > 1]
        if repeated:
            raise _fail(f"SendGrid posts each field once, yet {', '.join(repeated)} appears more than once")
        addressing = read_addressing(form, http.body)
        if not addressing.sender or not addressing.recipients:
            raise _fail("the email names no sender or no recipient")
        ctx.private["signed"] = (signature, timestamp, http.body)
        unread = Unread(form, addressing, self._max_text)
        request = _request(addressing, channel, iso_millis(ctx.services.clock.now()))
        decision = f"{channel} message ({addressing.id_source} id)"
        if self._defer:
            ctx.private[UNREAD] = unread
        else:
            from steps.sendgrid.read import completed

            request, decision = completed(request, unread)
        # From here on every log line of the invocation names the email (its id is a digest, no address).
        return StepResult(output=request, decision=decision, log={"message_sid": request["message_sid"]})
