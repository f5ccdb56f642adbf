"""B1 and B2: analyze against zat's plain load and a bare polars read_csv."""

from __future__ import annotations

import argparse
import json
import shutil

from harness import (
    BENCH,
    ONE_CORE,
    OUT,
    PYTHON,
    BenchError,
    Figure,
    Series,
    analyze_command,
    catalogue_rows,
    ensure_logs,
    has_subcommand,
    interleave,
    measure,
    met,
)


def figure_b1_b2(args: argparse.Namespace) -> list[Figure]:
    """B1/B2 on a fresh log set (another seed and mix than the tuning set), on both cores and on one."""
    if not has_subcommand("analyze"):
        raise BenchError("sensor-plugins analyze does not exist yet")
    if shutil.which("taskset") is None:
        raise BenchError("taskset is missing (Debian package util-linux), so the 1-core runs cannot be pinned")
    logs = ensure_logs(args.rows, args.b1_seed, catalogue_share=args.b1_catalogue_share)
    tuning = ensure_logs(args.rows, args.seed)
    out = OUT / "analyze-b1"
    zat = [PYTHON, str(BENCH / "baseline_zat.py"), str(logs)]
    commands = {
        "analyze": (analyze_command(logs, out), (0, 1)),
        "zat": (zat, (0,)),
        "polars": ([PYTHON, str(BENCH / "baseline_polars.py"), str(logs)], (0,)),
        "analyze-1core": ([*ONE_CORE, *analyze_command(logs, out)], (0, 1)),
        "zat-1core": ([*ONE_CORE, *zat], (0,)),
        # The set the code was tuned on, for comparison: its 30% catalogue rows make far more findings.
        "analyze-1core-tuning": ([*ONE_CORE, *analyze_command(tuning, out)], (0, 1)),
        "zat-1core-tuning": ([*ONE_CORE, PYTHON, str(BENCH / "baseline_zat.py"), str(tuning)], (0,)),
    }
    series = interleave(commands, args.runs)
    subject, zat_s, bare = series["analyze"], series["zat"], series["polars"]
    one, zat_one = series["analyze-1core"], series["zat-1core"]
    speedup = zat_s.median_s / subject.median_s
    speedup_one = zat_one.median_s / one.median_s
    # On one core, CPU time is the work each side does, whatever else the machine runs.
    work_one = zat_one.median_cpu_s / one.median_cpu_s
    tuned, zat_tuned = series["analyze-1core-tuning"], series["zat-1core-tuning"]
    tuned_wall = zat_tuned.median_s / tuned.median_s
    tuned_cpu = zat_tuned.median_cpu_s / tuned.median_cpu_s
    slowdown = subject.median_s / bare.median_s
    rows_per_s = args.rows / subject.median_s
    size_mb = sum(p.stat().st_size for p in logs.glob("*.log")) / 1e6
    manifest = json.loads((logs / "manifest.json").read_text())
    fresh = (f"fresh log set: seed {args.b1_seed}, {manifest['catalogue_conn_rows'] / args.rows:.0%} catalogue "
             f"rows (the code was tuned on seed 1 with 30%)")
    return [
        Figure("B1", f"analyze vs zat LogToDataFrame, {args.rows:,} conn rows, 2 cores (1 core: `taskset -c 0`)",
               f"{subject.spread_s()}; 1 core {one.spread_s()}",
               f"{zat_s.spread_s()}; 1 core {zat_one.spread_s()}",
               f"{speedup:.1f}x faster (1 core: {speedup_one:.1f}x; tuning set, 1 core: {tuned_wall:.1f}x)",
               ">= 5x faster on the fresh set",
               f"{met(speedup >= 5 and speedup_one >= 5)} (2 cores: {met(speedup >= 5)}; "
               f"1 core: {met(speedup_one >= 5)})",
               f"{fresh}. analyze: {rows_per_s:,.0f} conn rows/s, {size_mb / subject.median_s:,.0f} MB/s of TSV "
               f"({size_mb:,.0f} MB in 5 logs); the zat baseline loads conn, ssl and x509 only and is "
               f"single-threaded, so the 1-core pair compares like with like. CPU time (user + system, not "
               f"moved by waiting for a busy core) on 1 core: analyze {one.spread_cpu()}, zat "
               f"{zat_one.spread_cpu()}, {work_one:.1f}x; on 2 cores analyze uses {subject.spread_cpu()} of CPU "
               f"against zat's {zat_s.spread_cpu()}. The tuning set (seed {args.seed}, 30% catalogue rows, "
               f"{catalogue_rows(tuning)}) on 1 core: analyze {tuned.spread_s()}, zat {zat_tuned.spread_s()}: "
               f"{tuned_wall:.1f}x wall, {tuned_cpu:.1f}x CPU; the fresh set's mix makes fewer findings, which "
               f"is most of the difference. Peak RSS: analyze {subject.spread_rss()}, zat {zat_s.spread_rss()}."),
        Figure("B2", "analyze vs bare polars.read_csv of the same 5 logs", subject.spread_s(), bare.spread_s(),
               f"{slowdown:.2f}x the time", "<= 2x the time", met(slowdown <= 2),
               f"{fresh}. Peak RSS: analyze {subject.spread_rss()}, read_csv {bare.spread_rss()}"),
    ]


def detection_columns() -> dict[str, list[str]]:
    """The columns analyze's detections read from each log the floor parses (bench/baseline_floor.py)."""
    from sensor_plugins.analysis.detect.client import CLIENT_COLUMNS
    from sensor_plugins.analysis.detect.frames import CONN_KEYS
    from sensor_plugins.analysis.detect.pipeline import CONN_COLUMNS, HTTP_COLUMNS
    from sensor_plugins.analysis.detect.tls import SSL_COLUMNS, X509_TYPES

    keys = list(CONN_KEYS)
    return {
        "conn": [*keys, *CONN_COLUMNS], "ssl": [*keys, *SSL_COLUMNS, *CLIENT_COLUMNS],
        "x509": list(X509_TYPES), "http": [*keys, *HTTP_COLUMNS],
    }


def figure_b1_heavy(args: argparse.Namespace) -> list[Figure]:
    """B1 where findings are many: a log set whose catalogue hosts are busy (about 40% of the
    conn rows become findings), the sensor on which analyze most needs to be fast."""
    if shutil.which("taskset") is None:
        raise BenchError("taskset is missing (Debian package util-linux), so the 1-core runs cannot be pinned")
    logs = ensure_logs(args.rows, args.b1_heavy_seed, catalogue_share=args.b1_heavy_share)
    out = OUT / "analyze-b1-heavy"
    out.mkdir(parents=True, exist_ok=True)
    zat = [PYTHON, str(BENCH / "baseline_zat.py"), str(logs)]
    # The floor writes as many bytes as analyze's findings, so analyze runs once first.
    measure(analyze_command(logs, out), (0, 1))
    floor = [PYTHON, str(BENCH / "baseline_floor.py"), str(logs), json.dumps(detection_columns()),
             str(out / "floor.out"), str((out / "findings.jsonl").stat().st_size)]
    series = interleave({
        "analyze": (analyze_command(logs, out), (0, 1)),
        "zat": (zat, (0,)),
        "floor": (floor, (0,)),
        "analyze-1core": ([*ONE_CORE, *analyze_command(logs, out)], (0, 1)),
        "zat-1core": ([*ONE_CORE, *zat], (0,)),
        "floor-1core": ([*ONE_CORE, *floor], (0,)),
    }, args.runs)
    (out / "floor.out").unlink()
    subject, zat_s, one, zat_one = series["analyze"], series["zat"], series["analyze-1core"], series["zat-1core"]
    speedup, speedup_one = zat_s.median_s / subject.median_s, zat_one.median_s / one.median_s
    floor_s, floor_one = series["floor"], series["floor-1core"]
    floor_x, floor_one_x = zat_s.median_s / floor_s.median_s, zat_one.median_s / floor_one.median_s
    with (out / "findings.jsonl").open("rb") as handle:
        findings = sum(1 for _ in handle)
    manifest = json.loads((logs / "manifest.json").read_text())
    return [Figure(
        "B1h", f"B1 where findings are many: analyze vs zat LogToDataFrame, {args.rows:,} conn rows, "
        f"{findings / args.rows:.0%} of them findings, 2 cores (1 core: `taskset -c 0`)",
        f"{subject.spread_s()}; 1 core {one.spread_s()}",
        f"{zat_s.spread_s()}; 1 core {zat_one.spread_s()}",
        f"{speedup:.1f}x faster (1 core: {speedup_one:.1f}x); the floor {floor_x:.1f}x (1 core: {floor_one_x:.1f}x)",
        ">= 5x faster on 2 cores and on 1",
        f"{met(speedup >= 5 and speedup_one >= 5)} (2 cores: {met(speedup >= 5)}; 1 core: {met(speedup_one >= 5)})",
        f"NK-heavy log set: seed {args.b1_heavy_seed}, {manifest['catalogue_conn_rows'] / args.rows:.0%} catalogue "
        f"rows ({catalogue_rows(logs)}), {findings:,} findings. CPU time (user + system) on 1 core: analyze "
        f"{one.spread_cpu()}, zat {zat_one.spread_cpu()}, {zat_one.median_cpu_s / one.median_cpu_s:.1f}x; on 2 "
        f"cores analyze uses {subject.spread_cpu()} against zat's {zat_s.spread_cpu()}. Peak RSS: analyze "
        f"{subject.spread_rss()}, zat {zat_s.spread_rss()}. The floor (bench/baseline_floor.py: start, import "
        f"polars, parse the columns the detections read from conn, ssl, x509 and http, every row, then write "
        f"and fsync as many bytes as the findings; no detection at all): {floor_s.spread_s()}, 1 core "
        f"{floor_one.spread_s()}. To be 5x, a polars-based analyze has {_budget(zat_s, floor_s)} on 2 cores and "
        f"{_budget(zat_one, floor_one)} on 1 for everything it does beyond the floor; it takes "
        f"{subject.median_s - floor_s.median_s:.2f} s ({one.median_s - floor_one.median_s:.2f} s on 1).",
    )]


def _budget(zat: Series, floor: Series) -> str:
    """The time 5x of zat leaves beyond the floor, or how far the floor alone is over it."""
    left = zat.median_s / 5 - floor.median_s
    return f"{left:.2f} s" if left >= 0 else f"none (the floor alone is {-left:.2f} s over)"
