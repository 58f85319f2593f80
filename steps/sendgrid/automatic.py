"""Whether an email was sent by a program rather than a person, from its headers (RFC 3834 and common usage).

An answer to such an email goes to a responder that may answer again: a mail loop. It is automatic when:

- ``Auto-Submitted`` has any value but ``no`` (RFC 3834 §5: ``auto-replied`` for vacation and out-of-office
  replies, ``auto-generated`` for notices and helpdesk acknowledgements; Exchange, Gmail and most responders
  set it);
- ``Precedence`` is ``bulk``, ``junk`` or ``auto_reply`` (older responders, autoresponders and bulk senders).
  ``list`` is not: a mailing-list post can be a person writing;
- ``X-Autoreply`` or ``X-Autorespond`` has any value but ``no`` (vacation, qmail and autoresponder scripts);
- the email is a ``multipart/report`` (RFC 6522): a read receipt (RFC 8098, sent From the user, by Outlook
  without ``Auto-Submitted``) or a delivery report, which a program writes;
- its envelope sender is null (``MAIL FROM:<>``, ``is_null_reverse_path``): RFC 5321 §4.5.5 reserves it for
  notifications (delivery reports, vacation replies), and RFC 3834 §2 forbids responding to them.

``X-Auto-Response-Suppress`` is not a sign: Outlook sets it on ordinary mail too. Subjects ("Out of office",
"Automatic reply") are not read: a person may write them, and responders that use them also set the headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["HEADERS", "is_automatic", "is_null_reverse_path"]

# The headers ``is_automatic`` reads.
HEADERS = ("Auto-Submitted", "Precedence", "X-Autoreply", "X-Autorespond", "Content-Type")
_FIRST_WORD = re.compile(r"\s*([^\s;(]*)")
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply", "auto-reply"})
_RESPONDER_HEADERS = ("Auto-Submitted", "X-Autoreply", "X-Autorespond")
_REPORT = "multipart/report"


def is_automatic(headers: Mapping[str, Sequence[str]]) -> bool:
    """True when the values of ``HEADERS`` (by name; every value of each) say a program sent the email."""
    if any(_word(value) in _BULK_PRECEDENCE for value in headers.get("Precedence", ())):
        return True
    if any(_word(value) == _REPORT for value in headers.get("Content-Type", ())):
        return True
    return any(_word(value) not in ("", "no") for name in _RESPONDER_HEADERS for value in headers.get(name, ()))


def is_null_reverse_path(envelope: Mapping[str, object]) -> bool:
    """True when SendGrid's ``envelope`` names a null sender (``""`` or ``<>``); False when it names none at all."""
    sender = envelope.get("from")
    return isinstance(sender, str) and sender.strip() in ("", "<>")


def _word(value: str) -> str:
    """The value's first word, lower case: ``auto-replied (vacation)`` is ``auto-replied``."""
    match = _FIRST_WORD.match(value)
    return match.group(1).lower() if match else ""
