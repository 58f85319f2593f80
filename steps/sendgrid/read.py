"""``sendgrid.read``: read an authentic Inbound Parse post's text, subject, attachments and screening signs.

``sendgrid.parse`` reads, before the signature is checked, only what the lookup and the event's log line need
(the addresses and the email's id); anyone can post, so the costly rest (HTML to text, a raw MIME message's parts,
the attachments' summaries, each linear in a body of up to 5 MiB) waits for this step, placed after
``sendgrid.signature``. It completes ``request`` from the form ``sendgrid.parse`` left in ``Context.private``.

``request.fields`` keeps the small header-like fields, never the bodies or raw headers; ``request.auto_submitted``
says whether the headers mark the email as sent by a program (an out-of-office reply, say:
``steps.sendgrid.automatic``), and ``request.sender_authenticated`` whether SPF or DKIM vouch for the sender's
domain (``steps.sendgrid.senderauth``), for the screening rules. What is staged and handed off is bounded, so that
no email is refused for its size after it was accepted: the text is cut to ``sendgrid.parse``'s ``max_text_bytes``
of UTF-8 at a character boundary (``body_truncated`` and ``body_bytes``, the whole text's size, say so), each kept
field to 2 KiB, and ``media`` lists the first 128 attachments with names and types clipped (``num_media`` counts
them all). An HTML-only email's text is read from its first ``HTML_CHARS_PER_TEXT_BYTE`` x ``max_text_bytes``
characters of HTML, in time linear in them, and is marked ``body_truncated`` when the HTML was longer
(``body_bytes`` is then the size of that text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.context import Context, StepResult
from engine.registry import BuildInfo, register
from steps.sendgrid.parse import (
    HTML_CHARS_PER_TEXT_BYTE,
    KEPT_FIELDS,
    MAX_FIELD_BYTES,
    MAX_MEDIA_LISTED,
    REQUEST_FIELD_KINDS,
    REQUEST_FIELDS,
    UNREAD,
    Unread,
)
from steps.support import utf8_prefix

if TYPE_CHECKING:
    from steps.sendgrid.message import Attachment, InboundEmail
    from steps.sendgrid.multipart import MultipartForm

__all__ = ["SendGridRead"]

_MAX_FILENAME_BYTES = 255
_MAX_CONTENT_TYPE_BYTES = 127
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# The truncation line keeps the logger (its "location") it was written under before this step read the text.
logger = logging.getLogger("steps.sendgrid.parse")


def _utf8_text(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD: text UTF-8 can carry, as DynamoDB must store it.

    A filename's charset is the sender's to name (RFC 2231's ``filename*=utf-7''…``, an encoded word), and a
    codec such as UTF-7 decodes to lone surrogates, which DynamoDB's UTF-8 strings cannot hold (the stage row).
    """
    return _SURROGATE.sub("\ufffd", value)


def _media(attachments: tuple[Attachment, ...]) -> list[dict[str, Any]]:
    """The first ``MAX_MEDIA_LISTED`` attachments' summaries, names and types clipped, as UTF-8 text."""
    return [
        {
            "filename": utf8_prefix(_utf8_text(item.filename), _MAX_FILENAME_BYTES)[0],
            "content_type": utf8_prefix(_utf8_text(item.content_type), _MAX_CONTENT_TYPE_BYTES)[0],
            "size": item.size,
        }
        for item in attachments[:MAX_MEDIA_LISTED]
    ]


def _fields(form: MultipartForm) -> dict[str, str]:
    """The kept fields present in the form, each clipped to ``MAX_FIELD_BYTES``."""
    return {
        name: utf8_prefix(value, MAX_FIELD_BYTES)[0] for name in KEPT_FIELDS if (value := form.first(name)) is not None
    }


def _request(
    email: InboundEmail, addressed: Mapping[str, Any], form: MultipartForm, max_text_bytes: int
) -> dict[str, Any]:
    """The whole request: what ``sendgrid.parse`` addressed, with the email's content, in the documented order."""
    text, text_bytes = utf8_prefix(email.text, max_text_bytes)
    content = {
        "subject": utf8_prefix(email.subject, MAX_FIELD_BYTES)[0],
        "body": text,
        "body_truncated": text_bytes > max_text_bytes or email.text_cut,
        "body_bytes": text_bytes,
        "num_media": len(email.attachments),
        "media": _media(email.attachments),
        "spam_score": email.spam_score,
        "auto_submitted": email.auto_submitted,
        "sender_authenticated": email.sender_authenticated,
        "fields": _fields(form),
    }
    return {name: content[name] if name in content else addressed[name] for name in REQUEST_FIELDS}


def completed(addressed: Mapping[str, Any], unread: Unread) -> tuple[dict[str, Any], str]:
    """The whole request, from what ``sendgrid.parse`` addressed and its form, and the decision that reads it.

    A text cut to ``max_text_bytes`` is logged (``email text truncated``) and said in the decision.
    """
    from steps.sendgrid.message import read_content

    max_html_chars = HTML_CHARS_PER_TEXT_BYTE * unread.max_text_bytes
    email = read_content(unread.form, unread.addressing, max_html_chars=max_html_chars)
    request = _request(email, addressed, unread.form, unread.max_text_bytes)
    decision = f"{request['channel']} message ({email.id_source} id)"
    if request["body_truncated"]:
        decision += f", text of {request['body_bytes']} bytes cut to {unread.max_text_bytes}"
        if email.text_cut:
            decision += f" (read from the HTML's first {max_html_chars} characters)"
        logger.info("email text truncated", extra={"decision": decision, "message_sid": request["message_sid"]})
    return request, decision


@register("sendgrid.read", provides="request", requires=("request", "signature"))
class SendGridRead:
    """Read the signed email's text, subject, attachments and headers into the request (after the signature)."""

    # The fields of the request it provides (``--check`` warns about a condition reading another: always null).
    request_fields = frozenset(REQUEST_FIELDS)
    request_field_kinds = REQUEST_FIELD_KINDS

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        pass

    def run(self, ctx: Context) -> StepResult:
        unread: Unread | None = ctx.private.pop(UNREAD, None)
        if unread is None:
            # sendgrid.parse without defer_content has read the whole email already: the request stays as it is.
            return StepResult(decision="read by sendgrid.parse (no defer_content)")
        request, decision = completed(ctx.doc["request"], unread)
        return StepResult(output=request, decision=decision)
