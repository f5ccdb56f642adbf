"""A small, real full disk for a test: a tmpfs mounted inside the test's own directory.

Mounting needs root (and CAP_SYS_ADMIN); without it the test is skipped, saying why.
The filesystem is unmounted when the test ends, whatever happened in it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size: str = "16m") -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all of ``disk``'s free space but ``leave`` bytes, in one file outside what the test checks."""
    st = os.statvfs(disk)
    filler = disk / ".filler"
    with filler.open("ab") as handle:
        handle.write(b"\0" * max(0, st.f_bfree * st.f_frsize - leave))
    return filler
