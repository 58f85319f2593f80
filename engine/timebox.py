"""A time bound on work in this process: a one-shot ``SIGALRM`` timer that interrupts it.

``call_within(seconds, work)`` runs ``work()`` and returns its result, or raises ``TimeboxExpired`` once
``seconds`` have passed. The interruption is an exception raised where the work is (CPython runs signal
handlers between bytecodes, and ``re`` checks for signals while it matches, so a catastrophic regular
expression is cut off too); it derives from ``BaseException``, so the work's own ``except Exception``
cannot take it for a failure of its own. The previous ``SIGALRM`` handler is always put back.

Only the main thread receives Python signal handlers, and a process has one ``ITIMER_REAL``: elsewhere, or
when ``SIGALRM``'s handler was not set from Python (it could not be put back), nothing is run and
``TimeboxUnavailable`` says why. A timer already armed (the caller's own alarm, a shadow candidate's budget)
refuses the work too, unless it is ``nested``: then an armed timer with no more than ``seconds`` left refuses
it (that timer alone bounds the work, run unbounded by the caller), and one with more is set aside for the
work and armed again with what it has left, its own handler back, so it still expires at its own deadline.
Lambda runs its handler in the main thread with no timer armed. Arming and disarming costs a few
microseconds (about 10 µs with the handler swaps on the development machine).

The one implementation for both bounds: ``runtime.app`` bounds a shadow candidate (``SHADOW_BUDGET_MS``), and
``steps.functions`` each ``matches()`` search (``MATCH_BUDGET_SECONDS``, nested in the candidate's budget).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any, NoReturn, TypeVar

__all__ = ["TimeboxExpired", "TimeboxUnavailable", "call_within"]

T = TypeVar("T")


class TimeboxExpired(Exception):
    """The work ran out of its time and was interrupted (or was given no time and never started)."""


class TimeboxUnavailable(Exception):
    """The work cannot be bounded here, so it was not run."""


class _Interrupted(BaseException):
    """Raised inside the work by the timer; never leaves this module."""


def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise _Interrupted


def call_within(seconds: float, work: Callable[[], T], *, nested: bool = False) -> T:
    """``work()``'s result, or TimeboxExpired after ``seconds``; TimeboxUnavailable when it cannot be bounded here.

    ``nested``: an armed timer with more than ``seconds`` left is set aside meanwhile instead of refusing the work.
    """
    if threading.current_thread() is not threading.main_thread():
        raise TimeboxUnavailable("only the main thread can be interrupted by a timer")
    outer, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if outer and (not nested or outer <= seconds):
        raise TimeboxUnavailable("another real-time timer is armed" + (" and due first" if nested else ""))
    if signal.getsignal(signal.SIGALRM) is None:
        raise TimeboxUnavailable("SIGALRM has a handler Python cannot put back")
    if seconds <= 0:
        raise TimeboxExpired("no time left")
    started = monotonic()
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            return work()
        finally:
            # signal.signal runs a handler still pending before it replaces it: an expiry raised here (the work
            # had finished, just too late) is reported like any other, and the timer is disarmed either way. Nothing
            # is called between arming the handler and this try: CPython may run a pending handler as a call returns.
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            except _Interrupted:
                signal.signal(signal.SIGALRM, previous)
                raise
    except _Interrupted:
        raise TimeboxExpired(f"interrupted after {seconds:.3f} s") from None
    finally:
        # Outside the except above: the set-aside timer, due at once or soon, interrupts its own work, not this.
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (monotonic() - started), 1e-6), outer_interval)
