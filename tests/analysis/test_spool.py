"""Rows spooled for reading live in one directory per process under $TMPDIR: removed when the
process ends, and, when it was killed outright (kill -9), by the next process that spools."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SPOOL_THEN = """
import os, signal, sys, time
from sensor_plugins.analysis.logfiles import spool_dir
spool = spool_dir()
(spool / "rows.tsv").write_text("row\\n")
print(spool, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
elif sys.argv[1] == "wait":
    sys.stdin.read()
"""


def spool_in_process(tmp: Path, then: str, **kw) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", SPOOL_THEN, then], env=env, text=True, stdout=subprocess.PIPE,
                            **kw)


def spools(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("sensor-plugins-spool-"))


def test_a_process_that_ends_removes_its_spool(tmp_path: Path) -> None:
    done = spool_in_process(tmp_path, "exit")
    assert done.communicate()[0].strip()
    assert (done.returncode, spools(tmp_path)) == (0, [])


def test_the_spool_of_a_process_killed_outright_is_removed_by_the_next_one(tmp_path: Path) -> None:
    killed = spool_in_process(tmp_path, "kill")
    left = Path(killed.communicate()[0].strip())
    assert killed.returncode == -signal.SIGKILL
    assert spools(tmp_path) == [left.name]

    following = spool_in_process(tmp_path, "exit")
    following.communicate()
    assert (following.returncode, spools(tmp_path)) == (0, [])


def test_the_spool_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    live = spool_in_process(tmp_path, "wait", stdin=subprocess.PIPE)
    try:
        mine = Path(live.stdout.readline().strip())
        other = spool_in_process(tmp_path, "exit")
        other.communicate()
        assert (mine / "rows.tsv").read_text() == "row\n"
    finally:
        live.communicate("")
    assert spools(tmp_path) == []
