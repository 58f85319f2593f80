"""The expression functions conditions may call: text matching and local time (steps.functions)."""

from __future__ import annotations

import gc
import re
import signal
import threading
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

import pytest

from engine.expressions import ExpressionError, ExpressionSyntaxError, compile_expression
from engine.rules import Decision, Rule, RuleSet, RuleTest, run_tests
from engine.timebox import TimeboxExpired, call_within
from steps.functions import LONG_KEPT

DOC: dict[str, Any] = {
    "request": {"body": "Please STOP sending, thanks", "received_at": "2026-11-28T08:30:00.000Z", "channel": "sms"},
    "conversation": {"tier": "Gold", "timezone": "America/New_York", "created_at": "not a time"},
}


def value(source: str, document: dict[str, Any] = DOC) -> Any:
    return compile_expression(source).search(document)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("lower(conversation.tier) == 'gold'", True),
        ("upper(request.channel)", "SMS"),
        ("has_word(request.body, 'stop')", True),
        ("has_word(request.body, 'STOP SENDING')", True),
        ("has_word(request.body, 'sto')", False),
        ("has_word(request.body, 'please stop')", True),
        ("matches(request.body, '^Please')", True),
        ("matches(request.body, '^please')", False),
        ("matches(request.body, '(?i)^please')", True),
        ("matches(request.body, '\\bthanks$')", True),
        # 08:30Z on Saturday 28 November 2026.
        ("hour(request.received_at, 'UTC')", 8),
        ("hour(request.received_at, 'Europe/London')", 8),
        ("hour(request.received_at, 'Asia/Kolkata')", 14),
        ("hhmm(request.received_at, 'America/New_York')", 330),
        ("hhmm(request.received_at, 'Asia/Kolkata')", 1400),
        ("weekday(request.received_at, 'Europe/London')", "saturday"),
        ("weekday(request.received_at, 'Pacific/Honolulu')", "friday"),
        ("local_date(request.received_at, 'Pacific/Auckland')", "2026-11-28"),
        ("local_date(request.received_at, 'America/Los_Angeles')", "2026-11-28"),
        ("weekday('2026-11-27T23:30:00+00:00', 'Europe/Berlin')", "saturday"),
        ("hour('2026-07-01T12:00:00', 'Europe/London')", 13),
        ("hour(request.received_at, conversation.timezone)", 3),
        (
            "hhmm(request.received_at, 'Europe/London') >= `800`"
            " && hhmm(request.received_at, 'Europe/London') < `1730`",
            True,
        ),
    ],
)
def test_each_function(source: str, expected: Any) -> None:
    assert value(source) == expected


def test_summer_time_moves_the_local_hour() -> None:
    winter = {"t": "2026-01-15T12:00:00Z"}
    summer = {"t": "2026-07-15T12:00:00Z"}
    assert value("hour(t, 'Europe/London')", winter) == 12
    assert value("hour(t, 'Europe/London')", summer) == 13


@pytest.mark.parametrize("written", ["2026-07-01t12:00:00z", "2026-07-01T12:00:00z", "2026-07-01t13:00:00.250+01:00"])
def test_a_time_in_rfc_3339_s_lower_case_is_read_as_the_conversation_lookup_reads_it(written: str) -> None:
    # Another service's conversation.created_at may be RFC 3339 with a lower-case t or z: the lookup ranks it
    # (steps.conversations.created_instant) while the time functions failed the condition on it.
    from steps.conversations import created_instant

    document = {"conversation": {"created_at": written}}
    assert created_instant(written) == created_instant("2026-07-01T12:00:00Z") + (250_000 if "250" in written else 0)
    assert value("hour(conversation.created_at, 'Europe/London')", document) == 13
    assert value("local_date(conversation.created_at, 'Pacific/Auckland')", document) == "2026-07-02"


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        (
            "hour(request.received_at, 'Europe/Londn')",
            "unknown time zone 'Europe/Londn' (did you mean 'Europe/London'?)",
            26,
        ),
        ("x && weekday(request.received_at, 'Mars/Olympus')", "weekday(): unknown time zone 'Mars/Olympus'", 34),
        ("matches(request.body, '(unclosed')", "matches(): invalid regular expression '(unclosed'", 22),
        ("matches(join(',', [a, b]), '(x')", "matches(): invalid regular expression '(x'", 27),
        # re raises OverflowError and RecursionError for these, not re.error.
        ("matches(request.body, 'a{99999999999}')", "matches(): invalid regular expression 'a{99999999999}'", 22),
        ("matches(request.body, '" + "(" * 1000 + ")" * 1000 + "')", "matches(): invalid regular expression", 22),
        ("has_word(request.body, '  ')", "has_word(): the word to look for is empty", 23),
        # Names of files beside the zones on this machine, not IANA zones: the Lambda may not have them.
        ("hour(request.received_at, 'localtime')", "hour(): unknown time zone 'localtime'", 26),
        ("hour(request.received_at, 'posixrules')", "hour(): unknown time zone 'posixrules'", 26),
        ("hour(request.received_at)", "hour() takes 2 argument(s), got 1", 0),
    ],
)
def test_a_bad_literal_argument_is_a_located_compile_error(source: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as raised:
        compile_expression(source)
    assert message in str(raised.value)
    assert raised.value.offset == offset


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hour(conversation.created_at, 'UTC')", "function hour() got text that is not an ISO-8601 time"),
        ("hour(conversation.missing, 'UTC')", "function hour() got null where it needs a time"),
        ("hour(request.received_at, conversation.tier)", "function hour() got a name that is not a time zone"),
        ("hour(request.received_at, conversation.local)", "function hour() got a name that is not a time zone"),
        ("matches(request.body, conversation.tier)", "function matches() got a pattern that is not"),
        ("lower(conversation.missing)", "function lower() got a null where it needs string"),
    ],
)
def test_a_value_that_cannot_be_used_fails_the_condition_without_showing_it(source: str, message: str) -> None:
    document = {**DOC, "conversation": {**DOC["conversation"], "tier": "(gold", "local": "localtime"}}
    with pytest.raises(ExpressionError) as raised:
        value(source, document)
    assert message in str(raised.value)
    assert 'not a time"' not in str(raised.value) and "(gold" not in str(raised.value).split("failed:")[1]


def test_ordering_text_against_a_number_is_an_evaluation_error_not_a_crash() -> None:
    with pytest.raises(ExpressionError, match="compare two numbers or two texts, here a text with a number"):
        value("conversation.tier > `2`")


@pytest.mark.parametrize(
    "pattern",
    [
        "^(a+)+$",
        "(\\w+\\s?)*$",
        "^(.*)*x",
        "(a|aa)*c",
        "(\\w|\\d\\d)+!",
        "(x{1,3})+y",
        "(\\w+\\s?){2,8}$",
        # Not backtracked into once matched, but what they hold backtracks while they match.
        "(?>(a+)+b)",
        "(?:(a+)+b)++",
        # Branches whose first letters differ only in case match alike when case is ignored.
        "(?i)^(ab|AB)*c",
        "^(?i:(stop|STOP\\w))+$",
        "(?i)(\u212a\\w|k\\w)+!",
    ],
)
def test_a_pattern_that_backtracks_exponentially_is_a_located_compile_error(pattern: str) -> None:
    """One message of 30 characters would hold the function for minutes: refused at load, where it is written."""
    with pytest.raises(ExpressionSyntaxError) as raised:
        compile_expression(f"matches(request.body || '', '{pattern}')")
    assert "matches(): the pattern" in str(raised.value)
    assert "can take exponential time" in str(raised.value)
    assert raised.value.offset == len("matches(request.body || '', ")


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i)^(stop|unsubscribe)\\b",
        "^\\s*(?:yes|no)\\s*$",
        "(?:stop|end|quit)+",
        "(\\d{1,3}\\.){3}\\d{1,3}",
        "(\\w\\s?)+!",
        "(?>\\w+\\s?)+$",
        "(?:\\w+\\s?)++$",
        "(?i)(?:stop|end|quit)+",
        "(?i)(?-i:(ab|AB))+c",
    ],
)
def test_a_pattern_that_cannot_backtrack_exponentially_is_accepted(pattern: str) -> None:
    compile_expression(f"matches(request.body || '', '{pattern}')")


def test_a_pattern_from_the_document_that_backtracks_exponentially_fails_the_condition_quickly() -> None:
    document = {"request": {"body": "a" * 40 + "!"}, "conversation": {"pattern": "^(a+)+$"}}
    with pytest.raises(ExpressionError, match="function matches\\(\\) got a pattern that can take exponential time"):
        value("matches(request.body, conversation.pattern)", document)


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(" * 1000 + ")" * 1000])
def test_a_pattern_from_the_document_that_re_cannot_compile_fails_the_condition(pattern: str) -> None:
    document = {"request": {"body": "aaa"}, "conversation": {"pattern": pattern}}
    with pytest.raises(ExpressionError, match="function matches\\(\\) got a pattern that is not a valid regular"):
        value("matches(request.body, conversation.pattern)", document)


def test_a_refused_pattern_from_the_document_is_judged_once() -> None:
    """Every event may carry the same refused pattern: parsing it again for each would be work spent for nothing."""
    from steps.functions import _pattern

    document = {"request": {"body": "aaa"}, "conversation": {"pattern": "^(b+)+$"}}
    expression = compile_expression("matches(request.body, conversation.pattern)")
    for _ in range(2):
        with pytest.raises(ExpressionError):
            expression.search(document)
    before = _pattern.cache_info()
    with pytest.raises(ExpressionError):
        expression.search(document)
    after = _pattern.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)


def test_only_the_last_few_long_patterns_and_words_read_from_the_document_are_kept() -> None:
    """A pattern or word read from the document (a conversation's attribute, or text the sender wrote) over
    ``MAX_KEPT_CHARS`` is kept among the ``LONG_KEPT`` last only: kept as hand-written ones are, each distinct one held
    about 16 bytes per character in a warm container (256 of them, and 512 more in ``re``'s own cache), and a few
    hundred messages long enough filled its memory."""
    searches = [compile_expression(f"{name}(request.body, conversation.pattern)") for name in ("matches", "has_word")]
    for index in range(40):
        document = {"request": {"body": "no match"}, "conversation": {"pattern": f"held{index:04d}" + "x" * 3000}}
        assert [expression.search(document) for expression in searches] == [False, False]
    gc.collect()
    held = [o for o in gc.get_objects() if isinstance(o, re.Pattern) and "held00" in str(o.pattern)]
    # The last LONG_KEPT patterns and as many words (each 3,000 characters, about 48 KB compiled); all 80 were kept.
    assert len(held) <= 2 * LONG_KEPT
    assert sum(pattern.__sizeof__() for pattern in held) < 2 * LONG_KEPT * 3010 * 17


def test_the_same_long_pattern_on_every_event_is_compiled_once() -> None:
    """A conversation's long pattern is the same on each of its events: it is not compiled again for each."""
    from steps.functions import _long_pattern

    document = {"request": {"body": "a stop word"}, "conversation": {"pattern": "(?i)" + "|".join(["stop"] * 400)}}
    expression = compile_expression("matches(request.body, conversation.pattern)")
    assert expression.search(document) is True
    before = _long_pattern.cache_info()
    assert expression.search(document) is True
    after = _long_pattern.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("hour(request.received_at, `5`) > `18`", "hour(): argument 2 is a number where it needs text", 26),
        ("matches(`5`, 'x')", "matches(): argument 1 is a number where it needs text", 8),
        ("has_word(request.body || '', `[\"agent\"]`)", "has_word(): argument 2 is a list where it needs text", 29),
        ("weekday(request.received_at, `null`)", "weekday(): argument 2 is null where it needs text", 29),
        ("lower(`true`) == 'true'", "lower(): argument 1 is true or false where it needs text", 6),
        ("local_date(`20261225`, 'UTC')", "local_date(): argument 1 is a number where it needs text or null", 11),
        # The Twilio plugin's function is checked alike.
        ("e164(`14155550123`) == request.to", "e164(): argument 1 is a number where it needs text or null", 5),
    ],
)
def test_a_literal_argument_of_the_wrong_type_is_a_located_compile_error(
    source: str, message: str, offset: int
) -> None:
    """Such a condition fails every event that reaches it (INTERNAL_ERROR): refused at load, where it is written."""
    with pytest.raises(ExpressionSyntaxError) as raised:
        compile_expression(source)
    assert message in str(raised.value)
    assert raised.value.offset == offset


@pytest.mark.parametrize(
    "source",
    [
        'contains(`["whatsapp", "sms"]`, request.channel)',
        "contains(request.body || '', 'x')",
        "not_null(conversation.language, 'en') == 'es'",
        "sum(`[1, 2]`) > `2`",
        'sort(`["b", "a"]`)[0] == \'a\'',
        "to_number('5') == `5`",
        "join(',', `[\"a\", \"b\"]`) == 'a,b'",
        "hour('2026-11-25T12:00:00Z', 'UTC') == `12`",
        "has_word(`\"agent\"`, 'agent')",
    ],
)
def test_a_literal_argument_of_an_accepted_type_compiles(source: str) -> None:
    compile_expression(source)


def test_a_pattern_slow_on_a_long_text_fails_the_condition_within_its_budget() -> None:
    """'.*x.*x.*y' is polynomial, not refused at load: on an email's 128 KiB it would outlast the Lambda's timeout.

    Unbounded, this search takes seconds (its time grows with the cube of the text's length), far above the budget:
    it ends with the budget's error, never with an answer, and leaves SIGALRM as it found it.
    """
    document = {"request": {"body": "x" * 800}}
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(ExpressionError, match="function matches\\(\\) took longer than 100 ms on this text"):
        value("matches(request.body, '.*x.*x.*y')", document)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before


class _OuterExpired(BaseException):
    """What the caller's own timer raises (as a shadow candidate's budget does)."""


def _outer_expired(signum: int, frame: Any) -> None:
    raise _OuterExpired


@pytest.fixture
def outer_timer() -> Iterator[Callable[[float], None]]:
    """Arms a caller's own SIGALRM timer of the given seconds; put back as it was afterwards."""
    previous = signal.signal(signal.SIGALRM, _outer_expired)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_a_caller_s_timer_with_more_time_is_set_aside_for_the_search_and_armed_again(
    outer_timer: Callable[[float], None],
) -> None:
    """In a shadow candidate (SHADOW_BUDGET_MS up to 1 s) a search is cut off after 100 ms, as it would be live."""
    outer_timer(60.0)
    with pytest.raises(ExpressionError, match="function matches\\(\\) took longer than 100 ms on this text"):
        value("matches(request.body, '.*x.*x.*y')", {"request": {"body": "x" * 800}})
    assert signal.getsignal(signal.SIGALRM) is _outer_expired
    assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 60.0


def test_a_caller_s_timer_with_less_time_alone_bounds_the_search(outer_timer: Callable[[float], None]) -> None:
    outer_timer(0.05)
    with pytest.raises(_OuterExpired):
        value("matches(request.body, '.*x.*x.*y')", {"request": {"body": "x" * 800}})


SLOW_SEARCH = "matches(request.body, '.*x.*x.*y')"  # seconds unbounded on 800 letters, cut off after 100 ms


def _searches_then_spins(searches: int, seconds: float) -> Callable[[], str]:
    """A shadow candidate's work: slow searches (each failing its condition), then busy work (no sleep)."""

    def work() -> str:
        for _ in range(searches):
            with pytest.raises(ExpressionError, match="took longer than 100 ms"):
                value(SLOW_SEARCH, {"request": {"body": "x" * 800}})
        until = monotonic() + seconds
        while monotonic() < until:
            pass
        return "outlived its budget"

    return work


def test_a_candidate_s_budget_still_expires_at_its_own_deadline_after_searches_nested_in_it() -> None:
    before = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)
    started = monotonic()
    with pytest.raises(TimeboxExpired):
        call_within(0.35, _searches_then_spins(3, 2.0))
    assert 0.35 <= monotonic() - started < 0.7
    assert (signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)) == before


def test_a_candidate_s_budget_due_as_a_search_is_cut_off_is_reported_as_the_candidate_s() -> None:
    """The budget, set aside with a hair more than the search's, is due the moment it is armed again.

    Its interruption is the candidate's: the search does not report it as its own overrun (a failed condition the
    candidate carries on from), so the candidate cannot run past its budget.
    """
    value(SLOW_SEARCH, {"request": {"body": "x"}})  # compiled beforehand: the search reads the budget at once
    with pytest.raises(TimeboxExpired):
        call_within(0.1001, _searches_then_spins(1, 0.5))


def test_a_pattern_within_its_budget_answers_off_the_main_thread_too() -> None:
    """Only the main thread can be interrupted: elsewhere the search runs unbounded (a shadow's own timer bounds it)."""
    found: list[bool] = []
    worker = threading.Thread(target=lambda: found.append(value("matches(request.body, '(?i)stop')")))
    worker.start()
    worker.join()
    assert found == [True]


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("BITTE STRASSE ANGEBEN", "straße"),
        ("Straße", "STRASSE"),
        ("İstanbul office", "istanbul"),
        ("ISTANBUL office", "İstanbul"),
        ("Ärger mit der Lieferung", "ÄRGER"),
        ("ΣΤΟΠ", "στοπ"),
    ],
)
def test_has_word_matches_in_any_case_as_unicode_folds_it(text: str, word: str) -> None:
    """'ß' is 'SS' in capitals: a German message in capitals still has the word."""
    assert value("has_word(t, w)", {"t": text, "w": word}) is True


@pytest.mark.parametrize(
    ("source", "text", "word"),
    [
        ("has_word(t, w)", "Jose\u0301 called", "josé"),
        ("has_word(t, w)", "JOSÉ called", "jose\u0301"),
        ("has_word(t, w)", "Ame\u0301lie", "AMÉLIE"),
        ("matches(t, w)", "Jose\u0301", "(?i)^josé$"),
    ],
)
def test_text_matches_whatever_unicode_form_spells_its_accents(source: str, text: str, word: str) -> None:
    """é typed as one character or as e and a combining accent (some keyboards, pasted text) is the same letter."""
    assert value(source, {"t": text, "w": word}) is True


@pytest.mark.parametrize(("text", "word"), [("I don\u2019t want this", "don't"), ("don't", "don\u2019t")])
def test_has_word_reads_a_typographic_apostrophe_as_the_typed_one(text: str, word: str) -> None:
    """Phones' smart punctuation sends don\u2019t for don't: the rule's word still matches."""
    assert value("has_word(t, w)", {"t": text, "w": word}) is True


def test_has_word_still_wants_whole_words_after_folding() -> None:
    assert value("has_word(t, w)", {"t": "STRASSEN", "w": "straße"}) is False


@pytest.mark.parametrize(
    "source", ["contains(request.body, conversation.missing)", "contains(request.body, `5`)", "contains('a5', `5`)"]
)
def test_contains_of_a_non_text_in_a_text_names_contains_not_ordering(source: str) -> None:
    """A keyword missing from the conversation (null) searched in the body: the error names the call at fault."""
    with pytest.raises(ExpressionError) as raised:
        value(source)
    assert str(raised.value).endswith("failed: function contains() finds only text in a text")


@pytest.mark.parametrize(
    ("source", "time"),
    [
        ("local_date(t, 'Asia/Tokyo')", "9999-12-31T23:59:59Z"),
        ("hour(t, 'America/New_York')", "0001-01-01T00:30:00Z"),
        ("weekday(t, 'UTC')", "0001-01-01T00:30:00+01:00"),
    ],
)
def test_a_time_at_the_edge_of_the_calendar_fails_the_condition_instead_of_crashing(source: str, time: str) -> None:
    """A "forever" sentinel (9999-12-31T23:59:59Z) stored in a conversation has no local date east of UTC."""
    with pytest.raises(ExpressionError, match=r"function \w+\(\) got a time outside the years 1 to 9999 in that zone"):
        value(source, {"t": time})


def test_an_inline_test_reaching_a_time_at_the_edge_of_the_calendar_observes_internal_error() -> None:
    when = compile_expression("local_date(conversation.snoozed_until, 'Asia/Tokyo') > '2026-12-01'")
    case = RuleTest("forever", {"conversation": {"snoozed_until": "9999-12-31T23:59:59Z"}}, {"rule": "snoozed"}, 0)
    rules = RuleSet("snooze", "validation", (Rule("snoozed", when, Decision(error="SNOOZED")),), tests=(case,))
    [failure] = run_tests(rules)
    assert failure.keys == ("error",)
    assert failure.raised is not None and "outside the years 1 to 9999" in failure.raised


@pytest.mark.parametrize("time", ["2026-07-01T08:30:00", "2026-07-01T08:30:00Z", "2026-07-01T09:30:00+01:00"])
def test_a_time_without_an_offset_is_read_as_utc_as_the_guide_says(time: str) -> None:
    """Python's utcnow().isoformat() writes no offset; a bare time is UTC, so London summer time is an hour on."""
    assert value("hhmm(t, 'Europe/London')", {"t": time}) == 930


def test_the_words_and_patterns_written_in_the_rules_are_compiled_once_however_many_there_are() -> None:
    """Defect: has_word's words and matches' patterns written in the rules were kept among the 256 last used, with
    those read from the document: a set of more keyword rules than that (an operations team's 500) compiled every
    word again on each event, each event trying them in the same order, so that each was gone when next needed
    (and matches judged each pattern's backtracking again). Those written in the rules are compiled as the rules
    load and kept; the caches hold only those read from the document."""
    from steps.functions import _kept_word, _pattern

    words = [compile_expression(f"has_word(request.body || '', 'wordy{i}')") for i in range(300)]
    patterns = [compile_expression(f"matches(request.body || '', 'pat{i}$')") for i in range(300)]
    before = _kept_word.cache_info().misses, _pattern.cache_info().misses
    for event in range(3):
        document = {"request": {"body": f"wordy299 pat{event}"}}
        assert [expression.test(document) for expression in words].count(True) == 1
        assert [expression.test(document) for expression in patterns].count(True) == 1
    after = _kept_word.cache_info().misses, _pattern.cache_info().misses
    assert (after[0] - before[0], after[1] - before[1]) == (0, 0)


def test_has_word_reads_plain_text_as_it_is_without_a_character_by_character_rewrite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defect: has_word rewrote its text and its word through the typographic apostrophe table on every call, a
    look-up for each character, even for plain ASCII text, which holds no such apostrophe: for an 80-character
    message that took as long as the search itself, and a set of 500 keyword rules rewrote the same message 500 times
    an event. Text that is all ASCII is now read as it is; other text is still composed and its apostrophes typed."""
    import steps.functions

    looked_up: list[int] = []

    class Counted(dict[int, str]):
        def __getitem__(self, key: int) -> str:
            looked_up.append(key)
            return super().__getitem__(key)

    monkeypatch.setattr(steps.functions, "_APOSTROPHES", Counted(steps.functions._APOSTROPHES))
    expression = compile_expression("has_word(request.body || '', 'don\\'t')")
    assert expression.test({"request": {"body": "Please, don't book a table for two tonight"}})
    assert looked_up == []
    assert expression.test({"request": {"body": "Please, don\u2019t book a table"}})
    assert looked_up
