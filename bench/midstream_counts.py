"""What `stream.midstream: true` changes on a tap-like capture: Suricata's own counters, on and off.

Runs Suricata over the tap mix (tap_mix.py, cached in bench/out/ as run.py caches it)
twice with the shipped yaml and the generated rules, once as shipped (midstream on) and
once with ``--set stream.midstream=false``, and prints the end-of-run totals of the
counters that show what midstream pickup adds: sessions picked up mid-stream, TCP
sessions, app-layer flows, alerts, and the stream and flow memory in use at the end.
Counts, not timings, so the load on a shared machine does not move them.

    .venv/bin/python bench/midstream_counts.py [--packets 200000] [--share 0.01]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness import OUT, ROOT, ensure_tap_mix, tap_mix_facts  # noqa: E402  (bench/ is a folder of scripts)

COUNTERS = ("tcp.midstream_pickups", "tcp.sessions", "app_layer.flow.tls", "app_layer.flow.http", "detect.alert",
            "tcp.memuse", "tcp.reassembly_memuse", "flow.memuse")
STATS_OUTPUT = ("  - stats:\n      enabled: yes\n      filename: stats.log\n      totals: yes\n      threads: no\n")


def config_with_stats(rules: Path, log_dir: Path) -> str:
    """The shipped yaml, with the stats engine and a stats.log totals output turned on."""
    from sensor_plugins.runners.suricata import render_config

    text = render_config(rules, log_dir)
    text = text.replace("stats:\n  enabled: no", "stats:\n  enabled: yes\n  interval: 1")
    return text.replace("\nlogging:", STATS_OUTPUT + "\nlogging:", 1)


def last_totals(stats_log: Path) -> dict[str, int]:
    """The last value stats.log wrote for each counter (its ``name | TM | value`` rows)."""
    totals: dict[str, int] = {}
    for line in stats_log.read_text().splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) == 3 and parts[2].isdigit():
            totals[parts[0]] = int(parts[2])
    return totals


def counters(pcap: Path, rules: Path, work: Path, midstream: bool) -> dict[str, int]:
    from sensor_plugins.runners.suricata import BASE_ARGS, find_suricata

    log_dir = work / f"midstream-{'on' if midstream else 'off'}"
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in ("eve.json", "stats.log"):
        (log_dir / name).unlink(missing_ok=True)
    config = log_dir / "suricata.yaml"
    config.write_text(config_with_stats(rules, log_dir))
    subprocess.run([find_suricata(), "-r", str(pcap), "-c", str(config), "-l", str(log_dir), *BASE_ARGS,
                    "--set", f"stream.midstream={'true' if midstream else 'false'}"], check=True, capture_output=True)
    return last_totals(log_dir / "stats.log")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000, help="tap mix size (default: B5's callgrind size)")
    parser.add_argument("--share", type=float, default=0.01, help="share of scenario packets (default 1%%)")
    args = parser.parse_args(argv)
    pcap = ensure_tap_mix(args.packets, args.share)
    rules = ROOT / "suricata_rules"
    on, off = (counters(pcap, rules, OUT / "midstream", flag) for flag in (True, False))
    print(f"Suricata over {tap_mix_facts(pcap)}; shipped yaml and {rules.name}/:")
    print(f"{'counter':<24}{'midstream on':>14}{'off':>14}")
    for name in COUNTERS:
        print(f"{name:<24}{on.get(name, 0):>14,}{off.get(name, 0):>14,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
