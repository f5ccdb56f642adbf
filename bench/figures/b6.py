"""B6: generate at scale against suricata -T on its output."""

from __future__ import annotations

import argparse

from harness import (
    OUT,
    Figure,
    Series,
    measure,
)

from figures.suricata import generate_command, scale_inputs, suricata_command, suricata_config


def figure_b6(args: argparse.Namespace) -> list[Figure]:
    from sensor_plugins.runners.suricata import default_rule_files

    work = OUT / "b6"
    inputs = scale_inputs(args.b6_ranges, args.b6_tor)
    generate = generate_command(work, inputs["catalogue"], [inputs["exit"], inputs["relay"]])
    # suricata -T needs the generated rules, so the first generate (the warm-up) comes first.
    measure(generate)
    config = suricata_config(work / "suricata", work / "suricata-T", default_rule_files(True))
    test = suricata_command("-T", "-c", str(config), "-l", str(work / "suricata-T"))
    series = {"generate": Series("generate", " ".join(generate)), "test": Series("test", " ".join(test))}
    measure(test)
    for _ in range(args.runs):
        series["generate"].samples.append(measure(generate))
        series["test"].samples.append(measure(test))
    gen, tst = series["generate"], series["test"]
    ratio = gen.median_s / tst.median_s
    rules = sum(1 for p in (work / "suricata").glob("*.rules") for line in p.open() if line.startswith("alert"))
    return [Figure(
        "B6", f"generate (validation included), {args.b6_ranges:,} ranges and {args.b6_tor:,} Tor addresses",
        gen.spread_s(), f"suricata -T: {tst.spread_s()}", f"{ratio:.1f}x suricata -T", "report the time", "—",
        f"{rules:,} Suricata rules written; generate peak RSS {gen.spread_rss()}.",
    )]


