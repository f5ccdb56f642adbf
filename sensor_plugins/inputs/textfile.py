"""Reading a user-supplied text file: bounded in size, decoded strictly, with one-line errors.

Catalogues, Tor lists, event lists and category files all come from users; each must
fail with a line naming the file, not a traceback, and none may exhaust memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError


def read_text(
    path: Path, what: str, max_bytes: int, error: type[SensorPluginsError], encoding: str = "utf-8",
) -> str:
    """The text of ``path``; ``error`` (naming the file and ``what`` it is) when it cannot be had."""
    raw = read_regular_bytes(path, what, max_bytes, error)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 at byte {exc.start}") from exc


def read_regular_bytes(path: Path, what: str, max_bytes: int, error: type[SensorPluginsError]) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes``.

    The file is opened without blocking and checked to be regular before a byte is read:
    a FIFO or a terminal given as an input would otherwise block the command forever,
    and a device such as /dev/zero would never end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{path}: {what} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise error(f"{path}: {what} is not a regular file (a FIFO, socket or device)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            # Read one byte past the limit, so an oversized file is never read whole.
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > max_bytes:
        raise error(f"{path}: {what} is larger than {max_bytes} bytes")
    return raw
