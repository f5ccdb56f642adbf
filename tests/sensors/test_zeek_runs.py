"""What real Zeek printed when it loaded zeek_scripts/, when such a run is available.

There is no Zeek binary on the build machines. When a sensor has run Zeek with the
package and its output was dropped into ``../shared/zeek-runs/`` next to the checkout
(Zeek's stderr and/or reporter.log), the package must have loaded with no error and no
warning that mentions it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

RUNS = REPO.parent / "shared" / "zeek-runs"
PROBLEM = re.compile(r"\b(error|warning|fatal)\b|Reporter::(ERROR|WARNING|FATAL)", re.I)


def run_outputs(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and (p.name == "reporter.log" or "stderr" in p.name or p.suffix == ".err")
    )


def problems(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [f"{path.relative_to(RUNS)}: {ln}" for ln in lines
            if not ln.startswith("#") and "zeek_scripts" in ln and PROBLEM.search(ln)]


@pytest.mark.skipif(not RUNS.is_dir(), reason=f"no Zeek runs of zeek_scripts/ at {RUNS}")
def test_zeek_loaded_the_package_without_errors_or_warnings() -> None:
    outputs = run_outputs(RUNS)
    found = [p for path in outputs for p in problems(path)]
    assert (outputs != [], found) == (True, [])
