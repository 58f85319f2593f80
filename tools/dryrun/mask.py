"""Keeping personal data and credentials out of the dry-run's output.

- ``Masker`` (unless ``--show-data``): phone numbers anywhere in a string keep only their last two
  digits (``whatsapp:+44*********96``, also inside ``conversation_id``), e-mail addresses only the first
  character of their local part (``k***@example.org``), and the display names of an e-mail's address fields
  (``from``, ``to``, ``cc``) become ``masked``, with or without an address (a Twilio ``From`` is a number); the
  values of free-text fields (``body``, ``content``, ``ProfileName``, ``subject``, ``filename``, ``FlowData``,
  location fields…) become ``[masked]``. Fail closed, as the capture: every value of an event's body field that a
  ``mask=text`` capture replaces whole (``runtime.masking.withheld_values``: any form field but ids, numbers,
  counts, statuses and types; any e-mail field but addresses and SendGrid's results) is ``[masked]`` wherever it
  shows (``Masker.for_event``), whatever the field is named. Of a conversation item (the handoff's
  ``conversation``, a rule's ``conversation.…`` inputs) only the attributes the pipelines read keep their text
  (``CONVERSATION_KEPT_ATTRIBUTES``): every other one keeps its structure, numbers and flags. SQS bodies are JSON
  text: they are masked field by field and re-encoded as the pipeline encoded each (the trigger with
  ``json.dumps``' spaced separators, the handoff compact). Any other string holding a JSON object or array keeps
  its structure only: every string and number in it becomes ``[masked]`` but under the structural keys
  (``runtime.masking.json_text_masked``: Twilio's ``ChannelMetadata`` keeps its ``type`` and ``WaId``, a
  WhatsApp Flows answer keeps nothing).
- ``Scrubber`` (always): every credential value known to the replay is replaced by ``***`` in every
  line written, whatever field it hides in and in any case, URL-encoded or base64-encoded too (as typed into a
  message): inside the strings of the records (before they are serialised, so JSON syntax and the report page's
  own script never change) and in free text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from runtime.masking import (
    ADDRESS_LIST_KEYS,
    MASKED_TEXT,
    PERSONAL_TEXT_KEYS,
    display_names_masked,
    embedded_json,
    json_text_masked,
    withheld_values,
)
from steps.support import ExactFloat, json_number, json_safe, json_text
from tools.console import json_line

__all__ = ["MASKED_TEXT", "MASK_MODES_HELP", "Masker", "Scrubber", "mask_number"]

# What each --mask mode of the CLIs keeps (runtime.masking.MASK_MODES).
MASK_MODES_HELP = (
    "none: the body kept (credentials always dropped); text: free text masked; "
    "all: numbers and addresses pseudonymized too, with --key-env's key"
)

_NUMBER = re.compile(r"(?<![0-9A-Za-z_+])(\+?)([0-9]{7,15})(?![0-9A-Za-z_])")
# An address: its local part quoted, or a run of RFC 5322's atext and dots in any script (RFC 6531, as the capture's
# masking reads it: runtime.masking), but '#', which joins the address to the rest of a conversation id; a domain of
# labels in any script.
_ADDRESS = re.compile(r"""("[^"\\\r\n]{1,62}"|[\w.!$%&'*+/=?^`|~-]+)@((?:[^\W_][\w-]*\.)+[^\W\d_]{2,})""")


def mask_address(match: re.Match[str]) -> str:
    """An e-mail address with its local part hidden but for its first character."""
    return f"{match.group(1)[0]}***@{match.group(2)}"


def mask_number(match: re.Match[str]) -> str:
    """A phone number with all but its last two digits hidden."""
    sign, digits = match.group(1), match.group(2)
    return sign + "*" * (len(digits) - 2) + digits[-2:]


# A JSON object written with json.dumps' default separators (``{"key": ``), as steps.sqs writes the trigger.
_SPACED_OBJECT = re.compile(r'\{"(?:[^"\\]|\\.)*": ')


def _encoding_of(text: str) -> dict[str, Any]:
    """The ``json.dumps`` options that wrote the message ``text``, so that its masked copy is written alike.

    ``steps.sqs`` sends the trigger as ``json.dumps`` writes it (``", "``, ``": "``, non-ASCII escaped) and the
    handoff compact and unescaped. Masking puts in ASCII only, so an ASCII text stays ASCII and a spaced one spaced.
    """
    spaced = _SPACED_OBJECT.match(text) is not None
    return {"ensure_ascii": text.isascii(), "separators": (", ", ": ") if spaced else (",", ":")}


class Masker:
    """Masks phone numbers and free text in output values; passes everything through with ``show_data``."""

    def __init__(self, *, show_data: bool) -> None:
        self.show_data = show_data
        # The same numbers and ids recur in every event of a conversation: masking each once is enough.
        self._masked: dict[str, str] = {}
        self._withheld: frozenset[str] = frozenset()

    def for_event(self, event: Any) -> Masker:
        """A masker that also hides whole every value of ``event`` that its capture masks, wherever it is met.

        The capture keeps a form's listed fields only (``runtime.masking.withheld_values``): a sender's city, an ad's
        text, any field Twilio or SendGrid adds later shows as ``[masked]``, in a handoff's ``request`` as in a
        rule's inputs. The masks already made are shared.
        """
        if self.show_data or not isinstance(event, Mapping):
            return self
        masker = Masker(show_data=False)
        masker._masked = self._masked
        masker._withheld = withheld_values(event)
        return masker

    def text(self, value: str) -> str:
        """A string with the phone numbers and addresses in it masked (and free text, when it holds JSON)."""
        return MASKED_TEXT if value in self._withheld else self._plain(value)

    def _key(self, name: Any) -> str:
        """A key as shown: its numbers and addresses masked, never hidden whole, so a record keeps its shape."""
        return self._plain(name) if type(name) is str else str(name)

    def _plain(self, value: str) -> str:
        """``text`` but for the withheld values."""
        masked = self._masked.get(value)
        if masked is None:
            if self.show_data:
                return value
            if len(self._masked) >= _CACHE_LIMIT:
                self._masked.clear()
            masked = value
            document = embedded_json(value) if value[:1] in _JSON_STARTS else None
            if document is not None:
                hidden = self._mask(json_text_masked(document), None)
                if hidden != document:
                    masked = json.dumps(hidden, ensure_ascii=False, separators=(",", ":"))
            if _DIGITS.search(masked):
                masked = _NUMBER.sub(mask_number, masked)
            if "@" in masked:
                masked = _ADDRESS.sub(mask_address, masked)
            self._masked[value] = masked
        return masked

    def data(self, value: Any, key: str | None = None) -> Any:
        """``value`` as JSON-safe data (as ``steps.support.json_safe``), masked; ``key`` is its field."""
        return json_safe(value) if self.show_data else self._mask(value, key)

    def inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """A rule's inputs (dotted path → value), masked by the last segment of each path.

        A conversation's attribute the pipeline does not read (``CONVERSATION_KEPT_ATTRIBUTES``) shows no text.
        """
        return {path: self._input(path, value) for path, value in inputs.items()}

    def _input(self, path: str, value: Any) -> Any:
        if self.show_data:
            return json_safe(value)
        parts = path.split(".")
        if parts[0] == CONVERSATION_KEY and len(parts) > 1 and not conversation_attribute_kept(parts[1]):
            return self._hidden(value)
        if path == CONVERSATION_KEY and type(value) is dict:
            return self._item(value)
        return self._mask(value, parts[-1])

    def _item(self, item: Mapping[Any, Any]) -> dict[str, Any]:
        """A conversation item: the attributes the pipeline reads masked as anywhere, every other one's text hidden."""
        return {
            self._key(name): (
                self._field(name, value) if conversation_attribute_kept(str(name)) else self._hidden(value)
            )
            for name, value in item.items()
        }

    def _hidden(self, value: Any) -> Any:
        """``value`` with its structure, numbers, booleans and nulls kept, and every non-empty string ``[masked]``."""
        kind = type(value)
        if kind is str:
            return MASKED_TEXT if value else value
        if kind is dict:
            return {self._key(name): self._hidden(item) for name, item in value.items()}
        if kind is list or kind is tuple:
            return [self._hidden(item) for item in value]
        safe = json_safe(value)  # a Decimal, a set, binary (base64 text)
        return value if safe is value else self._hidden(safe)

    def body(self, text: str) -> str:
        """A message body: JSON text masked field by field (other text as free text)."""
        if self.show_data:
            return text
        try:
            document = json.loads(text, parse_float=json_number)  # numbers keep every digit the body has
        except ValueError:
            return MASKED_TEXT if text else text
        return json_text(self._mask(document, None), **_encoding_of(text))

    def _mask(self, value: Any, key: str | None) -> Any:
        """JSON-safe and masked in one pass (every output line of a long replay goes through here)."""
        kind = type(value)
        personal = key is not None and key.lower() in PERSONAL_TEXT_KEYS
        if kind is str:
            return MASKED_TEXT if personal and value else self._text(value, key)
        if kind is dict:
            return {self._key(name): self._field(name, item) for name, item in value.items()}
        if kind is list or kind is tuple:
            if personal:
                return [MASKED_TEXT if item else item for item in value]
            return [self._mask(item, key if key in PIPELINE_WORD_KEYS else None) for item in value]
        if kind is bool or value is None:
            return value
        if personal:
            return MASKED_TEXT
        if kind is int or kind is float or kind is ExactFloat:
            return value
        safe = json_safe(value)
        return safe if type(safe) in _SCALARS else self._mask(safe, key)

    def _text(self, value: str, key: str | None) -> str:
        """A string under ``key``: an e-mail address list's display names masked too (``Kim Lee <k***@…>``).

        With or without an address, as the capture masks them (``Zelda Quillfeather``, ``Zelda <>``); a Twilio
        ``From`` or ``To`` (``whatsapp:+447700900101``, ``+14155238886``) holds no display name and is kept.
        """
        if value in self._withheld:
            if key is None or key not in PIPELINE_WORD_KEYS:
                return MASKED_TEXT
            return self._plain(value)
        if (
            not self.show_data
            and key is not None
            and key.lower() in ADDRESS_LIST_KEYS
            and ("@" in value or not _CHANNEL_ADDRESS.fullmatch(value))
        ):
            value = display_names_masked(value)
        return self.text(value)

    def _field(self, name: Any, value: Any) -> Any:
        kind = type(value)
        if kind is dict and name == CONVERSATION_KEY:
            return self._item(value)  # the handoff message's copy of the conversation item
        if kind is str:
            if value and str(name).lower() in PERSONAL_TEXT_KEYS:
                return MASKED_TEXT
            return self._text(value, str(name))
        if (kind is int or kind is bool or value is None) and str(name).lower() not in PERSONAL_TEXT_KEYS:
            return value
        return self._mask(value, str(name))


# Where a pipeline's context, and the handoff message (CONTRACT §2), hold the conversation item.
CONVERSATION_KEY = "conversation"
# The attributes of a conversation item (CONTRACT §2) the pipelines read, and the index keys conversations are found by
# (``gsi_…``): shown as anywhere (numbers and addresses masked). Other services write the others (message history,
# ``company_rep``, ``ai_config``, whatever they add later): fail closed, their text is ``[masked]`` (structure, numbers
# and flags kept).
CONVERSATION_KEPT_ATTRIBUTES = frozenset(
    {
        "primary_channel",
        "conversation_id",
        "channel_config",
        "project_status",
        "allowed_channels",
        "conversation_status",
        "hand_off_to_human",
        "auto_queue_reply_message",
        "auto_queue_reply_message_from_number",
        "recipient_tel",
        "recipient_email",
        "created_at",
        "task_complete",
    }
)


# The fields that hold the pipelines' own words (a channel, a kind, a status), never an event's text: a withheld value
# (``Masker.for_event``) is shown under them, so that a message reading ``whatsapp`` or ``open`` hides no channel or
# status (their numbers and addresses are masked as anywhere). The conversation's attributes the pipelines read, and
# what the parsers derive from the fields the capture keeps (``request.channel``, the stage row's ``channel_type``).
PIPELINE_WORD_KEYS = CONVERSATION_KEPT_ATTRIBUTES | {"channel", "channel_type", "kind"}


def conversation_attribute_kept(name: str) -> bool:
    """Whether a conversation item's attribute shows its text (``CONVERSATION_KEPT_ATTRIBUTES``, an index key)."""
    return name in CONVERSATION_KEPT_ATTRIBUTES or name.startswith("gsi_")


_DIGITS = re.compile(r"[0-9]{7}")
# A Twilio ``From`` or ``To``: a number, or a channel's address (``whatsapp:+447700900101``, ``messenger:1234567``).
_CHANNEL_ADDRESS = re.compile(r"\s*(?:\+?[0-9]+|[a-z][a-z0-9-]*:[^\s<>()\[\],;\"@]+)\s*", re.IGNORECASE)
# A string that may hold JSON (checked once per distinct string: the masked form is cached).
_JSON_STARTS = frozenset({"{", "[", " ", "\t", "\r", "\n"})
_CACHE_LIMIT = 100_000
_SCALARS = frozenset({int, float, bool, type(None)})


class Scrubber:
    """Replaces every known credential value with ``***`` in text and data about to be written.

    A value is found in any case and as it may be typed into a message: URL-encoded, base64-encoded (either
    alphabet, padded or not, or starting a longer encoded text): ``typed_forms``. ``__call__`` scrubs free text;
    ``data`` scrubs the strings of data about to be serialised, never its syntax.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        # Every typed form, lower-cased (matched in any case).
        self._typed: tuple[str, ...] = ()
        # Each form as it reads inside a JSON string too (quotes, backslashes and controls escaped), and inside a
        # JSON line (``tools.console.json_line``: U+2028, U+2029 and U+0085 escaped too).
        self._forms: tuple[str, ...] = ()
        self._any_form = re.compile("(?!)")
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also scrub these values (credentials of at least four characters)."""
        fresh = {value for value in secrets if len(value) >= 4} - self._values
        if fresh:
            self._values |= fresh
            typed = {form.lower() for value in self._values for form in typed_forms(value)}
            ordered = sorted(typed, key=len, reverse=True)
            self._typed = tuple(ordered)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered), re.IGNORECASE)
            escaped = [json.dumps(form, ensure_ascii=False)[1:-1] for form in ordered]
            self._forms = tuple(dict.fromkeys([*ordered, *escaped, *map(json_line, escaped)]))
            self._any_form = re.compile("|".join(re.escape(form) for form in self._forms))

    def holds(self, text: str) -> bool:
        """Whether a known value occurs in ``text``, as it is or escaped as in JSON (a quick test before ``data``)."""
        if not self._forms:
            return False
        lowered = text.lower()
        if len(self._forms) <= _QUICK_CHECK_LIMIT:
            return any(form in lowered for form in self._forms)
        return self._any_form.search(lowered) is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        # Substring tests are several times faster than the regex; it only runs when one of them hits.
        if len(self._typed) <= _QUICK_CHECK_LIMIT:
            lowered = text.lower()
            if not any(form in lowered for form in self._typed):
                return text
        return self._pattern.sub("***", text)

    def data(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, scalars) with every string in it scrubbed, keys included."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(key) if isinstance(key, str) else key: self.data(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item) for item in value]
        return value


def typed_forms(value: str) -> set[str]:
    """``value`` as it may be typed into a message: as it is, URL-encoded, and base64-encoded.

    Base64 in either alphabet, padded or not, and, when they are 16 characters or more, the characters that encode
    its bytes only wherever it sits in a longer encoded text (at each of the 3 offsets a byte can have in a base64
    group: an HTTP Basic header's token follows ``AccountSid:``). Every form is scrubbed in any case (``Scrubber``).
    """
    raw = value.encode("utf-8", "surrogatepass")
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode("ascii")
        forms |= {encoded, encoded.rstrip("=")}
        for offset in range(3):
            # Of the value after ``offset`` other bytes: the characters whose 6 bits are all the value's.
            shifted = encode(bytes(offset) + raw).decode("ascii")
            inner = shifted[-(-offset * 8 // 6) : (offset + len(raw)) * 8 // 6]
            if len(inner) >= 16:
                forms.add(inner)
    return {form for form in forms if len(form) >= 4}


_QUICK_CHECK_LIMIT = 64
