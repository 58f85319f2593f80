"""Files the tools write that may hold credentials or personal data, readable by their owner only.

A world file (``pipeline-world``: tokens with ``--keep-secrets``, numbers and conversations always) and a report page
(``pipeline-dryrun --report``: the replay's records) are written here on a laptop or a CI runner whose umask commonly
lets every user read new files. ``write_private`` creates the content in a new file of mode 0600 beside the target
(created exclusively, so a name planted there is never followed), then renames it over the target: the target is
never partly written, never readable by others (not even for a moment), and a symlink planted at its name is
replaced, never written through. A target that is a pipe or a terminal of the user's (``-o /dev/stdout``,
``-o >(gpg -e …)``), or a descriptor of the process (``/dev/stdout`` redirected to a file), creates no file and is
written as a stream; another user's pipe is replaced like any file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["OWNER_ONLY", "write_private"]

OWNER_ONLY = 0o600


# This process's own open descriptors, which no one else can plant: ``-o /dev/stdout`` with stdout redirected to a
# file names a regular file, yet a file created beside the name would land in /dev/fd (or /dev, root replacing it).
_DESCRIPTORS = ("/dev/stdout", "/dev/stderr")
_DESCRIPTOR_DIRECTORIES = ("/dev/fd/", "/proc/self/fd/")


def _stream(path: Path) -> bool:
    """Whether ``path`` is one of this process's descriptors, or a pipe or a terminal of this user's (or root's).

    One of another user's (a pipe a symlink planted at the name leads to) would hand them what is written.
    """
    named = os.path.abspath(path)
    if named in _DESCRIPTORS or named.startswith(_DESCRIPTOR_DIRECTORIES):
        return True
    try:
        status = path.stat()
    except OSError:
        return False
    return (stat.S_ISFIFO(status.st_mode) or stat.S_ISCHR(status.st_mode)) and status.st_uid in (os.geteuid(), 0)


def write_private(path: Path, text: str) -> bool:
    """Write ``text`` (UTF-8) to ``path`` as a file of mode 0600, atomically; False when it was a stream, not a file.

    OSError when it cannot be written (nothing is left behind).
    """
    if _stream(path):
        with path.open("w", encoding="utf-8") as stream:
            stream.write(text)
        return False
    # mkstemp: O_CREAT | O_EXCL and mode 0600 from the first moment, whatever the umask.
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError as exc:  # the file itself may be writable: say what is not
        why = (
            f"{exc.strerror}: its directory {path.parent} is not writable (the file is made beside it and renamed "
            "over it, so that it is never partly written nor readable by others); write it to a directory you can "
            "create files in"
        )
        raise PermissionError(exc.errno, why) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True
