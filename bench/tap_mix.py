"""A tap-like capture for the sensor-cost figures (B5, B7): real public traffic, scenarios mixed in.

    python bench/tap_mix.py --packets 1000000 --share 0.01 --out bench/out/tap-1000000-p1.pcap

The background is every IPv4 frame of the public Zeek test traces in
``../shared/data/zeek-traces/`` (read at run time, nothing of them is copied into the
repo; ``--traces`` points elsewhere). The traces are replayed in rounds: each round plays
every trace once, a round starting every ``ROUND_GAP_US`` and each trace of a round a
little after the previous one, so many copies are open at once as on a tap. Each trace
copy gets its own addresses (``background_moves``): a sensor must never see the same TCP
session twice (a Zeek 7.0.11 build was seen to segfault on a mix that replays identical
sessions), and the rewritten addresses never land in the catalogue, a Tor list or a .0/.255
host, so the background holds no detection of its own.

Scenario traffic (``sensor_plugins.scenarios``, the same set as ``big_pcap.py``) makes up
``--share`` of the packets (default 1%), spread evenly through the capture; every
scenario copy keeps its catalogue hosts (moved inside their /24) and its Tor relays, so
that share is the NK traffic a sensor sees. IP and TCP/UDP checksums are patched
incrementally, so frames that were valid stay valid. The output is deterministic: the
same traces and arguments give the same bytes. A ``<out>.json`` manifest beside the pcap
says what went in.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import ipaddress
import json
import math
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is a folder of scripts

from big_pcap import ETHERTYPE_IPV4, RECORD, copy_moves, ipv4_addresses, moved_frame, scenario_records

from sensor_plugins.atomic import open_atomic, write_text_atomic
from sensor_plugins.inputs.catalogue import Catalogue, load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = ROOT.parent / "shared" / "data" / "zeek-traces"
START_US = 1_709_251_200 * 1_000_000  # 2024-03-01 00:00 UTC: a fixed start keeps the output deterministic
ROUND_GAP_US = 1_000_000  # a new round of every trace each second
TRACE_GAP_US = 20_000  # the traces of one round start 20 ms apart
# Moves a host's low 16 bits per copy. Odd, so copy i and copy j (i != j, both < 65536)
# never give one address the same new address, and large, so neighbours scatter.
ADDRESS_STEP = 40_503
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1), b"\xa1\xb2\xc3\xd4": (">", 1),
               b"\x4d\x3c\xb2\xa1": ("<", 1000), b"\xa1\xb2\x3c\x4d": (">", 1000)}
LINKTYPE_ETHERNET = 1

Record = tuple[int, bytes]  # (timestamp in µs, Ethernet frame)


class TapMixError(Exception):
    """The background traces are missing or unreadable; the message says which and why."""


@dataclass(frozen=True)
class Trace:
    name: str
    records: tuple[Record, ...]  # IPv4 frames only, timestamps relative to the trace's first frame
    addresses: frozenset[bytes]


@dataclass
class Manifest:
    packets: int
    background_packets: int
    scenario_packets: int
    scenario_share: float
    rounds: int
    scenario_copies: int
    traces: int
    trace_packets_per_round: int
    left_out_frames_per_round: int
    span_s: float
    traces_dir: str


def read_pcap(path: Path) -> list[Record]:
    """Every (µs timestamp, frame) of a classic pcap file with Ethernet framing."""
    data = path.read_bytes()
    if data[:4] not in PCAP_MAGICS:
        raise TapMixError(f"{path}: not a classic pcap file (pcapng is not read here)")
    order, per_us = PCAP_MAGICS[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise TapMixError(f"{path}: link type {linktype}, only Ethernet (1) is read")
    header = struct.Struct(order + "IIII")
    records, offset = [], 24
    while offset + header.size <= len(data):
        sec, frac, caplen, _ = header.unpack_from(data, offset)
        offset += header.size
        records.append((sec * 1_000_000 + frac // per_us, data[offset:offset + caplen]))
        offset += caplen
    return records


def load_traces(traces_dir: Path) -> tuple[list[Trace], int]:
    """The background traces in name order, and how many non-IPv4 frames were left out of them."""
    paths = sorted(traces_dir.rglob("*.pcap"))
    if not paths:
        raise TapMixError(f"{traces_dir}: no .pcap files (the public Zeek traces live in ../shared/data/zeek-traces)")
    traces, left_out = [], 0
    for path in paths:
        frames = read_pcap(path)
        # IPv6, ARP and STP frames (15 of wikipedia.pcap's 136) cannot be given new
        # addresses here; replayed unchanged they would repeat identical sessions.
        kept = [(ts, frame) for ts, frame in frames if len(frame) >= 34 and frame[12:14] == ETHERTYPE_IPV4]
        left_out += len(frames) - len(kept)
        if not kept:
            continue
        first = min(ts for ts, _ in kept)
        records = tuple(sorted(((ts - first, frame) for ts, frame in kept), key=lambda r: r[0]))
        traces.append(Trace(str(path.relative_to(traces_dir)), records, frozenset(ipv4_addresses(records))))
    return traces, left_out


def _fixed(addr: bytes) -> bool:
    """Addresses that keep their meaning only as they are: unspecified, multicast, broadcast."""
    return addr[0] == 0 or addr[0] >= 224


def background_moves(addresses: Iterable[bytes], copy: int, avoid: frozenset[bytes] | None,
                     catalogue: Catalogue) -> dict[bytes, bytes]:
    """New addresses for one trace copy: the same /16, the low 16 bits moved by ``copy``.

    Distinct hosts stay distinct; a new address that would be a catalogue host, a listed
    Tor relay or a .0/.255 host moves on to the next free one, so the background never
    raises a detection by accident.
    """
    moves: dict[bytes, bytes] = {}
    taken: set[bytes] = set()
    for addr in sorted(addresses):
        if _fixed(addr):
            continue
        low = (int.from_bytes(addr[2:4], "big") + copy * ADDRESS_STEP) % 65536
        while True:
            new = addr[:2] + low.to_bytes(2, "big")
            if (new[3] not in (0, 255) and new not in taken and not (avoid and new in avoid)
                    and catalogue.lookup(str(ipaddress.IPv4Address(new))) is None):
                break
            low = (low + 1) % 65536
        taken.add(new)
        moves[addr] = new
    return moves


def plan(packets: int, share: float, round_len: int, scenario_len: int) -> tuple[int, int]:
    """(rounds, scenario copies) giving at least ``packets`` with ``share`` of them from scenarios."""
    if not 0 <= share < 1:
        raise TapMixError(f"--share {share}: must be at least 0 and below 1")
    copies = math.ceil(packets * share / scenario_len) if share else 0
    rounds = max(1, math.ceil((packets - copies * scenario_len) / round_len))
    return rounds, copies


def merge_by_start(streams: Sequence[tuple[int, Callable[[], Iterable[Record]]]]) -> Iterator[Record]:
    """The records of every stream in time order, each stream built only when its start comes.

    ``streams`` are (start, build) pairs, where ``build()`` gives records no earlier than
    ``start``. Only the streams open at the current time are held in memory (heapq.merge
    would build all of them at once). Equal times keep stream order, so the output is
    deterministic.
    """
    pending = sorted(range(len(streams)), key=lambda i: streams[i][0])
    heap: list[tuple[int, int, bytes]] = []
    order = 0
    at = 0
    while at < len(pending) or heap:
        while at < len(pending) and (not heap or streams[pending[at]][0] <= heap[0][0]):
            for ts, frame in streams[pending[at]][1]():
                heapq.heappush(heap, (ts, order, frame))
                order += 1
            at += 1
        ts, _, frame = heapq.heappop(heap)
        yield ts, frame


def _round(traces: Sequence[Trace], number: int, avoid: frozenset[bytes], catalogue: Catalogue) -> list[Record]:
    start = START_US + number * ROUND_GAP_US
    merged = []
    for index, trace in enumerate(traces):
        moves = background_moves(trace.addresses, number * len(traces) + index, avoid, catalogue)
        offset = start + index * TRACE_GAP_US
        merged.extend((offset + ts, moved_frame(frame, moves)) for ts, frame in trace.records)
    return merged


def _scenario_copy(records: Sequence[Record], number: int, at_us: int, addresses: set[bytes],
                   tor: frozenset[bytes], catalogue: Catalogue) -> list[Record]:
    moves = copy_moves(addresses, number, tor, catalogue, catalogue_share=1.0)
    first = records[0][0]
    return [(at_us + ts - first, moved_frame(frame, moves)) for ts, frame in records]


def tap_mix(packets: int, share: float, traces_dir: Path) -> tuple[bytes, Iterator[Record], Manifest]:
    """The pcap header, the records in time order (lazily) and what they hold."""
    if not traces_dir.is_dir():
        raise TapMixError(f"{traces_dir}: no such directory "
                          "(the public Zeek traces live in ../shared/data/zeek-traces)")
    traces, left_out = load_traces(traces_dir)
    header, scenario = scenario_records()
    round_len = sum(len(t.records) for t in traces)
    rounds, copies = plan(packets, share, round_len, len(scenario))
    tor = frozenset(ipaddress.IPv4Address(a).packed for a in load_tor_list().entries if ":" not in a)
    catalogue = load_catalogue()
    scenario_addresses = ipv4_addresses(scenario)
    streams: list[tuple[int, Callable[[], Iterable[Record]]]] = [
        (START_US + r * ROUND_GAP_US, functools.partial(_round, traces, r, tor, catalogue)) for r in range(rounds)]
    for c in range(copies):
        # Evenly spread: copy c starts in the middle of its share of the rounds.
        at = START_US + int((c + 0.5) * rounds / copies * ROUND_GAP_US)
        streams.append((at, functools.partial(_scenario_copy, scenario, c, at, scenario_addresses, tor, catalogue)))
    scenario_span = scenario[-1][0] - scenario[0][0]
    last_trace = max(t.records[-1][0] for t in traces)
    end = max(START_US + (rounds - 1) * ROUND_GAP_US + (len(traces) - 1) * TRACE_GAP_US + last_trace,
              START_US + int((copies - 0.5) * rounds / copies * ROUND_GAP_US) + scenario_span if copies else 0)
    background, mixed = rounds * round_len, copies * len(scenario)
    manifest = Manifest(
        packets=background + mixed, background_packets=background, scenario_packets=mixed,
        scenario_share=round(mixed / (background + mixed), 5), rounds=rounds, scenario_copies=copies,
        traces=len(traces), trace_packets_per_round=round_len, left_out_frames_per_round=left_out,
        span_s=round((end - START_US) / 1e6, 3), traces_dir=str(traces_dir),
    )
    return header, merge_by_start(streams), manifest


def write_tap_mix(out: Path, packets: int, share: float, traces_dir: Path = DEFAULT_TRACES) -> Manifest:
    """Write the capture to ``out`` (atomically) and its manifest to ``out`` + ``.json``."""
    header, records, manifest = tap_mix(packets, share, traces_dir)
    with open_atomic(out) as handle:
        handle.write(header)
        for ts, frame in records:
            handle.write(RECORD.pack(ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
            handle.write(frame)
    write_text_atomic(manifest_path(out), json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def manifest_path(pcap: Path) -> Path:
    return pcap.with_name(pcap.name + ".json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tap_mix.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="at least this many packets (default 1M)")
    parser.add_argument("--share", type=float, default=0.01, help="share of packets from scenarios (default 0.01)")
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES,
                        help=f"folder of background pcaps (default {DEFAULT_TRACES})")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        manifest = write_tap_mix(args.out, args.packets, args.share, args.traces)
    except TapMixError as exc:
        print(f"tap_mix.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {manifest.packets} packets ({manifest.scenario_packets} from "
          f"{manifest.scenario_copies} scenario copies, {manifest.scenario_share:.2%}), "
          f"{manifest.rounds} rounds of {manifest.traces} traces, {manifest.span_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
