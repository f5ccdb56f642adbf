"""B4: analyze --follow keeping up with a writer."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from harness import (
    BENCH,
    CLI,
    OUT,
    ROOT,
    BenchError,
    Figure,
    Series,
    ensure_logs,
    measure,
    met,
)


def figure_b4(args: argparse.Namespace) -> list[Figure]:
    help_text = subprocess.run([*CLI, "analyze", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    if "--follow" not in help_text:
        raise BenchError("sensor-plugins analyze has no --follow yet")
    sys.path.insert(0, str(BENCH))
    import follow_bench  # bench/ is a folder of scripts, not a package

    # Three days over 1.2x the rows replayed, so two days close during the run and the
    # daily nk-traffic summaries are counted too.
    logs = ensure_logs(args.b4_rows * 6 // 5, args.seed, days=3)
    work = OUT / "b4"
    conn, ssl, expected, open_day = follow_bench.prepare(logs, args.b4_rows, work)
    once = [*CLI, "analyze", "--follow", str(work / "oracle"), "--once", "--format", "jsonl",
            "--out", str(work / "once.jsonl")]
    catch_up = Series("once", " ".join(once))
    live = []
    once_out = work / "once.jsonl"
    # follow refuses an --out that already holds findings without its checkpoint, so each
    # catch-up run starts from no output, as a first run does.
    once_out.unlink(missing_ok=True)
    measure(once, (0, 1))
    follow_bench.live_run(conn, ssl, args.b4_rate, work, expected, open_day)
    for _ in range(args.runs):
        once_out.unlink(missing_ok=True)
        catch_up.samples.append(measure(once, (0, 1)))
        live.append(follow_bench.live_run(conn, ssl, args.b4_rate, work, expected, open_day))
    lags = sorted(r.lag_s for r in live)
    kept_up = sum(r.caught_up for r in live)
    once_rate = args.b4_rows / catch_up.median_s
    written = statistics.median(r.rate_written for r in live)
    missing = [r.missing for r in live if r.missing]
    return [Figure(
        "B4", f"analyze --follow while a writer appends {args.b4_rows:,} conn rows (+ssl) at {args.b4_rate:,}/s",
        f"no loss in {kept_up}/{len(live)} runs; lag after the last write {statistics.median(lags):.2f} s "
        f"({lags[0]:.2f}–{lags[-1]:.2f})",
        f"writer: {written:,.0f} conn rows/s achieved",
        f"catch-up {once_rate:,.0f} rows/s = {once_rate / args.b4_rate:.1f}x the target rate",
        f">= {args.b4_rate:,} rows/s, no loss", met(kept_up == len(live) and once_rate >= args.b4_rate),
        f"{sum(expected.values()):,} findings expected per run (batch analyze over the same rows is the oracle; "
        f"tor-repeat and the still-open day's nk-traffic excluded). Catch-up = `analyze --follow DIR --once` "
        f"over the complete files: {catch_up.spread_s()}, peak RSS {catch_up.spread_rss()}; live follower peak "
        f"RSS {statistics.median(r.peak_rss_mb for r in live):.0f} MiB."
        + (f" Missing findings: {missing[0]}." if missing else ""),
    )]


