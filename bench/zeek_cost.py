"""B7: what the Zeek package costs a sensor. Stock ``local`` against ``local`` + the package.

    python bench/zeek_cost.py --pcap bench/out/tap-1000000-p1.pcap \\
        --package tree=zeek_scripts --package main=/work/main/zeek_scripts --runs 5

Each command is ``zeek -C -r PCAP local [PACKAGE]``, run in a fresh empty directory (Zeek
writes its logs to the working directory) under ``/usr/bin/time -v``: one warm-up of each,
then ``--runs`` rounds that run stock and every package once, in turn, so load from
other processes hits all alike. A run that does not end with exit code 0 stops the
measurement: a crash is a finding, never a sample. The figures are CPU time (user +
system: Zeek reads a file as fast as it can, so CPU time is its processing cost and
waits for a busy core drop out), wall time and peak RSS.

``--profile`` adds one run of each package under Zeek's ``--profile-scripts`` and reports
the package's event handlers and hooks by their CPU time (with the functions and BiFs they
call), against the script time of everything Zeek ran. The profiler's own overhead inflates
all of them alike, so they are shares, not the unprofiled cost.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import callgrind  # bench/callgrind.py: this folder is on the path when run as a script or by run.py

TIME = "/usr/bin/time"
RSS_RE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
USER_RE = re.compile(r"User time \(seconds\): ([0-9.]+)")
SYSTEM_RE = re.compile(r"System time \(seconds\): ([0-9.]+)")
STOCK = "stock"
AGGREGATE_RE = re.compile(r"^\d+-locations$")


class ZeekCostError(Exception):
    """A run that could not be measured (Zeek missing, crashed, or exited non-zero); the message says which."""


@dataclass
class ZeekSample:
    wall_s: float
    cpu_s: float
    peak_rss_kb: int
    conn_rows: int
    tagged_rows: int  # conn.log rows with an nk_range: proof the package ran on the traffic


@dataclass
class ZeekSeries:
    label: str
    command: list[str]
    samples: list[ZeekSample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def spread(self, attr: str, scale: float = 1.0, unit: str = "s", digits: int = 2) -> str:
        values = [getattr(s, attr) * scale for s in self.samples]
        return (f"{statistics.median(values):.{digits}f} {unit} "
                f"({min(values):.{digits}f}–{max(values):.{digits}f})")


@dataclass(frozen=True)
class ProfileRow:
    function: str
    location: str
    kind: str
    calls: int
    self_cpu_s: float
    total_cpu_s: float  # with what it called (functions, BiFs)


def zeek_command(zeek: str, pcap: Path, package: Path | None, profile: Path | None = None) -> list[str]:
    cmd = [zeek]
    if profile is not None:
        cmd.append(f"--profile-scripts={profile}")
    cmd += ["-C", "-r", str(pcap.resolve()), "local"]
    if package is not None:
        cmd.append(str(package.resolve()))
    return cmd


def count_rows(conn_log: Path) -> tuple[int, int]:
    """(conn.log rows, rows with an nk_range set) of a TSV conn.log."""
    rows = tagged = 0
    column = None
    if not conn_log.is_file():
        return 0, 0
    with conn_log.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("#fields"):
                fields = line.rstrip("\n").split("\t")[1:]
                column = fields.index("nk_range") if "nk_range" in fields else None
            elif not line.startswith("#"):
                rows += 1
                if column is not None:
                    value = line.rstrip("\n").split("\t")[column]
                    tagged += value not in ("-", "(empty)", "")
    return rows, tagged


def run_once(command: Sequence[str], work: Path) -> ZeekSample:
    """One Zeek run in a fresh directory under ``work``; exit code 0 or ZeekCostError."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zeek-run-", dir=work) as tmp:
        report = Path(tmp) / "time.txt"
        logs = Path(tmp) / "logs"
        logs.mkdir()
        started = time.perf_counter()
        done = subprocess.run([TIME, "-v", "-o", str(report), *command], cwd=logs, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        text = report.read_text()
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise ZeekCostError(f"{' '.join(command)} exited {done.returncode}: {said[:300]}")
        rss, user, system = RSS_RE.search(text), USER_RE.search(text), SYSTEM_RE.search(text)
        if not (rss and user and system):
            raise ZeekCostError(f"{TIME} -v gave no CPU time or peak RSS for {' '.join(command)}")
        rows, tagged = count_rows(logs / "conn.log")
        return ZeekSample(wall, float(user.group(1)) + float(system.group(1)), int(rss.group(1)), rows, tagged)


def interleave(commands: Mapping[str, list[str]], runs: int, work: Path) -> dict[str, ZeekSeries]:
    """One warm-up of each command, then ``runs`` rounds running each once, in turn."""
    series = {label: ZeekSeries(label, cmd) for label, cmd in commands.items()}
    for label, cmd in commands.items():
        run_once(cmd, work / label)
    for _ in range(runs):
        for label, cmd in commands.items():
            series[label].samples.append(run_once(cmd, work / label))
    return series


def read_profile(path: Path) -> list[ProfileRow]:
    """The rows of a ``--profile-scripts`` file (Zeek 7: function, location, type, ncall, tot_CPU, child_CPU, ...)."""
    rows: list[ProfileRow] = []
    fields: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if line.startswith("#") or not fields:
            continue
        value = dict(zip(fields, line.split("\t"), strict=False))
        # The summary lines at the end (the total, time outside scripts, and one line per
        # function or event summing all its bodies, "N-locations") would count time twice.
        if value.get("type") == "TOTAL" or AGGREGATE_RE.match(value.get("location", "")):
            continue
        try:
            calls = int(value["ncall"])
            total, child = float(value["tot_CPU"]), float(value["child_CPU"])
        except (KeyError, ValueError):
            continue
        rows.append(ProfileRow(value["function"], value.get("location", ""), value.get("type", ""), calls,
                               total - child, total))
    return rows


def package_profile(zeek: str, pcap: Path, package: Path, work: Path, top: int = 8) -> dict:
    """One ``--profile-scripts`` run: the package's script bodies by their own CPU time."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zeek-prof-", dir=work) as tmp:
        out = Path(tmp) / "zprof.log"
        done = subprocess.run(zeek_command(zeek, pcap, package, out), cwd=tmp, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise ZeekCostError(f"zeek --profile-scripts exited {done.returncode}: {said[:300]}")
        rows = read_profile(out)
        shutil.copy(out, work / "zprof.log")
    root = str(package.resolve())
    scripts = [r for r in rows if r.kind != "BiF" and r.location != "<no-location>"]
    ours = [r for r in scripts if r.location.startswith(root)]
    # The package's event handlers and hooks are where Zeek enters it, so their totals hold
    # everything it costs in script land, the functions and BiFs they call included.
    entries = [r for r in ours if r.kind in ("event", "hook")]
    return {
        "script_cpu_s": round(sum(r.self_cpu_s for r in scripts), 3),
        "package_cpu_s": round(sum(r.total_cpu_s for r in entries), 3),
        "top": [{**asdict(r), "location": r.location.removeprefix(root + "/"), "self_cpu_s": round(r.self_cpu_s, 3),
                 "total_cpu_s": round(r.total_cpu_s, 3)}
                for r in sorted(entries, key=lambda r: r.total_cpu_s, reverse=True)[:top]],
    }


def parse_package(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or label == STOCK:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=DIR (LABEL not {STOCK!r})")
    if not (Path(path) / "__load__.zeek").is_file():
        raise argparse.ArgumentTypeError(f"{path}: not a Zeek package (no __load__.zeek)")
    return label, Path(path)


# Everything Zeek does for the packets runs below this function (packet analysis, events,
# scripts, log writes); parsing and loading the scripts at start-up does not.
RUN_LOOP = "zeek::run_state::detail::run_loop"


def run_loop_instructions(zeek: str, pcap: Path, package: Path | None, work: Path) -> int:
    """Instructions Zeek spends in its run loop over ``pcap`` (callgrind): unlike CPU time, the
    same whatever else the machine runs, so one run of each command is enough."""
    try:
        callgrind.require_tools("B7")
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="zeek-callgrind-", dir=work) as tmp:
            logs = Path(tmp) / "logs"
            logs.mkdir()
            return callgrind.inclusive_instructions(zeek_command(zeek, pcap, package), RUN_LOOP,
                                                    Path(tmp) / "callgrind.out", cwd=logs)
    except callgrind.CallgrindError as exc:
        raise ZeekCostError(str(exc)) from exc


def instruction_ratios(zeek: str, pcap: Path, packages: Mapping[str, Path], work: Path) -> dict:
    """Run-loop instructions of stock and each package on ``pcap``, two at a time."""
    from concurrent.futures import ThreadPoolExecutor

    labels = [STOCK, *packages]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(labels, pool.map(
            lambda label: run_loop_instructions(zeek, pcap, packages.get(label), work / f"callgrind-{label}"),
            labels), strict=True))
    return {"instructions": counts,
            "ratios": {label: counts[STOCK] / counts[label] for label in packages}}


def measure_packages(zeek: str, pcap: Path, packages: Mapping[str, Path], runs: int, work: Path,
                     profile: bool = False) -> dict:
    """Everything B7 reports, as plain data: per-command series and, per package, its ratios."""
    commands = {STOCK: zeek_command(zeek, pcap, None)}
    commands.update({label: zeek_command(zeek, pcap, path) for label, path in packages.items()})
    series = interleave(commands, runs, work)
    stock = series[STOCK]
    result: dict = {"runs": runs, "series": {label: asdict(s) for label, s in series.items()}, "packages": {}}
    for label, path in packages.items():
        subject = series[label]
        entry = {
            "path": str(path),
            "cpu_ratio": stock.median("cpu_s") / subject.median("cpu_s"),
            "wall_ratio": stock.median("wall_s") / subject.median("wall_s"),
            "rss_ratio": subject.median("peak_rss_kb") / stock.median("peak_rss_kb"),
            "fastest_cpu_ratio": min(s.cpu_s for s in stock.samples) / min(s.cpu_s for s in subject.samples),
            "tagged_rows": subject.samples[-1].tagged_rows,
        }
        if profile:
            entry["profile"] = package_profile(zeek, pcap, path, work / f"profile-{label}")
        result["packages"][label] = entry
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zeek_cost.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pcap", type=Path, required=True)
    parser.add_argument("--package", type=parse_package, action="append", required=True,
                        help="LABEL=DIR of a generated Zeek package; repeat to compare several")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "zeek-cost")
    parser.add_argument("--profile", action="store_true", help="add one --profile-scripts run per package")
    parser.add_argument("--zeek", default=shutil.which("zeek"), help="the zeek binary (default: zeek on PATH)")
    args = parser.parse_args(argv)
    if not args.zeek:
        print("zeek_cost.py: zeek is not installed (or not on PATH)", file=sys.stderr)
        return 2
    try:
        result = measure_packages(args.zeek, args.pcap, dict(args.package), args.runs, args.work, args.profile)
    except ZeekCostError as exc:
        print(f"zeek_cost.py: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
