"""Instructions spent inside one function of a program, counted by callgrind (B5, B7).

Instruction counts do not move with the load other processes put on the machine, so one
run of each command is enough, where wall or CPU time on a shared 2-core machine swings
by tens of percent. Taking one function's inclusive count (everything it and its callees
execute) leaves out what the program does before and after it, such as loading rules or
scripts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

TOOLS = ("valgrind", "callgrind_annotate")


class CallgrindError(Exception):
    """The count could not be taken (valgrind missing, the program failed, the function never ran)."""


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
                           label: str | None = None) -> int:
    """Run ``command`` under callgrind (output in ``out_file``, the annotated report beside
    it) and return the instructions executed inside ``function``, callees included.

    A non-zero exit is a CallgrindError, never a count: a crash is a finding, not a sample.
    """
    what = label or " ".join(command)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    # Collecting only inside ``function`` gives the same count for it, and leaves start-up out
    # of every other function's count too, so two runs' outputs compare function by function.
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                           f"--toggle-collect={function}", *command],
                          cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise CallgrindError(f"{what} under callgrind exited {done.returncode}: {said[:300]}")
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
