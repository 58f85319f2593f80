"""``engine.timebox``: work cut off after its time, the process's alarm left as it was found."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any

import pytest

from engine.timebox import TimeboxExpired, TimeboxUnavailable, call_within

# Unbounded, this search would outlive the test run (each more letter multiplies its time by about 1.6).
CATASTROPHIC = re.compile(r"^(a|aa)+$")
ENDLESS = "a" * 80 + "!"


def state() -> tuple[Any, tuple[float, float]]:
    return signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)


@pytest.fixture
def untouched() -> Iterator[None]:
    """The test leaves SIGALRM's handler and the real-time timer as it found them."""
    before = state()
    yield
    assert state() == before


def test_work_that_ends_in_time_returns_its_result(untouched: None) -> None:
    assert call_within(1.0, lambda: CATASTROPHIC.search("aaaa") is not None) is True


def test_a_catastrophic_match_is_interrupted(untouched: None) -> None:
    with pytest.raises(TimeboxExpired):
        call_within(0.1, lambda: CATASTROPHIC.search(ENDLESS))


def test_the_work_cannot_swallow_its_interruption(untouched: None) -> None:
    def careless() -> str:
        try:
            CATASTROPHIC.search(ENDLESS)
        except Exception:  # noqa: BLE001 - what a careless step does
            return "swallowed"
        return "finished"

    with pytest.raises(TimeboxExpired):
        call_within(0.1, careless)


def test_the_work_s_own_error_is_raised_as_it_is(untouched: None) -> None:
    def failing() -> None:
        raise ValueError("the work's own")

    with pytest.raises(ValueError, match="the work's own"):
        call_within(1.0, failing)


def test_no_time_left_runs_nothing(untouched: None) -> None:
    ran: list[bool] = []
    with pytest.raises(TimeboxExpired):
        call_within(0.0, lambda: ran.append(True))
    assert ran == []


def test_a_worker_thread_cannot_be_bounded_and_runs_nothing(untouched: None) -> None:
    ran: list[bool] = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(TimeboxUnavailable, match="main thread"):
        pool.submit(call_within, 1.0, lambda: ran.append(True)).result()
    assert ran == []


def test_another_armed_timer_is_left_alone(untouched: None) -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 60.0)
        with pytest.raises(TimeboxUnavailable, match="another real-time timer"):
            call_within(1.0, lambda: fired.append(0))
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 60.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []


def test_the_caller_s_handler_is_put_back(untouched: None) -> None:
    def mine(signum: int, frame: Any) -> None:
        raise AssertionError("the caller's handler must not run for the box's timer")

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        with pytest.raises(TimeboxExpired):
            call_within(0.05, lambda: CATASTROPHIC.search(ENDLESS))
        assert call_within(1.0, lambda: 7) == 7
        assert signal.getsignal(signal.SIGALRM) is mine
    finally:
        signal.signal(signal.SIGALRM, previous)


def spin(seconds: float) -> None:
    """Busy work (no sleep) that a timer can interrupt between bytecodes."""
    until = monotonic() + seconds
    while monotonic() < until:
        pass


def test_a_box_nested_in_a_longer_one_is_cut_off_at_its_own_time(untouched: None) -> None:
    def inner() -> str:
        try:
            call_within(0.05, lambda: CATASTROPHIC.search(ENDLESS), nested=True)
        except TimeboxExpired:
            return "inner cut off"
        return "inner finished"

    started = monotonic()
    assert call_within(60.0, inner) == "inner cut off"
    assert monotonic() - started < 1.0


def test_an_outer_timer_due_first_refuses_the_nested_work(untouched: None) -> None:
    ran: list[bool] = []

    def inner() -> None:
        with pytest.raises(TimeboxUnavailable, match="due first"):
            call_within(1.0, lambda: ran.append(True), nested=True)
        spin(2.0)

    with pytest.raises(TimeboxExpired):
        call_within(0.2, inner)
    assert ran == []


def test_the_outer_box_still_expires_at_its_own_deadline_after_nested_ones(untouched: None) -> None:
    """Nested boxes run while the outer one has more than their time left, then are refused; the outer's own expiry
    ends the work on time.

    Each nested box's work takes a sixth of its time. The boxes that fit in the outer one were counted before (0.05 s
    of work in boxes of 0.1 s, 4 to 7 in 0.3 s): a loaded machine (two workers and three busy processes on two
    cores), stopping the process now and then, made the work end late and 3 fitted; a stop of 50 ms in one would
    have expired a nested box, and pytest.raises took any expiry for the outer's. Now which box expired is checked
    (its message), and the order of boxes and refusals instead of a count that load decides.
    """
    ran: list[bool] = []

    def many_nested() -> str:
        for _ in range(40):  # 2 s of nested boxes, each ending in time; unbounded once the outer is due first
            try:
                call_within(0.3, lambda: spin(0.05), nested=True)
                ran.append(True)
            except TimeboxUnavailable:
                ran.append(False)
                spin(0.05)
        return "outlived its budget"

    started = monotonic()
    with pytest.raises(TimeboxExpired, match=r"after 0\.900 s"):
        call_within(0.9, many_nested)
    assert 0.9 <= monotonic() - started < 1.2
    # Boxes first (while the outer had more than 0.3 s left), then only refusals: never a box once it was due first.
    assert ran[0] and not ran[-1] and ran == sorted(ran, reverse=True)


def test_the_outer_box_s_expiry_due_as_a_nested_box_ends_is_the_outer_s(untouched: None) -> None:
    """The outer timer, set aside with a hair more than the nested box, is due the moment it is armed again.

    Its interruption is the outer box's: the nested box does not report it as its own expiry, so the work
    cannot take it for one and carry on past the outer deadline.
    """

    def nested_then_careless() -> str:
        try:
            call_within(0.1, lambda: CATASTROPHIC.search(ENDLESS), nested=True)
        except TimeboxExpired:
            spin(0.5)
            return "carried on after the outer deadline"
        return "finished"

    with pytest.raises(TimeboxExpired):
        call_within(0.1001, nested_then_careless)


def test_a_caller_s_own_timer_and_handler_are_put_back_after_a_nested_box(untouched: None) -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 60.0)
        with pytest.raises(TimeboxExpired):
            call_within(0.05, lambda: CATASTROPHIC.search(ENDLESS), nested=True)
        assert call_within(1.0, lambda: 7, nested=True) == 7
        assert 59.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 60.0
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
