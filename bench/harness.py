"""What every figure shares: running a command under /usr/bin/time, interleaved series,
the cached log sets and tap-mix captures, and the Figure row each figure returns."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "out"
PYTHON = sys.executable
CLI = [PYTHON, "-m", "sensor_plugins"]
TIME = "/usr/bin/time"
RSS_RE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
CPU_RE = re.compile(r"(?:User|System) time \(seconds\): ([0-9.]+)")


class BenchError(Exception):
    """A benchmark that could not be measured; the message says why."""


class BenchSkipped(BenchError):
    """A figure whose engine is not installed here: one line says so, and the run goes on."""


@dataclass
class Sample:
    seconds: float
    peak_rss_kb: int
    engine_seconds: float | None = None  # what the program itself reports, when it does
    cpu_seconds: float = 0.0  # user + system: unlike wall time, waiting for a busy core is not in it


@dataclass
class Series:
    """Repeated measurements of one command."""

    label: str
    command: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def median_rss_mb(self) -> float:
        return statistics.median(s.peak_rss_kb for s in self.samples) / 1024

    def spread_s(self) -> str:
        times = [s.seconds for s in self.samples]
        return f"{self.median_s:.2f} s ({min(times):.2f}–{max(times):.2f})"

    @property
    def median_engine_s(self) -> float:
        return statistics.median(s.engine_seconds or 0.0 for s in self.samples)

    def spread_engine(self) -> str:
        times = [s.engine_seconds or 0.0 for s in self.samples]
        return f"{self.median_engine_s:.2f} s ({min(times):.2f}–{max(times):.2f})"

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(s.cpu_seconds for s in self.samples)

    def spread_cpu(self) -> str:
        times = [s.cpu_seconds for s in self.samples]
        return f"{self.median_cpu_s:.2f} s ({min(times):.2f}–{max(times):.2f})"

    def spread_rss(self) -> str:
        rss = [s.peak_rss_kb / 1024 for s in self.samples]
        return f"{self.median_rss_mb:.0f} MiB ({min(rss):.0f}–{max(rss):.0f})"


@dataclass
class Figure:
    """One row of the table."""

    name: str
    title: str
    subject: str
    baseline: str
    ratio: str
    target: str
    met: str
    notes: str = ""
    measured_at: str = ""
    table: str = ""  # a Markdown table of the figure's parts, shown under its own heading


def measure(command: Sequence[str], ok_codes: Sequence[int] = (0,), engine_re: re.Pattern[str] | None = None,
            cwd: Path = ROOT) -> Sample:
    """Run ``command`` once; its wall time and peak RSS. A failing command stops the figure.

    With ``engine_re``, the command's own report of its processing time (group 1, seconds)
    is read from its output too.
    """
    with tempfile.NamedTemporaryFile(prefix="bench-time-", suffix=".txt") as report, \
            tempfile.TemporaryFile(mode="w+") as output:
        started = time.perf_counter()
        done = subprocess.run([TIME, "-v", "-o", report.name, *command], cwd=cwd,
                              stdout=output if engine_re else subprocess.DEVNULL, stderr=output, text=True)
        seconds = time.perf_counter() - started
        text = Path(report.name).read_text()
        output.seek(0)
        said = output.read()
    # Python exits 1 on an uncaught exception, which analyze also uses for "found something".
    if done.returncode not in ok_codes or "Traceback (most recent call last)" in said:
        tail = said.strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError(f"{' '.join(command)} exited {done.returncode}: {tail[0][:300]}")
    match = RSS_RE.search(text)
    if not match:
        raise BenchError(f"{TIME} -v gave no peak RSS for {' '.join(command)}")
    engine = None
    if engine_re:
        found = engine_re.search(said)
        if not found:
            raise BenchError(f"no {engine_re.pattern!r} in the output of {' '.join(command)}")
        engine = float(found.group(1))
    cpu = sum(float(value) for value in CPU_RE.findall(text))
    return Sample(seconds, int(match.group(1)), engine, cpu)


def interleave(commands: dict[str, tuple[list[str], Sequence[int]]], runs: int,
               engine_re: re.Pattern[str] | None = None) -> dict[str, Series]:
    """One warm-up of each command, then ``runs`` rounds that run each command once, in turn."""
    series = {label: Series(label, " ".join(cmd)) for label, (cmd, _) in commands.items()}
    for cmd, ok in commands.values():
        measure(cmd, ok, engine_re)
    for _ in range(runs):
        for label, (cmd, ok) in commands.items():
            series[label].samples.append(measure(cmd, ok, engine_re))
    return series


def has_subcommand(name: str) -> bool:
    done = subprocess.run([*CLI, name, "--help"], cwd=ROOT, capture_output=True, text=True)
    return done.returncode == 0


def ensure_logs(rows: int, seed: int, days: int = 1, catalogue_share: float | None = None) -> Path:
    """Generated logs are cached under bench/out by row count, seed, days and catalogue share."""
    target = OUT / (f"logs-{rows}-s{seed}" + (f"-d{days}" if days > 1 else "")
                    + (f"-c{catalogue_share:g}" if catalogue_share is not None else ""))
    if not (target / "manifest.json").exists():
        extra = ["--catalogue-share", str(catalogue_share)] if catalogue_share is not None else []
        subprocess.run([PYTHON, str(BENCH / "make_logs.py"), "--rows", str(rows), "--out", str(target),
                        "--seed", str(seed), "--days", str(days), *extra], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return target


def analyze_command(log_dir: Path, out_dir: Path) -> list[str]:
    return [*CLI, "analyze", str(log_dir), "--format", "jsonl", "--out", str(out_dir / "findings.jsonl")]


ONE_CORE = ["taskset", "-c", "0"]


def catalogue_rows(logs: Path) -> str:
    manifest = json.loads((logs / "manifest.json").read_text())
    return f"{manifest['catalogue_conn_rows']:,} catalogue conn rows"



def ensure_tap_mix(packets: int, share: float) -> Path:
    """The tap-like capture (bench/tap_mix.py), cached under bench/out by size and share."""
    sys.path.insert(0, str(BENCH))
    import tap_mix  # bench/ is a folder of scripts, not a package

    pcap = OUT / f"tap-{packets}-p{share * 100:g}.pcap"
    if not (pcap.exists() and tap_mix.manifest_path(pcap).exists()):
        if not tap_mix.DEFAULT_TRACES.is_dir():
            raise BenchError(f"{tap_mix.DEFAULT_TRACES} is absent: the tap mix's background is the public Zeek "
                             "traces of ../shared/data (see /work/shared/data/README.md)")
        try:
            tap_mix.write_tap_mix(pcap, packets, share)
        except tap_mix.TapMixError as exc:
            raise BenchError(str(exc)) from exc
    return pcap


def tap_mix_facts(pcap: Path) -> str:
    manifest = json.loads(pcap.with_name(pcap.name + ".json").read_text())
    return (f"{manifest['packets']:,} packets ({pcap.stat().st_size / 1e6:,.0f} MB, `bench/tap_mix.py`): "
            f"{manifest['rounds']} rounds of the {manifest['traces']} public Zeek traces with new addresses "
            f"per copy, and {manifest['scenario_copies']} scenario copies that keep their catalogue hosts, "
            f"{manifest['scenario_share']:.2%} of the packets")



def pcap_packets(path: Path) -> int:
    with path.open("rb") as handle:
        handle.seek(24)
        count = 0
        while header := handle.read(16):
            handle.seek(int.from_bytes(header[8:12], "little"), os.SEEK_CUR)
            count += 1
    return count


def count_alerts(eve: Path) -> int:
    if not eve.exists():
        return 0
    with eve.open() as handle:
        return sum(1 for line in handle if '"event_type":"alert"' in line)



def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


