"""What real Zeek printed for zeek_scripts/ in ``../shared/zeek-runs/``, when those runs are of this package.

A sensor operator's runs (``LOAD.txt`` for ``zeek -a``, ``<scenario>/zeek-output.txt`` per
pcap) name the project commit they were made from. They speak for the package only while
``zeek_scripts/`` is unchanged since that commit; then no line of them may be an error or
a warning. A newer package is checked by tests/sensors/test_zeek_scenarios.py, which runs
real Zeek wherever it is installed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

RUNS = REPO.parent / "shared" / "zeek-runs"
PROBLEM = re.compile(r"\b(error|warning|fatal)\b|Reporter::(ERROR|WARNING|FATAL)", re.I)
COMMIT_RE = re.compile(r"^project commit:\s*([0-9a-f]{7,40})\s*$", re.M)


def run_outputs(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and (p.name in ("reporter.log", "zeek-output.txt", "LOAD.txt")
                            or "stderr" in p.name or p.suffix == ".err")
    )


def problems(path: Path, root: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [f"{path.relative_to(root)}: {ln}" for ln in lines if not ln.startswith("#") and PROBLEM.search(ln)]


def runs_commit(root: Path) -> str | None:
    load = root / "LOAD.txt"
    match = COMMIT_RE.search(load.read_text(encoding="utf-8", errors="replace")) if load.is_file() else None
    return match.group(1) if match else None


def package_unchanged_since(commit: str) -> bool:
    """Whether zeek_scripts/ in the work tree is byte for byte what ``commit`` held."""
    proc = subprocess.run(["git", "diff", "--quiet", commit, "--", "zeek_scripts"], cwd=REPO,
                          capture_output=True, check=False)
    return proc.returncode == 0


def test_problems_are_found_in_a_run_like_the_one_of_the_unloadable_package(tmp_path) -> None:
    (tmp_path / "LOAD.txt").write_text('error in /x/zeek_scripts/tls.zeek, line 48: syntax error, at or near "! in"\n')
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "zeek-output.txt").write_text("exit code: 0\n")
    found = [p for path in run_outputs(tmp_path) for p in problems(path, tmp_path)]
    assert found == ['LOAD.txt: error in /x/zeek_scripts/tls.zeek, line 48: syntax error, at or near "! in"']


@pytest.mark.skipif(not RUNS.is_dir(), reason=f"no Zeek runs of zeek_scripts/ at {RUNS}")
def test_zeek_loaded_the_package_without_errors_or_warnings() -> None:
    commit = runs_commit(RUNS)
    if commit is None or not package_unchanged_since(commit):
        pytest.skip(f"the runs in {RUNS} are of zeek_scripts/ at {commit}, which has changed since")
    outputs = run_outputs(RUNS)
    found = [p for path in outputs for p in problems(path, RUNS)]
    assert (outputs != [], found) == (True, [])
