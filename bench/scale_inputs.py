"""Catalogues and Tor lists far larger than the real ones, for the scale benchmarks (B5, B6).

    python bench/scale_inputs.py --ranges 10000 --tor 50000 --out bench/out/scale

writes ``catalogue.yaml`` (``--ranges`` non-overlapping IPv4 ranges of mixed sizes) and
``tor-exit.lst`` / ``tor-relay.lst`` (plain lists, a fifth of them exits) holding
``--tor`` addresses in all: the bundled Tor lists first, then synthetic addresses. Both
files pass the project's own loaders; they are deterministic.
"""

from __future__ import annotations

import argparse
import bisect
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from sensor_plugins.atomic import write_text_atomic
from sensor_plugins.inputs.feeds import load_tor_list

# Catalogue ranges are carved from 41.0.0.0/8 upwards, synthetic relays from 146.0.0.0/8:
# the two never meet, and neither meets the real catalogue's ranges.
RANGE_BASE = int(ipaddress.IPv4Address("41.0.0.0"))
RELAY_BASE = int(ipaddress.IPv4Address("146.0.0.0"))
PREFIXES = (24, 24, 22, 28, 24, 20, 26, 24)
FETCHED = "2024-02-27"


def catalogue_doc(count: int) -> dict:
    ranges = []
    cursor = RANGE_BASE
    for i in range(count):
        prefix = PREFIXES[i % len(PREFIXES)]
        size = 1 << (32 - prefix)
        cursor = (cursor + size - 1) // size * size  # align to the prefix
        network = ipaddress.IPv4Network((cursor, prefix))
        cursor += size * 2  # leave a gap so neighbours never merge into one block
        ranges.append({
            "name": f"bench-{i:05d}",
            "cidr": str(network),
            "country": "KP" if i % 3 else "ZZ",
            "owner": f"Benchmark owner {i}",
            "source": "bench/scale_inputs.py (synthetic)",
            "confidence": ("high", "medium", "low")[i % 3],
            "asn": 64512 + i % 1000,
        })
    return {
        "version": 1,
        "description": f"{count} synthetic ranges for the scale benchmarks",
        # Wide enough for several rules per range.
        "sid_block": [1_000_000, 1_999_999],
        "ranges": ranges,
    }


def tor_addresses(count: int, catalogue: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(exits, relays), ``count`` in all: the bundled lists' IPv4 addresses first, then synthetic
    ones; none inside ``catalogue`` (CIDRs), which the Tor loader refuses."""
    bundled = load_tor_list()
    networks = [ipaddress.IPv4Network(c) for c in catalogue]
    starts = sorted((int(n.network_address), int(n.broadcast_address)) for n in networks)
    firsts = [lo for lo, _ in starts]

    def catalogued(address: str) -> bool:
        value = int(ipaddress.IPv4Address(address))
        i = bisect.bisect_right(firsts, value) - 1
        return i >= 0 and starts[i][0] <= value <= starts[i][1]

    listed = [(a, role) for role in ("exit", "relay") for a in bundled.by_role(role)
              if ":" not in a and not catalogued(a)]
    taken = {a for a, _ in listed}
    value = RELAY_BASE
    while len(listed) < count:
        value += 7  # spread over many /24s, as real relays are
        address = str(ipaddress.IPv4Address(value))
        if address.endswith((".0", ".255")) or address in taken or catalogued(address):
            continue
        listed.append((address, "exit" if len(listed) % 5 == 0 else "relay"))
    chosen = listed[:count]
    return [a for a, r in chosen if r == "exit"], [a for a, r in chosen if r == "relay"]


def plain_list(addresses: Sequence[str], role: str) -> str:
    header = [f"# source: bench/scale_inputs.py (synthetic, {len(addresses)} addresses)",
              f"# fetched: {FETCHED}", f"# role: {role}"]
    return "\n".join([*header, *addresses]) + "\n"


def write_inputs(out: Path, ranges: int, tor: int) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"catalogue": out / "catalogue.yaml", "exit": out / "tor-exit.lst", "relay": out / "tor-relay.lst"}
    doc = catalogue_doc(ranges)
    write_text_atomic(paths["catalogue"], yaml.safe_dump(doc, sort_keys=False))
    exits, relays = tor_addresses(tor, [r["cidr"] for r in doc["ranges"]])
    write_text_atomic(paths["exit"], plain_list(exits, "exit"))
    write_text_atomic(paths["relay"], plain_list(relays, "relay"))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scale_inputs.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranges", type=int, default=10_000)
    parser.add_argument("--tor", type=int, default=50_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for kind, path in write_inputs(args.out, args.ranges, args.tor).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
