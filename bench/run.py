"""The benchmark harness: measures figures B1-B7 and writes docs/BENCHMARKS.md.

    python bench/run.py                      # every figure whose feature exists
    python bench/run.py --figures B1,B2      # some of them
    python bench/run.py --runs 5 --rows 1000000 --big-rows 10000000

Every figure is a ratio between a subject and a baseline measured in the same run on the
same files, alternating subject and baseline after one warm-up of each, so that load from
other processes on the machine hits both sides alike. Each command runs under
``/usr/bin/time -v`` for its peak RSS; wall time is ``time.perf_counter`` around it.

Results accumulate in docs/benchmarks.json (one entry per figure, the last measurement
wins), and docs/BENCHMARKS.md is rewritten from all of them after each figure.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

# bench/ is a folder of scripts, not a package: the figures and the harness are found beside
# this file, whether it runs as a script or is loaded by a test.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures.b1 import figure_b1_b2, figure_b1_heavy
from figures.b3 import figure_b3, figure_b3_json
from figures.b4 import figure_b4
from figures.b5 import figure_b5, figure_b5_worst
from figures.b5_rulesets import figure_b5_rulesets
from figures.b6 import figure_b6
from figures.b7 import figure_b7
from harness import BENCH, OUT, ROOT, TIME, BenchError, BenchSkipped, Figure

# The figures live next to the document they render, in git: a run of one figure on a
# fresh checkout (empty bench/out/) must keep every other figure's row.
RESULTS = ROOT / "docs" / "benchmarks.json"
DOC = ROOT / "docs" / "BENCHMARKS.md"
PROFILE_NOTES = BENCH / "profile-notes.md"
README = ROOT / "README.md"
README_START, README_END = "<!-- bench-table -->", "<!-- /bench-table -->"


FIGURES: dict[str, Callable[[argparse.Namespace], list[Figure]]] = {
    "B1": figure_b1_b2,
    "B1H": figure_b1_heavy,
    "B3": figure_b3,
    "B3J": figure_b3_json,
    "B4": figure_b4,
    "B5": figure_b5_rulesets,
    "B5A": figure_b5,
    "B5W": figure_b5_worst,
    "B6": figure_b6,
    "B7": figure_b7,
}
ALIASES = {"B2": "B1", "B5R": "B5"}


def machine_facts() -> dict[str, str]:
    facts = {"cores (nproc)": str(os.cpu_count())}
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    facts["RAM"] = f"{total_kb / 1024 / 1024:.1f} GiB"
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    facts["CPU"] = cpu.group(1).strip() if cpu else platform.processor()
    facts["OS"] = f"{platform.system()} {platform.release()}"
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    facts["sensor-plugins tree"] = rev.stdout.strip() or "unknown"
    facts["Python"] = platform.python_version()
    for package in ("polars", "zat", "pandas", "numpy"):
        facts[package] = _version(package)
    suricata = shutil.which("suricata")
    if suricata:
        done = subprocess.run([suricata, "-V"], capture_output=True, text=True)
        facts["Suricata"] = done.stdout.strip().removeprefix("This is Suricata version ")
    return facts


def tree_state() -> tuple[str, str]:
    """(git describe --dirty, a digest of the working-tree diff): equal before and after = same code."""
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    diff = subprocess.run(["git", "diff", "HEAD", "--", "sensor_plugins"], cwd=ROOT, capture_output=True)
    return rev.stdout.strip() or "unknown", hashlib.sha256(diff.stdout).hexdigest()[:12]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def load_results() -> dict[str, dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(results: dict[str, dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, RESULTS)


def results_table(results: dict[str, dict]) -> list[str]:
    lines = [
        "| Figure | What | Subject median (min–max) | Baseline median (min–max) | Ratio | Target | Met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(results):
        r = results[name]
        lines.append(f"| {name} | {r['title']} | {r['subject']} | {r['baseline']} | {r['ratio']} | "
                     f"{r['target']} | {r['met']} |")
    return lines


def with_readme_table(readme: str, results: dict[str, dict]) -> str:
    """The README with the table between its bench markers replaced by the current one."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise BenchError(f"README.md has no {README_START} ... {README_END} markers for the table")
    table = "\n".join(results_table(results))
    return readme[:start + len(README_START)] + "\n" + table + "\n" + readme[end:]


def render(results: dict[str, dict], facts: dict[str, str], runs: int) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measured by `bench/run.py` (see `bench/README.md`). Each figure is a ratio between a subject",
        "and a baseline measured in the same run on the same files: one warm-up of each, then",
        f"{runs} alternating runs of each. Times are the median (min–max) of wall time, RSS the peak",
        "resident set size from `/usr/bin/time -v`. The logs come from `bench/make_logs.py`: Zeek 7 TSV",
        "conn, dns, http, ssl and x509; B3 and B4 use seed 1 with ~30% catalogue traffic (the set the",
        "code was tuned on), B1 and B2 a fresh set (seed 2, ~10%), B1h an NK-heavy one (seed 3, 50%",
        "catalogue rows, ~40% of conn rows become findings). B5 and B7 run on a tap-like capture",
        "(`bench/tap_mix.py`: public Zeek traces with 1% scenario packets); B5 adds our rules to ET",
        "Open's (`--et-rules DIR`). B5's ratios are callgrind",
        "instruction counts and B7's CPU time, because wall time on this machine swings by tens of",
        "percent. The machine is shared with other work (2 cores), which is why every figure is a",
        "ratio within one run. Each note names the git tree it measured (`-dirty`: with uncommitted",
        "work).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in facts.items()],
        "",
        "## Results",
        "",
        *results_table(results),
    ]
    lines += ["", "## Notes", ""]
    for name in sorted(results):
        r = results[name]
        lines.append(f"- **{name}** ({r['measured_at']}): {r['notes']}")
    for name in sorted(results):
        if results[name].get("table"):
            lines += ["", f"### {name}: {results[name]['title']}", "", results[name]["table"]]
    # The profiles and the fixes they point to are written by hand, from py-spy runs.
    if PROFILE_NOTES.exists():
        lines += ["", PROFILE_NOTES.read_text().strip()]
    lines += ["", "## Reproduce", "", "```sh", "make bench                       # or: .venv/bin/python bench/run.py",
              ".venv/bin/python bench/run.py --figures B3   # one figure",
              ".venv/bin/python bench/run.py --figures B5 --et-rules DIR   # or: make bench ET_RULES=DIR",
              ".venv/bin/python bench/run.py --figures B7 --b7-package main=/work/main/zeek_scripts --b7-profile",
              "```"]
    return "\n".join(lines) + "\n"


def write_doc(results: dict[str, dict], runs: int) -> None:
    from sensor_plugins.atomic import write_text_atomic

    write_text_atomic(DOC, render(results, machine_facts(), runs))
    # The README quotes the same table; rewriting it here keeps the two from drifting.
    write_text_atomic(README, with_readme_table(README.read_text(), results))


def _package_arg(text: str) -> tuple[str, Path]:
    sys.path.insert(0, str(BENCH))
    import zeek_cost  # bench/ is a folder of scripts, not a package

    label, path = zeek_cost.parse_package(text)
    if label == "tree":
        raise argparse.ArgumentTypeError(f"{text!r}: 'tree' is this tree's zeek_scripts/, measured always")
    return label, path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.py", description="Measure figures B1-B7.")
    parser.add_argument("--figures", default=",".join(FIGURES), help="comma-separated, e.g. B1,B3")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per command (after one warm-up)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="conn rows for B1/B2 and B3's small end")
    parser.add_argument("--mid-rows", type=int, default=3_000_000, help="B3's middle size")
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="B3's large end")
    parser.add_argument("--seed", type=int, default=1, help="make_logs seed for B3 and B4")
    parser.add_argument("--b1-seed", type=int, default=2,
                        help="B1/B2's fresh log set: another seed than the tuning set")
    parser.add_argument("--b1-catalogue-share", type=float, default=0.1,
                        help="B1/B2's fresh log set: another mix than the tuning set's 30%% catalogue rows")
    parser.add_argument("--b1-heavy-seed", type=int, default=3, help="B1h's NK-heavy log set: its seed")
    parser.add_argument("--b1-heavy-share", type=float, default=0.5,
                        help="B1h's NK-heavy log set: catalogue share of conn rows (0.5: about 40%% become findings)")
    parser.add_argument("--b4-rows", type=int, default=500_000, help="conn rows the B4 writer appends")
    parser.add_argument("--b4-rate", type=int, default=50_000, help="B4 writer's conn rows per second")
    parser.add_argument("--pcap-packets", type=int, default=500_000, help="B5w's all-scenario pcap size")
    parser.add_argument("--tap-packets", type=int, default=1_000_000, help="the tap mix's size (B5, B7)")
    parser.add_argument("--tap-share", type=float, default=0.01, help="the tap mix's share of scenario packets")
    parser.add_argument("--et-rules", type=Path, metavar="DIR",
                        help="B5: the folder of ET Open's *.rules for Suricata 7 (B5 is skipped without it)")
    parser.add_argument("--b5-et-packets", type=int, default=50_000,
                        help="B5: the tap mix size every rule set's instructions are counted on")
    parser.add_argument("--b5-load-runs", type=int, default=3,
                        help="B5: timed suricata -T runs per rule set (after a checked one)")
    parser.add_argument("--b5-callgrind-packets", type=int, default=200_000,
                        help="B5 and B7: the tap mix size Suricata's and Zeek's instructions are counted on")
    parser.add_argument("--b5w-callgrind-packets", type=int, default=43_800,
                        help="B5w: the all-scenario pcap size instructions are counted on (100 copies)")
    parser.add_argument("--b5-tor", type=int, default=10_000, help="Tor addresses in B5's datasets")
    parser.add_argument("--b7-package", action="append", default=[], type=_package_arg,
                        help="LABEL=DIR: another Zeek package to measure beside the tree's zeek_scripts/ (B7)")
    parser.add_argument("--b7-profile", action="store_true",
                        help="B7: one more run of each package under zeek --profile-scripts")
    parser.add_argument("--b6-ranges", type=int, default=10_000)
    parser.add_argument("--b6-tor", type=int, default=50_000)
    return parser.parse_args(argv)


def compile_bytecode() -> None:
    """Byte-compile the package, as pip does for an installed copy.

    An editable install run under PYTHONDONTWRITEBYTECODE (set on this machine) would
    otherwise compile every sensor_plugins module again in each measured run: about 20 ms
    an analyze run that an installed copy never pays, nor the pip-installed zat and
    pandas of the baseline.
    """
    compileall.compile_dir(ROOT / "sensor_plugins", quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs < 5:
        print("run.py: warning: fewer than 5 runs; the issue asks for at least 5", file=sys.stderr)
    if not Path(TIME).exists():
        print(f"run.py: error: {TIME} is missing (apt-get install time)", file=sys.stderr)
        return 2
    compile_bytecode()
    wanted = [ALIASES.get(f.strip().upper(), f.strip().upper()) for f in args.figures.split(",") if f.strip()]
    failed = 0
    for name in dict.fromkeys(wanted):
        if name not in FIGURES:
            print(f"run.py: error: unknown figure {name}", file=sys.stderr)
            return 2
        print(f"== {name}", flush=True)
        tree_before = tree_state()
        try:
            figures = FIGURES[name](args)
        except BenchSkipped as exc:
            print(f"run.py: {name} skipped: {exc}", file=sys.stderr)
            continue
        except BenchError as exc:
            print(f"run.py: {name} not measured: {exc}", file=sys.stderr)
            failed += 1
            continue
        results = load_results()
        tree_after = tree_state()
        tree = tree_before[0]
        if tree_before[0] != tree_after[0]:
            tree += f", changed during the run to {tree_after[0]}"
        elif tree_before != tree_after:
            tree += "; uncommitted sensor_plugins code changed during the run"
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + f", tree {tree}"
        for figure in figures:
            figure.measured_at = stamp
            results[figure.name] = asdict(figure)
            print(f"{figure.name}: {figure.subject} vs {figure.baseline} -> {figure.ratio} "
                  f"(target {figure.target}: {figure.met})", flush=True)
        save_results(results)
        write_doc(results, args.runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
