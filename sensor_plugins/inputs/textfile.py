"""Reading a user-supplied text file: bounded in size, decoded strictly, with one-line errors.

Catalogues, Tor lists, event lists and category files all come from users; each must
fail with a line naming the file, not a traceback, and none may exhaust memory.
"""

from __future__ import annotations

from pathlib import Path

from sensor_plugins.errors import SensorPluginsError


def read_text(
    path: Path, what: str, max_bytes: int, error: type[SensorPluginsError], encoding: str = "utf-8",
) -> str:
    """The text of ``path``; ``error`` (naming the file and ``what`` it is) when it cannot be had."""
    try:
        with path.open("rb") as handle:
            # Read one byte past the limit, so an oversized file is never read whole.
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from exc
    if len(raw) > max_bytes:
        raise error(f"{path}: {what} is larger than {max_bytes} bytes")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 at byte {exc.start}") from exc
