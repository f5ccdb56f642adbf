"""conn rows/s of ``analyze`` on the local engine, Spark ``local[2]`` and a two-worker
standalone cluster on loopback, on the same logs, side by side in one run.

    python bench/spark_bench.py --rows 10000000 [--logs bench/out/logs-10m] [--json bench/out/spark.json]

Each engine runs the real command (``sensor-plugins analyze DIR --format jsonl --out F``) in
a process of its own, so its time includes what a user waits for: Spark's JVM start and
executor launch too. The findings of the three runs must be identical, or the run fails.
Not part of the tests: one run of 10M rows takes minutes on each engine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sensor_plugins.analysis.engines.standalone import standalone_cluster

BIN = Path(sys.executable).parent
MAKE_LOGS = Path(__file__).with_name("make_logs.py")


def conn_rows(logs: Path) -> int:
    with open(logs / "conn.log", "rb") as handle:
        return sum(1 for line in handle if not line.startswith(b"#"))


def timed(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "sensor-plugins"), "analyze", *args, "--format", "jsonl", "--out", str(out)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"analyze {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def findings(path: Path) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--logs", type=Path, help="logs made by bench/make_logs.py (made here if absent)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON too")
    args = parser.parse_args(argv)
    logs = args.logs or Path("bench/out") / f"logs-spark-{args.rows}"
    if not (logs / "conn.log").exists():
        subprocess.run([sys.executable, str(MAKE_LOGS), "--rows", str(args.rows), "--seed", "1", "--out", str(logs)],
                       check=True)
    rows = conn_rows(logs)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        work = Path(tmp)
        results["local (polars)"] = timed([str(logs)], work / "local.jsonl")
        results["spark local[2]"] = timed([str(logs), "--engine", "spark", "--master", "local[2]"],
                                          work / "spark-local.jsonl")
        with standalone_cluster(work / "cluster", workers=2, cores=1) as cluster:
            results["spark standalone, 2 workers x 1 core"] = timed(
                [str(logs), "--engine", "spark", "--master", cluster.url], work / "spark-cluster.jsonl")
        want = findings(work / "local.jsonl")
        for name in ("spark-local", "spark-cluster"):
            if findings(work / f"{name}.jsonl") != want:
                raise SystemExit(f"{name}: findings differ from the local engine's")
    base = results["local (polars)"]
    print(f"conn rows: {rows:,}; findings: {len(want):,} (identical on all three)")
    print("| engine | wall s | conn rows/s | time vs local |")
    print("|---|---:|---:|---:|")
    for name, secs in results.items():
        print(f"| {name} | {secs:.1f} | {rows / secs:,.0f} | {secs / base:.1f}x |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "findings": len(want), "seconds": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
