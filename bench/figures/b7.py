"""B7: what the Zeek package costs Zeek on the tap mix."""

from __future__ import annotations

import argparse
import json
import sys

from harness import (
    BENCH,
    OUT,
    ROOT,
    BenchError,
    BenchSkipped,
    Figure,
    ensure_tap_mix,
    met,
    pcap_packets,
    tap_mix_facts,
)


def figure_b7(args: argparse.Namespace) -> list[Figure]:
    """B7: Zeek `local` against `local` + the package on the tap mix: CPU time, wall time, peak RSS."""
    from sensor_plugins.runners.zeek import find_zeek, zeek_version

    zeek = find_zeek()
    if zeek is None:
        raise BenchSkipped("zeek is not installed (Zeek 7.0 LTS on PATH, or $ZEEK, measures B7)")
    sys.path.insert(0, str(BENCH))
    import zeek_cost  # bench/ is a folder of scripts, not a package

    packages = {"tree": ROOT / "zeek_scripts", **dict(args.b7_package)}
    pcap = ensure_tap_mix(args.tap_packets, args.tap_share)
    cg_pcap = ensure_tap_mix(args.b5_callgrind_packets, args.tap_share)
    try:
        result = zeek_cost.measure_packages(zeek, pcap, packages, args.runs, OUT / "b7", profile=args.b7_profile)
        result["callgrind"] = zeek_cost.instruction_ratios(zeek, cg_pcap, packages, OUT / "b7")
    except zeek_cost.ZeekCostError as exc:
        raise BenchError(str(exc)) from exc
    (OUT / "b7" / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    series = {label: zeek_cost.ZeekSeries(label, s["command"], [zeek_cost.ZeekSample(**x) for x in s["samples"]])
              for label, s in result["series"].items()}
    stock, ours = series[zeek_cost.STOCK], series["tree"]
    tree = result["packages"]["tree"]
    packets = pcap_packets(pcap)
    counted = result["callgrind"]
    cg_packets = pcap_packets(cg_pcap)
    ratio = counted["ratios"]["tree"]
    ok = ratio >= 0.95 and tree["rss_ratio"] <= 1.05
    others = "".join(
        f" Package `{label}` ({entry['path']}): {entry['cpu_ratio']:.2f} of stock throughput (CPU), "
        f"{entry['rss_ratio']:.3f}x the memory, {series[label].spread('cpu_s')} CPU."
        for label, entry in result["packages"].items() if label != "tree")
    profile = ""
    if "profile" in tree:
        top = "; ".join(f"{r['function']} ({r['location']}, {r['kind']}) {r['total_cpu_s']:.2f} s "
                        f"in {r['calls']:,} calls" for r in tree["profile"]["top"][:5])
        profile = (f" `--profile-scripts` (one extra run; the profiler inflates every figure alike): the "
                   f"package's handlers and hooks took {tree['profile']['package_cpu_s']:.2f} s with what they "
                   f"call, against {tree['profile']['script_cpu_s']:.2f} s of script time for everything Zeek "
                   f"ran; the costliest: {top}.")
    runs = len(ours.samples) + 1
    return [Figure(
        "B7", "Zeek `local` + the package (zeek_scripts/) vs `local` alone, on the tap mix",
        f"{counted['instructions']['tree'] / cg_packets:,.0f} instructions/packet; CPU {ours.spread('cpu_s')}; "
        f"RSS {ours.spread('peak_rss_kb', 1 / 1024, 'MiB', 0)}",
        f"{counted['instructions'][zeek_cost.STOCK] / cg_packets:,.0f} instructions/packet; CPU "
        f"{stock.spread('cpu_s')}; RSS {stock.spread('peak_rss_kb', 1 / 1024, 'MiB', 0)}",
        f"{ratio:.3f} of stock throughput (CPU time: {tree['cpu_ratio']:.2f}), {tree['rss_ratio']:.3f}x the memory",
        ">= 0.95 of stock throughput, <= 1.05x the memory",
        f"{met(ok)} (throughput: {met(ratio >= 0.95)}; memory: {met(tree['rss_ratio'] <= 1.05)})",
        f"Zeek {zeek_version(zeek)}, `zeek -C -r PCAP local [PACKAGE]`, every run exited 0 ({runs} runs of each, "
        f"and one of each under callgrind). Throughput is judged by instructions in Zeek's run loop "
        f"(`valgrind --tool=callgrind`, inclusive cost of zeek::run_state::detail::run_loop, so loading the "
        f"scripts is left out; the tables' first read is in) on the {tap_mix_facts(cg_pcap)}: counts do not move "
        f"with the machine's load, where CPU time on this shared machine swung by a tenth between runs of the "
        f"same tree. CPU time, memory and conn rows are from the timed runs on the {tap_mix_facts(pcap)}: CPU "
        f"time is user + system (`/usr/bin/time -v`), {packets / ours.median('cpu_s'):,.0f} pkt/s against "
        f"{packets / stock.median('cpu_s'):,.0f}. {ours.samples[-1].conn_rows:,} "
        f"conn.log rows, {tree['tagged_rows']:,} of them tagged with an nk_range by the package. Wall-time "
        f"ratio {tree['wall_ratio']:.2f}; fastest runs' CPU ratio {tree['fastest_cpu_ratio']:.2f}.{others}{profile}",
    )]


