"""What every console script shares: a reader that stops early (``| head``) ends the command quietly."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec

__all__ = ["EXIT_READER_GONE", "console_script"]

P = ParamSpec("P")

# The status a shell gives a command killed by SIGPIPE (128 + 13).
EXIT_READER_GONE = 141


def console_script(main: Callable[P, int]) -> Callable[P, int]:
    """``main``, ending with ``EXIT_READER_GONE`` and no traceback when its output's reader has gone away."""

    @functools.wraps(main)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            status = main(*args, **kwargs)
            sys.stdout.flush()
        except BrokenPipeError:
            # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_READER_GONE
        return status

    return guarded
