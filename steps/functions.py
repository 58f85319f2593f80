"""Expression functions for conditions: text matching and local time, registered for every expression.

Text: ``lower``, ``upper``, ``has_word`` (whole words, any case) and ``matches`` (a regular expression).
Time, over an ISO-8601 time such as ``request.received_at`` in a named (IANA) time zone: ``hour``,
``hhmm`` (09:30 is 930), ``weekday`` (``monday`` … ``sunday``) and ``local_date`` (``2026-12-25``).

Every function is deterministic: time functions read the time they are given, never the clock. A
literal pattern or zone is checked when the expression is compiled, so a mistake is a located load
error; a value that cannot be used at run time is an evaluation error that names no value.

A pattern that can backtrack exponentially (a repetition inside a repetition, ``(a+)+``, or a repeated
alternation whose branches may match alike, ``(a|aa)*``) is refused, written or read from the document:
``matches`` runs on the sender's text, and one such message would hold the function until its timeout.
A search is also given ``MATCH_BUDGET_SECONDS`` (in the main thread: a ``SIGALRM`` interrupts it, a timer
already armed set aside meanwhile), so a pattern slow on a long text (``.*x.*y`` over an email's body) fails the
condition instead, live and in a shadow candidate alike. Arming and disarming that timer costs about 10 µs a
search on the development machine (the two handler swaps), where a short text's search itself takes a fraction
of one; the shipped rules call no ``matches``. The timer is ``engine.timebox``'s, the one that bounds the shadow
candidate as a whole. A lookaround, atomic group or possessive repetition
is checked like the rest of the pattern. A pattern (or ``has_word``'s words) written in the rules is compiled as they
load and kept, however many they hold; of those read from the document, one up to ``MAX_KEPT_CHARS`` long is compiled
once and kept among the 256 last, of longer ones only the ``LONG_KEPT`` last: the memory of a warm container does not
grow with each long text it is given.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from engine.errors import did_you_mean
from engine.expressions import register_function
from engine.timebox import TimeboxExpired, TimeboxUnavailable, call_within

__all__ = [
    "LONG_KEPT",
    "MATCH_BUDGET_SECONDS",
    "MAX_KEPT_CHARS",
    "WEEKDAYS",
    "has_word",
    "hhmm",
    "hour",
    "local_date",
    "matches",
    "register_typed",
    "weekday",
]

MATCH_BUDGET_SECONDS = 0.1
# A pattern (or has_word's words) up to this long is compiled once and kept (256 of them): those written in rules, and
# short ones read from the document. Of longer ones only the LONG_KEPT last are kept: compiled, a pattern holds about
# 17 bytes per character, and one read from the document (a conversation's attribute, the sender's own text) can be as
# long as a message, so a warm container keeping each distinct one filled its memory; the same long pattern on every
# event (a conversation's) is still compiled once.
MAX_KEPT_CHARS = 1000
LONG_KEPT = 4
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


_EXPONENTIAL = (
    "can take exponential time on some texts (it repeats a repetition, as (a+)+ or (\\w+\\s?)* do, or an "
    "alternation whose branches may match alike, as (a|aa)* does); repeat a single character class ([\\w\\s]+), "
    "or make the group atomic ((?>…)+) or the repetition possessive (++, *+)"
)


@dataclass(frozen=True)
class _Refused:
    """Why a pattern cannot be used: ``re``'s reason when it does not compile, else None (it backtracks)."""

    invalid: str | None


# Patterns and words written in the rules (literal arguments, seen as an expression compiles), compiled then and kept
# for the process's life: the caches keep the 256 last used, and a set of more keyword rules than that, tried in the
# same order on every event, found each gone when it came round again and compiled every one on every event.
_WRITTEN_PATTERNS: dict[str, re.Pattern[str]] = {}
_WRITTEN_WORDS: dict[str, re.Pattern[str]] = {}


@lru_cache(maxsize=256)
def _pattern(source: str) -> re.Pattern[str] | _Refused:
    """``source`` compiled, or why it is refused (cached alike: an event's refused pattern is judged once)."""
    return _judged(source, re.compile)


def _search_pattern(source: str) -> re.Pattern[str] | _Refused:
    """``_pattern``, for a pattern up to ``MAX_KEPT_CHARS`` long; of longer ones, the last few only (``LONG_KEPT``).

    Those are kept neither in ``_pattern``'s cache nor in ``re``'s own. One written in the rules is kept apart.
    """
    written = _WRITTEN_PATTERNS.get(source)
    if written is not None:
        return written
    return _pattern(source) if len(source) <= MAX_KEPT_CHARS else _long_pattern(source)


@lru_cache(maxsize=LONG_KEPT)
def _long_pattern(source: str) -> re.Pattern[str] | _Refused:
    return _judged(source, _compile_unkept)


def _compile_unkept(source: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(source, flags)`` without ``re``'s cache, which would keep it."""
    from re import _compiler  # type: ignore[attr-defined]

    compiled: re.Pattern[str] = _compiler.compile(source, flags)
    return compiled


def _judged(source: str, compile_: Callable[[str], re.Pattern[str]]) -> re.Pattern[str] | _Refused:
    """``source`` compiled with ``compile_``, or why it is refused."""
    try:
        compiled = compile_(source)
        backtracks = _backtracks(_parse(source, compiled.flags), 0, bool(compiled.flags & re.IGNORECASE))
    except re.error as exc:
        return _Refused(exc.msg)
    except OverflowError:  # a repetition such as {99999999999}
        return _Refused("the repetition number is too large")
    except RecursionError:  # in re's parser or in the walk below
        return _Refused("groups nested too deeply")
    return _Refused(None) if backtracks else compiled


def _parse(source: str, flags: int) -> Any:
    from re import _parser  # type: ignore[attr-defined]

    return _parser.parse(source, flags)


def _backtracks(items: Any, repeated: int, fold: bool) -> bool:
    """True when the parsed pattern ``items`` can backtrack exponentially.

    ``repeated`` says what encloses them: 0 nothing, 1 a bounded repetition ({2,5}), 2 an unbounded one (+, *).
    Inside an unbounded repetition, any repetition of more than one (``+``, ``{1,3}``) and any alternation
    whose branches do not start with distinct literal characters (``fold``: distinct in any case, where case is
    ignored) is refused; inside a bounded one, an unbounded repetition. Atomic groups and possessive repetitions
    are not backtracked into once matched, so they reset what encloses them, but what they hold can still
    backtrack while they match (``(?>(a+)+b)``).
    """
    from re import _constants as sre  # type: ignore[attr-defined]

    for op, av in items:
        inner, inner_fold, children = repeated, fold, []
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, body = av
            unbounded = high == sre.MAXREPEAT
            if (repeated == 2 and high > 1 and low != high) or (repeated == 1 and unbounded):
                return True
            inner, children = max(repeated, 2 if unbounded else 1 if high > 1 else 0), [body]
        elif op is sre.BRANCH:
            if repeated == 2 and not _distinct_starts(av[1], fold):
                return True
            children = list(av[1])
        elif op is sre.SUBPATTERN:  # (group, flags added, flags removed, items): (?i:…) and (?-i:…) scope case
            added, removed = av[1], av[2]
            inner_fold = bool(added & sre.SRE_FLAG_IGNORECASE) or (fold and not removed & sre.SRE_FLAG_IGNORECASE)
            children = [av[3]]
        elif op is sre.ATOMIC_GROUP:
            inner, children = 0, [av]
        elif op is sre.POSSESSIVE_REPEAT:
            inner, children = 0, [av[2]]
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            children = [av[1]]
        elif op is sre.GROUPREF_EXISTS:
            children = [part for part in av[1:] if part]
        if any(_backtracks(child, inner, inner_fold) for child in children):
            return True
    return False


def _distinct_starts(branches: Sequence[Any], fold: bool) -> bool:
    """True when every branch starts with a literal character and no two with the same one (``fold``: in any case)."""
    from re import _constants as sre  # type: ignore[attr-defined]

    if not all(len(branch) and branch[0][0] is sre.LITERAL for branch in branches):
        return False
    # Where case is ignored, casefold() gives characters matched alike one key (K, k and the Kelvin sign K).
    keys = [chr(branch[0][1]).casefold() if fold else chr(branch[0][1]) for branch in branches]
    return len(set(keys)) == len(keys)


def _word(word: str) -> re.Pattern[str]:
    """The pattern finding ``word`` as whole words, kept as ``_search_pattern`` keeps a pattern."""
    written = _WRITTEN_WORDS.get(word)
    if written is not None:
        return written
    return _kept_word(word) if len(word) <= MAX_KEPT_CHARS else _long_word(word)


@lru_cache(maxsize=256)
def _kept_word(word: str) -> re.Pattern[str]:
    return re.compile(_word_source(word), re.IGNORECASE)


@lru_cache(maxsize=LONG_KEPT)
def _long_word(word: str) -> re.Pattern[str]:
    return _compile_unkept(_word_source(word), re.IGNORECASE)


def _word_source(word: str) -> str:
    words = r"\s+".join(re.escape(part) for part in word.split())
    return rf"(?<!\w){words}(?!\w)"


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    """The IANA zone names, as the ``tzdata`` package lists them: the same wherever the rules run.

    The machine's own zone files are no guide: ``localtime`` (the machine's zone) is among them, and on a
    case-insensitive disk (macOS) ``europe/london`` opens one, while the Lambda has neither.
    """
    from importlib import resources

    try:
        return frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ImportError, OSError):
        from zoneinfo import available_timezones

        return frozenset(available_timezones()) - {"localtime", "posixrules"}


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if name not in _zone_names():
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("got a name that is not a time zone (write one such as 'Europe/London')") from None


def _composed(text: str) -> str:
    """``text`` in Unicode's composed form (NFC): é typed as e and a combining accent becomes the one letter é."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


# Phones' smart punctuation turns a typed ' into U+2019; U+02BC and U+2018 stand in for it too.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'"})


def _as_typed(text: str) -> str:
    """``text`` composed (``_composed``), each typographic apostrophe the typed one.

    ASCII text holds neither and is read as it is: the table's look-up for each character took as long as the search.
    """
    return text if text.isascii() else _composed(text).translate(_APOSTROPHES)


def has_word(text: str, word: str) -> bool:
    """True when ``word`` (one word or several) appears in ``text`` as whole words, in any case.

    Any case as Unicode folds it too (``straße`` in ``STRASSE``), beside ``re``'s one-letter case matching
    (``istanbul`` in ``İstanbul``, which folding turns into two letters); accents in either Unicode form
    (``josé`` in ``Jose`` and a combining accent); a typographic apostrophe as the typed one (``don't`` in
    ``don\u2019t``).
    """
    if not word.strip():
        raise ValueError("needs a word to look for, got empty text")
    text, word = _as_typed(text), _as_typed(word)
    if _word(word).search(text) is not None:
        return True
    # Folding only differs from re's case matching beyond ASCII (ß, ﬁ, ς): plain text is not read twice.
    return not (text.isascii() and word.isascii()) and _word(word.casefold()).search(text.casefold()) is not None


def matches(text: str, pattern: str) -> bool:
    """True when the regular expression ``pattern`` matches somewhere in ``text`` (``(?i)`` ignores case).

    The text is read in Unicode's composed form (NFC), as patterns are written: ``é`` is one character.
    """
    compiled = _search_pattern(pattern)
    if isinstance(compiled, _Refused):
        why = _EXPONENTIAL if compiled.invalid is None else "is not a valid regular expression"
        raise ValueError(f"got a pattern that {why}")
    return _search_within(compiled, _composed(text), MATCH_BUDGET_SECONDS)


def _search_within(compiled: re.Pattern[str], text: str, seconds: float) -> bool:
    """``compiled.search(text)``, interrupted after ``seconds`` (``engine.timebox``, nested in an armed timer).

    A real-time timer already armed (a shadow candidate's budget) keeps its deadline: with no more than
    ``seconds`` left it alone bounds the search; with more, it is set aside for the search and armed again with
    what it has left, so a search is cut off in the shadow as it would be live. Off the main thread, or when
    ``SIGALRM``'s handler could not be put back, the search runs unbounded.
    """
    try:
        return call_within(seconds, lambda: compiled.search(text) is not None, nested=True)
    except TimeboxUnavailable:
        return compiled.search(text) is not None
    except TimeboxExpired:
        budget = f"{seconds * 1000:.0f} ms"
        raise ValueError(f"took longer than {budget} on this text; anchor the pattern and avoid .* in it") from None


def _local(time: str | None, zone: str) -> datetime:
    if time is None:
        raise ValueError("got null where it needs a time (ISO-8601 text such as request.received_at)")
    try:
        # RFC 3339's lower-case t and z too, as the conversation lookup reads created_at (``created_instant``).
        moment = datetime.fromisoformat(time.strip().upper())
    except ValueError:
        raise ValueError("got text that is not an ISO-8601 time") from None
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(_zone(zone))
    except OverflowError:  # 9999-12-31T23:59:59Z east of UTC, 0001-01-01T00:30:00Z west of it
        raise ValueError("got a time outside the years 1 to 9999 in that zone") from None


def hour(time: str | None, zone: str) -> int:
    """The hour (0-23) of ``time`` in ``zone``."""
    return _local(time, zone).hour


def hhmm(time: str | None, zone: str) -> int:
    """The time of day of ``time`` in ``zone`` as a number: 09:30 is 930, 17:05 is 1705."""
    local = _local(time, zone)
    return local.hour * 100 + local.minute


def weekday(time: str | None, zone: str) -> str:
    """The day of the week of ``time`` in ``zone``: ``monday`` … ``sunday``."""
    return WEEKDAYS[_local(time, zone).weekday()]


def local_date(time: str | None, zone: str) -> str:
    """The date of ``time`` in ``zone``, as ``YYYY-MM-DD``."""
    return _local(time, zone).date().isoformat()


def _check_pattern(index: int, value: Any) -> str | None:
    if index != 1 or not isinstance(value, str):
        return None
    compiled = _WRITTEN_PATTERNS.get(value) or _judged(value, _compile_unkept)
    if not isinstance(compiled, _Refused):
        _WRITTEN_PATTERNS[value] = compiled
        return None
    if compiled.invalid is None:
        return f"the pattern {value!r} {_EXPONENTIAL}"
    return f"invalid regular expression {value!r}: {compiled.invalid}"


def _check_word(index: int, value: Any) -> str | None:
    if index != 1 or not isinstance(value, str):
        return None
    if not value.strip():
        return "the word to look for is empty"
    # The words has_word looks for: the word as it reads it, and folded when either text is beyond ASCII.
    word = _as_typed(value)
    for looked_for in {word, word.casefold()}:
        if looked_for not in _WRITTEN_WORDS:
            _WRITTEN_WORDS[looked_for] = _compile_unkept(_word_source(looked_for), re.IGNORECASE)
    return None


def _check_zone(index: int, value: Any) -> str | None:
    if index != 1 or not isinstance(value, str):
        return None
    try:
        _zone(value)
    except ValueError:
        hint = did_you_mean(value, sorted(_zone_names()))
        return f"unknown time zone {value!r}{hint}; use an IANA name such as 'Europe/London' or 'America/New_York'"
    return None


Check = Callable[[int, Any], str | None]
_KINDS = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
_WORDS = {"string": "text", "number": "a number", "boolean": "true or false", "array": "a list", "object": "an object"}


def _typed(arguments: Sequence[Sequence[str]], check: Check | None) -> Check:
    """``check``, after the literal argument's JSON type.

    A literal of a type the function refuses would fail the condition on every event that reaches it
    (INTERNAL_ERROR): it is a located load error instead.
    """

    def checked(index: int, value: Any) -> str | None:
        kind = "null" if value is None else _KINDS.get(type(value))
        if kind is not None and kind not in arguments[index]:
            needs = " or ".join(_WORDS.get(name, name) for name in arguments[index])
            return f"argument {index + 1} is {_WORDS.get(kind, kind)} where it needs {needs}"
        return check(index, value) if check else None

    return checked


def register_typed(
    name: str,
    arguments: list[list[str]],
    function: Callable[..., Any],
    returns: str | None = None,
    check: Check | None = None,
) -> None:
    """``engine.expressions.register_function``, with each literal argument's type checked at load (``_typed``)."""
    register_function(name, arguments, function, returns=returns, check=_typed(arguments, check))


_TEXT = ["string"]
_TIME = ["string", "null"]
register_typed("lower", [_TEXT], str.lower, "string")
register_typed("upper", [_TEXT], str.upper, "string")
register_typed("has_word", [_TEXT, _TEXT], has_word, "boolean", _check_word)
register_typed("matches", [_TEXT, _TEXT], matches, "boolean", _check_pattern)
register_typed("hour", [_TIME, _TEXT], hour, "number", _check_zone)
register_typed("hhmm", [_TIME, _TEXT], hhmm, "number", _check_zone)
register_typed("weekday", [_TIME, _TEXT], weekday, "string", _check_zone)
register_typed("local_date", [_TIME, _TEXT], local_date, "string", _check_zone)
