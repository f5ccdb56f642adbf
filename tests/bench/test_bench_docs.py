"""The README quotes the benchmark table that bench/run.py last wrote, not an older one."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_the_one_in_benchmarks_json() -> None:
    run = load_bench_run()
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert run.with_readme_table(readme, results) == readme
