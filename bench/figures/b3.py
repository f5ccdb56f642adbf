"""B3: analyze's peak RSS as the input grows."""

from __future__ import annotations

import argparse

from harness import (
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


