"""B5: what nksensor.rules cost a Suricata that already runs ET Open, and which profile is cheapest.

No production Suricata runs without rules: a tap runs ET Open's tens of thousands. So the
figure that matters to an operator is the cost of adding our rules on top of ET Open, and
beside it the ranges-only profile (``generate --profile ranges``) against no rules at all.
Every rule set runs over the same tap-mix capture under callgrind (instructions in
Suricata's packet-processing loop, one run each: the load on a shared machine cannot move
them); rule loading is timed apart with ``suricata -T`` (wall time and peak RSS).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import callgrind
from harness import (
    ROOT,
    BenchError,
    BenchSkipped,
    Figure,
    Series,
    ensure_tap_mix,
    measure,
    met,
    pcap_packets,
    tap_mix_facts,
)

from figures.b5 import PROCESSING_FUNCTION, suricata_instructions
from figures.suricata import suricata_command, suricata_config

# The address and port groups ET Open's rules name, as Suricata 7's own suricata.yaml
# defines them (HOME_NET and EXTERNAL_NET come from the project's config). Without them
# a quarter of ET Open fails to load.
ET_VARS = """\
    HTTP_SERVERS: "$HOME_NET"
    SMTP_SERVERS: "$HOME_NET"
    SQL_SERVERS: "$HOME_NET"
    DNS_SERVERS: "$HOME_NET"
    TELNET_SERVERS: "$HOME_NET"
    AIM_SERVERS: "$EXTERNAL_NET"
    DC_SERVERS: "$HOME_NET"
    DNP3_SERVER: "$HOME_NET"
    DNP3_CLIENT: "$HOME_NET"
    MODBUS_CLIENT: "$HOME_NET"
    MODBUS_SERVER: "$HOME_NET"
    ENIP_CLIENT: "$HOME_NET"
    ENIP_SERVER: "$HOME_NET"
  port-groups:
    HTTP_PORTS: "80"
    SHELLCODE_PORTS: "!80"
    ORACLE_PORTS: 1521
    SSH_PORTS: 22
    DNP3_PORTS: 20000
    MODBUS_PORTS: 502
    FILE_DATA_PORTS: "[$HTTP_PORTS,110,143]"
    FTP_PORTS: 21
    GENEVE_PORTS: 6081
    VXLAN_PORTS: 4789
    TEREDO_PORTS: 3544
"""
# Table order: cheapest first.
LABELS = {
    "none": "no rules",
    "ranges": "ranges-only profile (`generate --profile ranges`)",
    "ours": "nksensor.rules (full profile)",
    "et": "ET Open",
    "et+ranges": "ET Open + ranges-only profile",
    "et+ours": "ET Open + nksensor.rules",
}
REPEAT = "et-repeat"
LOADED_RE = re.compile(r"(\d+) rules successfully loaded, (\d+) rules failed")
ET_TARGET, RANGES_TARGET = 0.99, 0.98


@dataclass
class RuleSet:
    rules_dir: Path
    files: list[str]


@dataclass
class LoadCost:
    """``suricata -T`` over one rule set: the rules it loaded, and its timed runs (wall time, peak RSS)."""

    loaded: int
    series: Series

    def spread(self) -> str:
        return f"{self.series.spread_s()}, {self.series.spread_rss()}"


def et_rule_files(et_dir: Path) -> list[str]:
    """ET Open's rule files in ``et_dir``; a folder without any is refused."""
    if not et_dir.is_dir():
        raise BenchError(f"{et_dir}: no such directory (--et-rules names the folder of ET Open's *.rules)")
    names = sorted(p.name for p in et_dir.glob("*.rules") if p.is_file())
    if not names:
        raise BenchError(f"{et_dir}: no *.rules files (--et-rules names the folder of ET Open's *.rules)")
    return names


def combined_dir(target: Path, et_dir: Path, et_files: list[str], ours: Path) -> Path:
    """ET Open's rule files beside every file of one of our rule folders (rules, vars, lists)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in et_files:
        shutil.copyfile(et_dir / name, target / name)
    for path in ours.iterdir():
        if path.is_file():
            if (target / path.name).exists():
                raise BenchError(f"{et_dir / path.name}: ET Open holds a file named like one of ours")
            shutil.copyfile(path, target / path.name)
    return target


def ranges_profile(work: Path) -> Path:
    """The ranges-only rules, written by ``generate --profile ranges`` from the bundled inputs."""
    from harness import CLI

    target = work / "ranges"
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run([*CLI, "generate", "--profile", "ranges", "--zeek-out", str(target / "zeek"),
                           "--suricata-out", str(target / "suricata")], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise BenchError(f"generate --profile ranges failed: {said[:300]}")
    return target / "suricata"


def rule_sets(et_dir: Path, work: Path) -> dict[str, RuleSet]:
    from sensor_plugins.runners.suricata import MAIN_RULES

    ours = ROOT / "suricata_rules"
    ranges = ranges_profile(work)
    et_files = et_rule_files(et_dir)
    with_ours = combined_dir(work / "et-ours", et_dir, et_files, ours)
    with_ranges = combined_dir(work / "et-ranges", et_dir, et_files, ranges)
    return {
        "none": RuleSet(ours, []),
        "ranges": RuleSet(ranges, [MAIN_RULES]),
        "ours": RuleSet(ours, [MAIN_RULES]),
        "et": RuleSet(with_ours, et_files),
        "et+ranges": RuleSet(with_ranges, [*et_files, MAIN_RULES]),
        "et+ours": RuleSet(with_ours, [*et_files, MAIN_RULES]),
    }


def rules_loaded(label: str, rule_set: RuleSet, work: Path) -> int:
    """One ``suricata -T`` (the warm-up of the timed ones): every rule must load, none may fail."""
    log_dir = work / f"test-{label}"
    config = suricata_config(rule_set.rules_dir, log_dir, rule_set.files, ET_VARS)
    done = subprocess.run(suricata_command("-T", "-c", str(config), "-l", str(log_dir)), cwd=ROOT,
                          capture_output=True, text=True)
    said = done.stdout + done.stderr
    if done.returncode != 0:
        first = next((line for line in said.splitlines() if "rror" in line), f"exit code {done.returncode}")
        raise BenchError(f"suricata -T ({label}) failed: {first[:300]}")
    if not rule_set.files:
        return 0
    found = LOADED_RE.search(said)
    if not found:
        raise BenchError(f"suricata -T ({label}) did not say how many rules it loaded")
    loaded, failed = int(found.group(1)), int(found.group(2))
    if failed:
        raise BenchError(f"suricata -T ({label}): {failed} of {loaded + failed} rules failed to load")
    return loaded


def load_costs(sets: dict[str, RuleSet], work: Path, runs: int) -> dict[str, LoadCost]:
    """Rule loading per set: one checked ``suricata -T`` each, then ``runs`` alternating timed ones."""
    commands = {label: suricata_command("-T", "-c", str(work / f"test-{label}" / "suricata.yaml"),
                                        "-l", str(work / f"test-{label}")) for label in sets}
    costs = {label: LoadCost(rules_loaded(label, s, work), Series(label, " ".join(commands[label])))
             for label, s in sets.items()}
    for _ in range(runs):
        for label, command in commands.items():
            costs[label].series.samples.append(measure(command))
    return costs


def figure_b5_rulesets(args: argparse.Namespace) -> list[Figure]:
    if args.et_rules is None:
        raise BenchSkipped("B5 needs ET Open for Suricata 7: --et-rules DIR (make bench ET_RULES=DIR); "
                           "docs/BENCHMARKS.md says where the measured set came from")
    et_dir = args.et_rules.resolve()
    work = ROOT / "bench" / "out" / "b5-rulesets"
    pcap = ensure_tap_mix(args.b5_et_packets, args.tap_share)
    packets = pcap_packets(pcap)
    sets = rule_sets(et_dir, work)
    loads = load_costs(sets, work, args.b5_load_runs)
    configs = {label: (s.rules_dir, s.files) for label, s in sets.items()}
    # ET Open twice: the two counts show how far one run of a set moves from another
    # (Suricata's flow manager thread runs on its own clock), against the 1% to be measured.
    configs[REPEAT] = configs["et"]
    instructions = suricata_instructions(pcap, work, configs, ET_VARS)

    def per_packet(label: str) -> float:
        return instructions[label] / packets

    def ratio(subject: str, baseline: str) -> float:
        return instructions[baseline] / instructions[subject]

    on_et, ranges = ratio("et+ours", "et"), ratio("ranges", "none")
    table = [
        "| Rule set | Rules | Instructions/packet | vs no rules | vs ET Open | Load: `suricata -T` wall, peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for label, title in LABELS.items():
        versus_et = f"{ratio(label, 'et'):.3f}" if label.startswith("et") else "—"
        table.append(f"| {title} | {loads[label].loaded:,} | {per_packet(label):,.0f} | "
                     f"{ratio(label, 'none'):.3f} | {versus_et} | {loads[label].spread()} |")
    extra_load = loads["et+ours"].series.median_s - loads["et"].series.median_s
    extra_rss = loads["et+ours"].series.median_rss_mb - loads["et"].series.median_rss_mb
    where = extra_instructions(work, "et", "et+ours", packets)
    repeat = instructions[REPEAT] / instructions["et"] - 1
    notes = (
        f"ET Open: {loads['et'].loaded:,} rules from {len(sets['et'].files)} files in {et_dir} (provenance in "
        f"the B5 table's notes below), loaded with Suricata 7's default port and address groups. Capture: "
        f"{tap_mix_facts(pcap)}. Ratios are instructions in Suricata's packet processing "
        f"(`valgrind --tool=callgrind`, inclusive cost of {PROCESSING_FUNCTION}, so rule loading is left out), "
        f"one run per rule set (ET Open run twice: {per_packet(REPEAT):,.0f} instructions/packet the second time, "
        f"{repeat:+.2%}). Adding nksensor.rules to ET Open keeps {on_et:.3f} of ET Open's throughput "
        f"(ranges-only on top of ET Open: {ratio('et+ranges', 'et'):.3f}); the ranges-only profile alone keeps "
        f"{ranges:.3f} of the no-rule throughput, the full nksensor.rules {ratio('ours', 'none'):.3f}. Loading "
        f"(`suricata -T`, {args.b5_load_runs} alternating runs after a checked one): ET Open + ours takes "
        f"{extra_load:+.1f} s and {extra_rss:+,.0f} MiB against ET Open alone. {where}"
    )
    return [
        Figure("B5", "Suricata on the tap mix: ET Open + nksensor.rules vs ET Open alone",
               f"{per_packet('et+ours'):,.0f} instructions/packet; load {loads['et+ours'].spread()}",
               f"{per_packet('et'):,.0f} instructions/packet; load {loads['et'].spread()}",
               f"{on_et:.3f} of ET Open's throughput", f">= {ET_TARGET}", met(on_et >= ET_TARGET), notes,
               table="\n".join(table)),
        Figure("B5r", "Suricata on the tap mix: the ranges-only profile vs no rules",
               f"{per_packet('ranges'):,.0f} instructions/packet; load {loads['ranges'].spread()}",
               f"{per_packet('none'):,.0f} instructions/packet; load {loads['none'].spread()}",
               f"{ranges:.3f} of the no-rule throughput", f">= {RANGES_TARGET}", met(ranges >= RANGES_TARGET),
               f"Same runs as B5 (the table there). {tap_mix_facts(pcap)}."),
    ]


def extra_instructions(work: Path, baseline: str, subject: str, packets: int, top: int = 6) -> str:
    """Where ``subject`` spends more than ``baseline``: the functions whose own (exclusive)
    instructions grew most, from the two callgrind runs' outputs."""
    try:
        before = callgrind.self_costs(work / f"callgrind-{baseline}" / "callgrind.out")
        after = callgrind.self_costs(work / f"callgrind-{subject}" / "callgrind.out")
    except callgrind.CallgrindError as exc:
        return f"(No per-function breakdown: {exc}.)"
    grown = sorted(((after.get(f, 0) - before.get(f, 0), f) for f in after.keys() | before.keys()), reverse=True)
    listed = ", ".join(f"{name} {delta / packets:+,.0f}" for delta, name in grown[:top] if delta > 0)
    return (f"Where the extra instructions of {subject} over {baseline} go (callgrind, each function's own "
            f"instructions while it processes packets, per packet; a name without symbols is an address in the "
            f"stripped suricata binary): {listed}.")
