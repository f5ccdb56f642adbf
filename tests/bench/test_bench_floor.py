"""B1h's floor does the work it claims: every row of the columns analyze reads, and the findings' bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from figures.b1 import detection_columns  # noqa: E402


def data_rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if not line.startswith("#"))


def test_floor_parses_every_row_and_writes_the_findings_bytes(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    made = subprocess.run([sys.executable, str(BENCH / "make_logs.py"), "--rows", "3000", "--seed", "5",
                           "--out", str(logs)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "floor.out"
    size = 3 * (1 << 20) + 12_345
    done = subprocess.run([sys.executable, str(BENCH / "baseline_floor.py"), str(logs),
                           json.dumps(detection_columns()), str(out), str(size)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    parsed = dict(part.split("=") for part in done.stdout.split())
    # Each generated log ends in a "#close" footer, which the floor parses as one more row.
    assert {name: int(rows) for name, rows in parsed.items()} == {
        name: data_rows(logs / f"{name}.log") + 1 for name in ("conn", "ssl", "x509", "http")}
    assert out.stat().st_size == size

