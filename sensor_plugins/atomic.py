"""Writes that never leave a half-written file behind: temp file in the same directory, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def open_atomic(path: Path | str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file written in pieces that readers see whole or not at all: temp file, fsync, rename.

    Streaming matters for outputs such as a 10M-row day's findings, which are hundreds
    of MB and should never be held in memory just to be written atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file must live on the same filesystem, or rename is not atomic.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    with open_atomic(path, mode) as handle:
        handle.write(data)


def write_text_atomic(path: Path | str, text: str, mode: int = 0o644) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def replace_tree(staged: Path, target: Path) -> None:
    """Make ``target`` hold exactly the files of ``staged``.

    Each file is renamed into place on its own, so a sensor that re-reads one file
    (Zeek's Input framework, Suricata's rule reload) always sees a whole file.
    Files that ``staged`` no longer has are removed last, after every new file is in.
    """
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(staged) for p in staged.rglob("*") if p.is_file()}
    for rel in sorted(wanted):
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, (staged / rel).read_bytes())
    for old in sorted(target.rglob("*"), reverse=True):
        rel = old.relative_to(target)
        if old.is_file() and rel not in wanted:
            old.unlink()
        elif old.is_dir() and not any(old.iterdir()):
            old.rmdir()


def copy_tree(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, dirs_exist_ok=True)
