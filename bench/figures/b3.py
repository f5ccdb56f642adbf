"""B3: analyze's peak RSS as the input grows."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import (
    CLI,
    OUT,
    BenchError,
    Figure,
    Series,
    analyze_command,
    ensure_logs,
    has_subcommand,
    interleave,
    met,
)


def figure_b3(args: argparse.Namespace) -> list[Figure]:
    from sensor_plugins.analysis.logfiles import input_bytes
    from sensor_plugins.analysis.options import IN_MEMORY_MAX_BYTES

    if not has_subcommand("analyze"):
        raise BenchError("sensor-plugins analyze does not exist yet")
    sizes = sorted({args.rows, args.mid_rows, args.big_rows})
    series: dict[int, Series] = {}
    in_memory: dict[int, bool] = {}
    for rows in sizes:
        logs = ensure_logs(rows, args.seed)
        # The same measure and bound analyze itself decides by.
        in_memory[rows] = input_bytes([logs]) <= IN_MEMORY_MAX_BYTES
        out = OUT / f"analyze-b3-{rows}"
        series[rows] = interleave({"analyze": (analyze_command(logs, out), (0, 1))}, args.runs)["analyze"]
    small, big = series[sizes[0]], series[sizes[-1]]
    growth = big.median_rss_mb / small.median_rss_mb
    row_growth = sizes[-1] / sizes[0]
    steps = ", ".join(f"{rows / 1e6:g}M rows ({'in memory' if in_memory[rows] else 'streamed'}): "
                      f"{s.spread_rss()} in {s.spread_s()}" for rows, s in series.items())
    # Small inputs are kept in memory for speed, so the smallest size may peak above a
    # larger, streamed one; the growth between streamed sizes compares like with like.
    streamed = [rows for rows in sizes if not in_memory[rows]]
    like = ""
    if len(streamed) > 1:
        first, last = series[streamed[0]], series[streamed[-1]]
        like = (f" Between streamed runs, {streamed[0] / 1e6:g}M to {streamed[-1] / 1e6:g}M rows: "
                f"{last.median_rss_mb / first.median_rss_mb:.2f}x the RSS for "
                f"{streamed[-1] / streamed[0]:.2f}x the rows.")
    gb = big.median_rss_mb / 1024
    return [Figure("B3", f"analyze peak RSS over {sizes[-1]:,} conn rows", big.spread_rss(), small.spread_rss(),
                   f"{growth:.2f}x the RSS for {row_growth:g}x the rows", "<= 1.5 GiB (1536 MiB), sub-linear growth",
                   f"{met(gb <= 1.5 and growth < row_growth / 2)} (<= 1.5 GiB: {met(gb <= 1.5)}; "
                   f"well under linear: {met(growth < row_growth / 2)})",
                   f"baseline column = the same analyze at {sizes[0]:,} rows. {steps}.{like}")]


JSON_KINDS = ("conn", "ssl", "x509", "http")


def ensure_json_logs(tsv: Path) -> Path:
    """The same rows as Zeek JSON lines (times as epoch seconds, sets as arrays, unset fields
    as null: Zeek's ``LogAscii::use_json=T`` with ``json_include_unset_fields=T``), cached
    beside the TSV set. Written through the analyzer's own TSV reader, so both sets hold
    the same values."""
    import polars as pl

    from sensor_plugins.analysis.logs import read_log
    from sensor_plugins.atomic import write_text_atomic

    target = tsv.with_name(tsv.name + "-json")
    if (target / "manifest.json").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for kind in JSON_KINDS:
        frame = read_log([tsv / f"{kind}.log"]).collect()
        frame = frame.with_columns(
            [(pl.col(c).dt.epoch("us") / 1e6).alias(c) for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
            + [(pl.col(c).dt.total_microseconds() / 1e6).alias(c) for c, t in frame.schema.items()
               if isinstance(t, pl.Duration)])
        frame.write_ndjson(target / f"{kind}.log")
    write_text_atomic(target / "manifest.json", (tsv / "manifest.json").read_text())
    return target


def figure_b3_json(args: argparse.Namespace) -> list[Figure]:
    """B3j: analyze on JSON logs streams as on TSV: peak RSS and time on the same rows in both forms."""
    if not has_subcommand("analyze"):
        raise BenchError("sensor-plugins analyze does not exist yet")
    rows = args.mid_rows
    tsv = ensure_logs(rows, args.seed)
    json_logs = ensure_json_logs(tsv)
    commands = {}
    for label, logs in (("json", json_logs), ("tsv", tsv)):
        commands[label] = ([*CLI, "analyze", *(str(logs / f"{k}.log") for k in JSON_KINDS), "--format", "jsonl",
                            "--out", str(OUT / f"analyze-b3j-{label}.jsonl")], (0, 1))
    series = interleave(commands, args.runs)
    js, tsv_s = series["json"], series["tsv"]
    size_gb = sum((json_logs / f"{k}.log").stat().st_size for k in JSON_KINDS) / 1e9
    gb = js.median_rss_mb / 1024
    return [Figure(
        "B3j", f"analyze peak RSS on JSON logs, {rows:,} conn rows (+ssl, x509, http), against the same rows as TSV",
        f"{js.spread_rss()} in {js.spread_s()}", f"{tsv_s.spread_rss()} in {tsv_s.spread_s()}",
        f"{js.median_rss_mb / tsv_s.median_rss_mb:.2f}x the RSS, {js.median_s / tsv_s.median_s:.1f}x the time",
        "<= 1.5 GiB (1536 MiB), as B3 for TSV", met(gb <= 1.5),
        f"{size_gb:.1f} GB of JSON lines (unset fields written as null), the B3 seed. JSON is scanned, not read "
        f"whole, since 2026-12-04. Every JSON line is read once more to learn the columns (Zeek leaves unset "
        f"fields out; since 2026-12-04 a piece per core), and a JSON line costs more to parse than a TSV row.")]
