"""B4: ``analyze --follow`` against a writer that appends to conn.log and ssl.log at a set rate.

    python bench/follow_bench.py --logs bench/out/logs-600000-s1-d3 --rate 50000

The writer replays the data lines of generated logs into a fresh directory, in ts order,
in slices every 50 ms so that the rate holds within each second. The follower runs as
``sensor-plugins analyze --follow DIR --out findings.jsonl --checkpoint ...``.

Loss is judged by counting: batch ``analyze`` over the same two complete files is the
oracle, and the follower must produce the same number of findings for every reason.
Daily nk-traffic summaries are compared for the days that closed during the run (a day
closes once conn.log is an hour into the next one); tor-repeat is left out, as batch mode
sees all days at once while follow decides on the second day it meets.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "sensor_plugins", "analyze"]
SLICE_S = 0.05
READY_TIMEOUT_S = 60
CATCH_UP_TIMEOUT_S = 120


@dataclass
class LogLines:
    header: bytes
    lines: list[bytes]
    ts: list[float]


@dataclass
class LiveResult:
    rows: int
    rate_asked: int
    rate_written: float
    lag_s: float  # from the writer's last line to the follower's last expected finding
    caught_up: bool
    expected: int
    found: int
    missing: dict[str, int]
    peak_rss_mb: float


def read_log(path: Path) -> LogLines:
    header, lines, ts = [], [], []
    with path.open("rb") as handle:
        for line in handle:
            if line.startswith(b"#"):
                if not lines and not line.startswith(b"#close"):
                    header.append(line)
                continue
            lines.append(line)
            ts.append(float(line.split(b"\t", 1)[0]))
    return LogLines(b"".join(header), lines, ts)


def take(conn: LogLines, ssl: LogLines, rows: int) -> tuple[LogLines, LogLines]:
    """The first ``rows`` conn rows, and the ssl rows up to the last of their times."""
    conn = LogLines(conn.header, conn.lines[:rows], conn.ts[:rows])
    last = conn.ts[-1]
    keep = [i for i, t in enumerate(ssl.ts) if t <= last]
    return conn, LogLines(ssl.header, [ssl.lines[i] for i in keep], [ssl.ts[i] for i in keep])


def reason_key(finding: dict, open_day: str | None) -> str | None:
    reason = f"{finding.get('category')}/{finding.get('reason')}"
    if finding.get("reason") == "tor-repeat":
        return None
    if finding.get("category") == "nk-traffic" and (finding.get("evidence") or {}).get("day") == open_day:
        return None
    return reason


def count_findings(path: Path, open_day: str | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    if not path.exists():
        return counts
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip() or not line.startswith("{"):
                continue
            key = reason_key(json.loads(line), open_day)
            if key:
                counts[key] += 1
    return counts


def oracle(conn: LogLines, ssl: LogLines, work: Path, open_day: str) -> Counter[str]:
    """Batch analyze over the complete files: what follow must find too."""
    whole = work / "oracle"
    whole.mkdir(parents=True, exist_ok=True)
    for name, log in (("conn", conn), ("ssl", ssl)):
        (whole / f"{name}.log").write_bytes(log.header + b"".join(log.lines))
    out = work / "oracle-findings.jsonl"
    done = subprocess.run([*CLI, str(whole), "--format", "jsonl", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"batch analyze failed: {done.stderr.strip()[-300:]}")
    return count_findings(out, open_day)


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def live_run(conn: LogLines, ssl: LogLines, rate: int, work: Path, expected: Counter[str],
             open_day: str) -> LiveResult:
    live = work / "live"
    live.mkdir(parents=True, exist_ok=True)
    for stale in (live / "conn.log", live / "ssl.log", work / "findings.jsonl", work / "checkpoint.json"):
        stale.unlink(missing_ok=True)
    conn_out = (live / "conn.log").open("wb")
    ssl_out = (live / "ssl.log").open("wb")
    conn_out.write(conn.header)
    ssl_out.write(ssl.header)
    conn_out.flush()
    ssl_out.flush()
    findings, checkpoint = work / "findings.jsonl", work / "checkpoint.json"
    follower = subprocess.Popen([*CLI, "--follow", str(live), "--format", "jsonl", "--out", str(findings),
                                 "--checkpoint", str(checkpoint)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        waited = time.perf_counter()
        while not checkpoint.exists():
            if follower.poll() is not None or time.perf_counter() - waited > READY_TIMEOUT_S:
                raise RuntimeError(f"follower did not start: {(follower.stderr.read() or '')[-300:]}")
            time.sleep(0.05)
        per_slice = max(1, int(rate * SLICE_S))
        started = time.perf_counter()
        s = 0
        for i in range(0, len(conn.lines), per_slice):
            due = started + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            chunk = conn.lines[i:i + per_slice]
            conn_out.write(b"".join(chunk))
            last_ts = conn.ts[i + len(chunk) - 1]
            first = s
            while s < len(ssl.lines) and ssl.ts[s] <= last_ts:
                s += 1
            ssl_out.write(b"".join(ssl.lines[first:s]))
            conn_out.flush()
            ssl_out.flush()
        wrote_all = time.perf_counter()
        want = sum(expected.values())
        found: Counter[str] = Counter()
        caught_up = False
        while time.perf_counter() - wrote_all < CATCH_UP_TIMEOUT_S:
            found = count_findings(findings, open_day)
            if found == expected:
                caught_up = True
                break
            if follower.poll() is not None:
                break
            time.sleep(0.1)
        lag = time.perf_counter() - wrote_all
        rss = peak_rss_mb(follower.pid) if follower.poll() is None else 0.0
    finally:
        conn_out.close()
        ssl_out.close()
        if follower.poll() is None:
            follower.send_signal(signal.SIGTERM)
            try:
                follower.wait(timeout=30)
            except subprocess.TimeoutExpired:
                follower.kill()
    missing = {k: expected[k] - found.get(k, 0) for k in expected if expected[k] != found.get(k, 0)}
    return LiveResult(len(conn.lines), rate, len(conn.lines) / (wrote_all - started), lag, caught_up, want,
                      sum(found.values()), missing, rss)


def prepare(logs: Path, rows: int, work: Path) -> tuple[LogLines, LogLines, Counter[str], str]:
    conn, ssl = take(read_log(logs / "conn.log"), read_log(logs / "ssl.log"), rows)
    open_day = utc_day(conn.ts[-1])
    return conn, ssl, oracle(conn, ssl, work, open_day), open_day


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="follow_bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=Path, required=True, help="generated logs (make_logs.py --days 3)")
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rate", type=int, default=50_000, help="conn rows per second")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "b4")
    args = parser.parse_args(argv)
    conn, ssl, expected, open_day = prepare(args.logs, args.rows, args.work)
    result = live_run(conn, ssl, args.rate, args.work, expected, open_day)
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.caught_up else 1


if __name__ == "__main__":
    sys.exit(main())
