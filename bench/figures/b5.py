"""B5 and B5w: what nksensor.rules cost Suricata, by instructions per packet."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import callgrind
from harness import (
    BENCH,
    OUT,
    PYTHON,
    ROOT,
    BenchError,
    Figure,
    Series,
    count_alerts,
    ensure_tap_mix,
    interleave,
    met,
    pcap_packets,
    tap_mix_facts,
)

from figures.suricata import SURICATA_ELAPSED_RE, generate_command, scale_inputs, suricata_command, suricata_config

ET_OPEN = ROOT.parent / "shared" / "data" / "et-open"
ET_ANCHOR_FILES = ("tor.rules", "emerging-p2p.rules")


def et_anchor_dir(work: Path) -> Path:
    """ET Open's Tor + P2P rules (read from ../shared at run time) in a rules dir the shipped yaml can load."""
    from sensor_plugins.runners.suricata import VARS_FILE

    missing = [name for name in ET_ANCHOR_FILES if not (ET_OPEN / name).is_file()]
    if missing:
        raise BenchError(f"{ET_OPEN}: {', '.join(missing)} absent, so the ET Open anchor cannot be measured")
    target = work / "et-open"
    target.mkdir(parents=True, exist_ok=True)
    for name in ET_ANCHOR_FILES:
        shutil.copyfile(ET_OPEN / name, target / name)
    # The shipped yaml includes the NK_NETS vars file; ET's rules do not use it.
    shutil.copyfile(ROOT / "suricata_rules" / VARS_FILE, target / VARS_FILE)
    return target


def suricata_runs(pcap: Path, work: Path, configs: dict[str, tuple[Path, list[str]]],
                  runs: int) -> dict[str, Series]:
    """Suricata over ``pcap`` once per config (rules dir, rule files), interleaved; eve.json emptied first."""
    commands = {}
    for label, (rules, files) in configs.items():
        log_dir = work / f"run-{label}"
        config = suricata_config(rules, log_dir, files)
        # Suricata appends to eve.json, so start each figure from an empty one.
        (log_dir / "eve.json").unlink(missing_ok=True)
        commands[label] = (suricata_command("-r", str(pcap), "-c", str(config), "-l", str(log_dir)), (0,))
    return interleave(commands, runs, SURICATA_ELAPSED_RE)


# Everything Suricata does per packet runs below this function (decode, flow, stream,
# app-layer, detect, output); rule loading does not.
PROCESSING_FUNCTION = "TmThreadsSlotVarRun"


def suricata_instructions(pcap: Path, work: Path, configs: dict[str, tuple[Path, list[str]]],
                          extra_vars: str = "") -> dict[str, int]:
    """Instructions Suricata spends processing ``pcap``'s packets per config, counted by callgrind.

    Instruction counts do not depend on what else the machine runs, so one run of each is
    enough, and two run side by side. The count is the inclusive cost of the packet
    processing thread's loop, so rule loading and start-up are left out; Suricata reads the
    capture from a fifo, so that loading runs uninstrumented (``callgrind.Feed``).
    """
    from concurrent.futures import ThreadPoolExecutor

    def count(label: str) -> int:
        rules, files = configs[label]
        log_dir = work / f"callgrind-{label}"
        config = suricata_config(rules, log_dir, files, extra_vars)
        (log_dir / "eve.json").unlink(missing_ok=True)
        feed = callgrind.Feed(pcap, log_dir / "capture.fifo")
        command = suricata_command("-r", str(feed.fifo), "-c", str(config), "-l", str(log_dir))
        return callgrind.inclusive_instructions(command, PROCESSING_FUNCTION, log_dir / "callgrind.out", ROOT,
                                                label=f"suricata ({label})", feed=feed)

    try:
        callgrind.require_tools("B5")
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(zip(configs, pool.map(count, configs), strict=True))
    except callgrind.CallgrindError as exc:
        raise BenchError(str(exc)) from exc


@dataclass
class RuleCost:
    """One Suricata capture measured with no rules, the project's rules, the ET anchor and the full set."""

    packets: int
    instructions: dict[str, int]  # callgrind, on the instruction-count capture
    cg_packets: int
    series: dict[str, Series]  # Suricata's 'time elapsed', interleaved runs on the timing capture

    def ratio(self, label: str) -> float:
        return self.instructions["none"] / self.instructions[label]

    def elapsed_ratio(self, label: str) -> float:
        return self.series["none"].median_engine_s / self.series[label].median_engine_s

    def per_packet(self, label: str) -> str:
        return f"{self.instructions[label] / self.cg_packets:,.0f} instructions/packet"

    def alerts(self, work: Path, label: str, runs: int) -> int:
        return count_alerts(work / f"run-{label}" / "eve.json") // (runs + 1)  # every run appended


def rule_cost(pcap: Path, cg_pcap: Path, work: Path, rules: Path, runs: int) -> RuleCost:
    from sensor_plugins.runners.suricata import BITTORRENT_ALL_RULES, MAIN_RULES

    configs = {
        "none": (rules, []),
        "nksensor": (rules, [MAIN_RULES]),
        "et": (et_anchor_dir(work), list(ET_ANCHOR_FILES)),
        "full": (rules, [MAIN_RULES, BITTORRENT_ALL_RULES]),
    }
    instructions = suricata_instructions(cg_pcap, work, configs)
    series = suricata_runs(pcap, work, configs, runs)
    return RuleCost(pcap_packets(pcap), instructions, pcap_packets(cg_pcap), series)


def rule_cost_notes(cost: RuleCost, work: Path, runs: int) -> str:
    from sensor_plugins.runners.suricata import BITTORRENT_ALL_RULES, MAIN_RULES

    s = cost.series
    return (
        f"Ratios are instructions in Suricata's packet processing (`valgrind --tool=callgrind`, inclusive cost "
        f"of {PROCESSING_FUNCTION}, so rule loading is left out) on {cost.cg_packets:,} packets: none "
        f"{cost.per_packet('none')}, {MAIN_RULES} {cost.per_packet('nksensor')}, ET "
        f"{cost.per_packet('et')}, with {BITTORRENT_ALL_RULES} {cost.per_packet('full')} "
        f"({cost.ratio('full'):.3f}). Suricata's own 'time elapsed' (`-k none --runmode single`, {runs} "
        f"alternating runs after a warm-up, {cost.packets:,} packets) gives {cost.elapsed_ratio('nksensor'):.2f} "
        f"for {MAIN_RULES} and {cost.elapsed_ratio('et'):.2f} for ET; none {s['none'].spread_engine()}, "
        f"{MAIN_RULES} {s['nksensor'].spread_engine()}, ET {s['et'].spread_engine()}, full "
        f"{s['full'].spread_engine()}: the spread shows how noisy the shared machine was. Alerts per timed run: "
        f"{MAIN_RULES} {cost.alerts(work, 'nksensor', runs):,}, ET {cost.alerts(work, 'et', runs):,}, full "
        f"{cost.alerts(work, 'full', runs):,}."
    )


# Rules that are not IP-only switch on Suricata's per-packet detection for their protocol,
# whatever their addresses: these two stand for the least any such rule can cost.
FLOOR_RULES = {
    "tcp": 'alert tcp $NK_NETS any -> any any (msg:"NKSENSOR BENCH floor"; flags:S; '
           'classtype:misc-activity; sid:1659998; rev:1;)',
    "tls": 'alert tls any any <> $NK_NETS any (msg:"NKSENSOR BENCH floor"; flow:established,to_client; '
           'tls.cert_subject; content:"nksensor-bench-floor"; classtype:misc-activity; sid:1659999; rev:1;)',
}


def rule_breakdown(cg_pcap: Path, work: Path, rules: Path) -> dict[str, int]:
    """Instructions (callgrind) for parts of nksensor.rules, the floor rules, and ET + ours.

    Groups are read from sid-map.json's keys (``range:``, ``tls:``, ``tor:``, ``bittorrent:``),
    each measured beside the range rules, which are IP-only and cost almost nothing.
    """
    from sensor_plugins.runners.suricata import MAIN_RULES

    sid_map = json.loads((rules / "sid-map.json").read_text())["rules"]
    group_of = {str(v["sid"]): key.split(":")[0] for key, v in sid_map.items()}
    lines = [x for x in (rules / MAIN_RULES).read_text().splitlines() if x.startswith("alert ")]

    def group(line: str) -> str:
        found = re.search(r"\bsid:(\d+);", line)
        return group_of.get(found.group(1), "?") if found else "?"

    ranges = [x for x in lines if group(x) == "range"]
    bodies = {"ranges": ranges, **{f"ranges + {g}": ranges + [x for x in lines if group(x) == g]
                                   for g in ("tls", "tor", "bittorrent")},
              **{f"ranges + one {p} rule": [*ranges, rule] for p, rule in FLOOR_RULES.items()}}
    configs: dict[str, tuple[Path, list[str]]] = {}
    for label, body in bodies.items():
        target = work / "breakdown" / re.sub(r"[^a-z0-9]+", "-", label)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(rules, target)
        (target / MAIN_RULES).write_text("\n".join(body) + "\n")
        configs[label] = (target, [MAIN_RULES])
    both = work / "breakdown" / "et-and-nksensor"
    shutil.rmtree(both, ignore_errors=True)
    shutil.copytree(rules, both)
    for name in ET_ANCHOR_FILES:
        shutil.copyfile(et_anchor_dir(work) / name, both / name)
    configs["ET + nksensor"] = (both, [*ET_ANCHOR_FILES, MAIN_RULES])
    return suricata_instructions(cg_pcap, work / "breakdown", configs)


def breakdown_notes(cost: RuleCost, parts: dict[str, int]) -> str:
    none = cost.instructions["none"]
    shares = ", ".join(f"{label} {none / count:.3f}" for label, count in parts.items() if label != "ET + nksensor")
    floor_tcp, floor_tls = none / parts["ranges + one tcp rule"], none / parts["ranges + one tls rule"]
    families = {g: none / parts[f"ranges + {g}"] for g in ("tls", "tor", "bittorrent")}
    marginal = cost.instructions["et"] / parts["ET + nksensor"]
    over = [g for g, ratio in families.items() if ratio >= 0.95]
    verdict = (
        f"and no family of detections stays at 0.95 even alone beside the range rules "
        f"({', '.join(f'{g} {r:.3f}' for g, r in families.items())}): only the IP-only range rules meet it"
        if not over else f"and {', '.join(over)} alone beside the range rules stay at 0.95 or above"
    )
    return (
        f" Where the cost lies (callgrind, same capture, ratio to no rules): {shares}. The range rules are IP-only "
        f"(checked once per flow); any other rule, even one that can never match outside NK_NETS, makes Suricata "
        f"run its per-packet detection for that protocol on all traffic, since it groups rules by protocol and "
        f"port, not by address: one TCP rule alone keeps {floor_tcp:.3f}, one TLS rule {floor_tls:.3f}, "
        f"{verdict}. On a sensor that already runs other rules, part of that cost is paid already: adding "
        f"nksensor.rules to ET Open's Tor + P2P rules keeps {marginal:.3f} of their throughput."
    )


def figure_b5(args: argparse.Namespace) -> list[Figure]:
    """B5a (B5 until the ET Open figure): nksensor.rules against no rules on the tap mix, ET Open's Tor + P2P
    rules as the anchor, and which rule families cost what."""
    from sensor_plugins.runners.suricata import MAIN_RULES

    work = OUT / "b5-tap"
    pcap = ensure_tap_mix(args.tap_packets, args.tap_share)
    cg_pcap = ensure_tap_mix(args.b5_callgrind_packets, args.tap_share)
    cost = rule_cost(pcap, cg_pcap, work, ROOT / "suricata_rules", args.runs)
    parts = rule_breakdown(cg_pcap, work, ROOT / "suricata_rules")
    ratio, et_ratio = cost.ratio("nksensor"), cost.ratio("et")
    cheaper = ratio > et_ratio
    return [Figure(
        "B5a", f"Suricata on a tap-like mix ({args.tap_share:.0%} scenario packets), {MAIN_RULES} vs no rules",
        f"{cost.per_packet('nksensor')}; elapsed {cost.series['nksensor'].spread_engine()}",
        f"{cost.per_packet('none')}; elapsed {cost.series['none'].spread_engine()}",
        f"{ratio:.3f} of the no-rule throughput (ET Open Tor + P2P anchor: {et_ratio:.3f})",
        ">= 0.95, and cheaper than the ET anchor",
        f"{met(ratio >= 0.95 and cheaper)} (>= 0.95: {met(ratio >= 0.95)}; cheaper than ET: {met(cheaper)})",
        f"Timing capture: {tap_mix_facts(pcap)}. Instruction-count capture: the same builder at "
        f"{tap_mix_facts(cg_pcap)}. Anchor: ET Open's {' + '.join(ET_ANCHOR_FILES)} from ../shared/data/et-open. "
        + rule_cost_notes(cost, work, args.runs) + breakdown_notes(cost, parts),
    )]


def figure_b5_worst(args: argparse.Namespace) -> list[Figure]:
    """The old B5, kept as the worst case: a capture made only of detection scenarios, 30% NK copies."""
    from sensor_plugins.runners.suricata import MAIN_RULES

    work = OUT / "b5"
    inputs = scale_inputs(3, args.b5_tor)
    gen = subprocess.run(generate_command(work, None, [inputs["exit"], inputs["relay"]]), cwd=ROOT,
                         capture_output=True, text=True)
    if gen.returncode != 0:
        raise BenchError(f"generate failed: {gen.stderr.strip()[-300:]}")
    pcaps = {}
    for packets in (args.pcap_packets, args.b5w_callgrind_packets):
        pcaps[packets] = OUT / f"big-{packets}.pcap"
        if not pcaps[packets].exists():
            subprocess.run([PYTHON, str(BENCH / "big_pcap.py"), "--packets", str(packets), "--out",
                            str(pcaps[packets])], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    pcap = pcaps[args.pcap_packets]
    cost = rule_cost(pcap, pcaps[args.b5w_callgrind_packets], work, work / "suricata", args.runs)
    return [Figure(
        "B5w", f"worst case: Suricata on scenarios only (30% NK copies, {args.b5_tor:,} Tor addresses), "
        f"{MAIN_RULES} vs no rules",
        f"{cost.per_packet('nksensor')}; elapsed {cost.series['nksensor'].spread_engine()}",
        f"{cost.per_packet('none')}; elapsed {cost.series['none'].spread_engine()}",
        f"{cost.ratio('nksensor'):.3f} of the no-rule throughput (ET Open Tor + P2P anchor: {cost.ratio('et'):.3f})",
        "reported (worst case, no target)", "—",
        f"{cost.packets:,} packets ({pcap.stat().st_size / 1e6:,.0f} MB) from the scenario builders only "
        f"(`bench/big_pcap.py`), 30% of copies keeping their catalogue hosts: every packet belongs to a "
        f"detection scenario, so this is a stress case, not a tap. The old B5 loaded the optional BitTorrent "
        f"file too (full below). " + rule_cost_notes(cost, work, args.runs),
    )]


