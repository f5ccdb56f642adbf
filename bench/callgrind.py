"""Instructions spent inside one function of a program, counted by callgrind (B5, B7).

Instruction counts do not move with the load other processes put on the machine, so one
run of each command is enough, where wall or CPU time on a shared 2-core machine swings
by tens of percent. Taking one function's inclusive count (everything it and its callees
execute) leaves out what the program does before and after it, such as loading rules or
scripts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("valgrind", "callgrind_annotate", "callgrind_control")


class CallgrindError(Exception):
    """The count could not be taken (valgrind missing, the program failed, the function never ran)."""


@dataclass(frozen=True)
class Feed:
    """A capture handed to the measured program through a fifo it opens once started."""

    capture: Path
    fifo: Path
    # How long the program may take to open the fifo (start-up runs uninstrumented).
    open_timeout_s: float = 3600.0


def _open_writer(fifo: Path, process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The fifo's write end, once ``process`` has opened the read end; None if it exited first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # Non-blocking: with no reader yet this fails (ENXIO) instead of hanging, so a
            # program that dies during start-up is noticed.
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if process.poll() is not None:
                return None
            time.sleep(0.2)
            continue
        os.set_blocking(fd, True)
        return fd
    raise CallgrindError(f"{fifo}: not opened by the program within {timeout_s:.0f} s")


def _run_fed(command: Sequence[str], cwd: Path, feed: Feed, what: str) -> tuple[int, str]:
    """Run ``command`` (valgrind with instrumentation off), switch instrumentation on when it
    opens ``feed.fifo``, write the capture in, and return its exit code and standard error."""
    feed.fifo.unlink(missing_ok=True)
    os.mkfifo(feed.fifo)
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
        try:
            fd = _open_writer(feed.fifo, process, feed.open_timeout_s)
            if fd is not None:
                with os.fdopen(fd, "wb") as writer:
                    switched = subprocess.run(["callgrind_control", "--instr=on", str(process.pid)],
                                              capture_output=True, text=True)
                    # It says "OK. sending command ..." once valgrind took the command.
                    if switched.returncode != 0 or "OK." not in switched.stdout:
                        raise CallgrindError(f"callgrind_control could not switch instrumentation on for {what}: "
                                             f"{(switched.stderr or switched.stdout).strip()[-300:]}")
                    # A program that dies mid-capture closes the fifo: its exit code, below,
                    # says what happened, not the broken pipe.
                    with feed.capture.open("rb") as capture, contextlib.suppress(BrokenPipeError):
                        shutil.copyfileobj(capture, writer, 1 << 20)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            feed.fifo.unlink(missing_ok=True)
        stderr.seek(0)
        return returncode, stderr.read().decode(errors="replace")


def require_tools(figure: str) -> None:
    for tool in TOOLS:
        if shutil.which(tool) is None:
            raise CallgrindError(f"{tool} is missing (Debian package valgrind): {figure} counts instructions with it")


def inclusive_re(function: str) -> re.Pattern[str]:
    """A line of ``callgrind_annotate --inclusive=yes`` for ``function`` (a plain or C++ name):
    its count is group 1. The name must end there, so ``run_loop`` does not match ``run_loop_x``."""
    return re.compile(r"^\s*([\d,]+) \([^)]*\)\s+\S*:" + re.escape(function) + r"(?:\(|\s|$)", re.M)


def inclusive_count(report: str, function: str) -> int | None:
    """``function``'s inclusive instruction count in an annotate report; None if it never ran."""
    found = inclusive_re(function).search(report)
    return int(found.group(1).replace(",", "")) if found else None


def inclusive_instructions(command: Sequence[str], function: str, out_file: Path, cwd: Path,
                           label: str | None = None, feed: Feed | None = None) -> int:
    """Run ``command`` under callgrind (output in ``out_file``, the annotated report beside
    it) and return the instructions executed inside ``function``, callees included.

    With ``feed``, the program reads its capture from ``feed.fifo`` (``command`` names it):
    valgrind starts with instrumentation off, and turns it on only once the program opens
    the fifo, when its start-up (Suricata loading 25,000 ET Open rules: over 20 minutes
    under full instrumentation, about 1.5 here) is done; then the capture is written in.

    A non-zero exit is a CallgrindError, never a count: a crash is a finding, not a sample.
    """
    what = label or " ".join(command)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    # Collecting only inside ``function`` gives the same count for it, and leaves start-up out
    # of every other function's count too, so two runs' outputs compare function by function.
    # Callgrind knows a C++ function by its name with the parameter list, "run_loop()", and a
    # C one by its bare name: one of the two patterns matches, the other nothing.
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", f"--toggle-collect={function}",
                f"--toggle-collect={function}(*"]
    if feed is None:
        done = subprocess.run([*valgrind, *command], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True)
        returncode, stderr = done.returncode, done.stderr
    else:
        returncode, stderr = _run_fed([*valgrind, "--instr-atstart=no", *command], cwd, feed, what)
    if returncode != 0:
        said = (stderr.strip().splitlines() or [f"exit code {returncode}"])[-1]
        raise CallgrindError(f"{what} under callgrind exited {returncode}: {said[:300]}")
    report = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out_file)], capture_output=True,
                            text=True, check=False).stdout
    # Kept for reading where the instructions went (per-function inclusive costs).
    out_file.with_name(out_file.name + ".annotate.txt").write_text(report)
    count = inclusive_count(report, function)
    if count is None:
        raise CallgrindError(f"callgrind_annotate names no {function} for {what}")
    return count


FUNCTION_LINE_RE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+[^:\s]*:(.+?)(?:\s+\[[^\]]*\])?\s*$", re.M)


def read_costs(report: str) -> dict[str, int]:
    """Function -> instructions, from the per-function lines of a callgrind_annotate report."""
    costs: dict[str, int] = {}
    for count, function in FUNCTION_LINE_RE.findall(report):
        costs[function] = costs.get(function, 0) + int(count.replace(",", ""))
    return costs


def self_costs(out_file: Path) -> dict[str, int]:
    """Function -> its own instructions (callees left out) in a callgrind output file."""
    done = subprocess.run(["callgrind_annotate", "--threshold=100", str(out_file)], capture_output=True, text=True)
    if done.returncode != 0:
        raise CallgrindError(f"callgrind_annotate {out_file} exited {done.returncode}")
    return read_costs(done.stdout)
