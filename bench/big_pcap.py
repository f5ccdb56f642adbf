"""A large mixed pcap for the Suricata rule-cost benchmark (B5), from the scenario builders.

    python bench/big_pcap.py --packets 200000 --out bench/out/big.pcap

Every scenario in ``sensor_plugins.scenarios.pcaps`` is built once; the set is then repeated, each
copy with other addresses and a later start time, until the packet count is reached
(see ``copy_moves`` for how addresses vary; by default 30% of the copies keep their
catalogue hosts, like the synthetic logs). The IP and TCP/UDP checksums are patched
incrementally (RFC 1624), so the pcap is valid with checksum validation on.
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

from sensor_plugins.atomic import write_bytes_atomic
from sensor_plugins.inputs.catalogue import Catalogue, load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.scenarios.pcaps import SCENARIOS, build_packets, pcap_bytes

PCAP_HEADER_LEN = 24
RECORD = struct.Struct("<IIII")
ETHERTYPE_IPV4 = b"\x08\x00"
COPY_GAP_S = 120  # later copies start after the earlier flows have closed and timed out


def scenario_records() -> tuple[bytes, list[tuple[int, bytes]]]:
    """The pcap header and every (timestamp in µs, frame) of all scenarios, in time order."""
    packets = [p for name in SCENARIOS for p in build_packets(name)]
    data = pcap_bytes(sorted(packets, key=lambda p: float(p.time)))
    records = []
    offset = PCAP_HEADER_LEN
    while offset < len(data):
        sec, usec, caplen, _ = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        records.append((sec * 1_000_000 + usec, data[offset:offset + caplen]))
        offset += caplen
    return data[:PCAP_HEADER_LEN], records


def _fold(value: int) -> int:
    while value >> 16:
        value = (value & 0xFFFF) + (value >> 16)
    return value


def patch_checksum(checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')."""
    return ~_fold((~checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word) & 0xFFFF


def moved_frame(frame: bytes, moves: dict[bytes, bytes]) -> bytes:
    """``frame`` with its IPv4 source and destination replaced as ``moves`` says."""
    if len(frame) < 34 or frame[12:14] != ETHERTYPE_IPV4:
        return frame
    out = bytearray(frame)
    ihl = (out[14] & 0x0F) * 4
    proto = out[23]
    l4_sum = {6: 14 + ihl + 16, 17: 14 + ihl + 6}.get(proto)
    first_fragment = struct.unpack_from("!H", out, 20)[0] & 0x1FFF == 0
    for addr_at in (26, 30):
        new = moves.get(bytes(out[addr_at:addr_at + 4]))
        if new is None:
            continue
        for half in (0, 2):
            old_word = struct.unpack_from("!H", out, addr_at + half)[0]
            new_word = struct.unpack_from("!H", new, half)[0]
            ip_sum = struct.unpack_from("!H", out, 24)[0]
            struct.pack_into("!H", out, 24, patch_checksum(ip_sum, old_word, new_word))
            # The TCP/UDP checksum covers the addresses through the pseudo-header; a UDP
            # checksum of 0 means "none", and only a first fragment carries the L4 header.
            if l4_sum is not None and first_fragment and len(out) >= l4_sum + 2:
                l4_value = struct.unpack_from("!H", out, l4_sum)[0]
                if not (proto == 17 and l4_value == 0):
                    patched = patch_checksum(l4_value, old_word, new_word)
                    # UDP sends a computed 0 as 0xFFFF, since 0 would mean "no checksum".
                    struct.pack_into("!H", out, l4_sum, 0xFFFF if proto == 17 and patched == 0 else patched)
        out[addr_at:addr_at + 4] = new
    return bytes(out)


def ipv4_addresses(records: Sequence[tuple[int, bytes]]) -> set[bytes]:
    found = set()
    for _, frame in records:
        if len(frame) >= 34 and frame[12:14] == ETHERTYPE_IPV4:
            found.update((frame[26:30], frame[30:34]))
    return found


def copy_moves(addresses: set[bytes], copy: int, tor: frozenset[bytes], catalogue: Catalogue,
               catalogue_share: float) -> dict[bytes, bytes]:
    """Where each address goes in ``copy``.

    Tor relays stay (they must stay listed). Other hosts move to another last octet of
    their /24, a different one each copy. In all but ``catalogue_share`` of the copies,
    catalogue hosts move out to 198.18.0.0/15 (RFC 2544's benchmarking block), so the pcap
    mixes tagged and untagged traffic as a real tap would.
    """
    keep_catalogue = (copy % 100) < catalogue_share * 100
    moves = {}
    for addr in addresses:
        if addr in tor:
            continue
        last = (addr[3] - 1 + copy) % 254 + 1  # stays in 1..254: never .0 or .255
        if catalogue.lookup(str(ipaddress.IPv4Address(addr))) and not keep_catalogue:
            moves[addr] = bytes((198, 18 + (copy >> 8) % 2, copy % 256, addr[3]))
        else:
            moves[addr] = bytes((addr[0], addr[1], addr[2], last))
    return moves


def big_pcap(packets: int, catalogue_share: float = 0.3) -> tuple[bytes, int]:
    """The pcap bytes and the number of packets in it (at least ``packets``)."""
    header, records = scenario_records()
    tor = frozenset(ipaddress.IPv4Address(a).packed for a in load_tor_list().entries if ":" not in a)
    catalogue = load_catalogue()
    addresses = ipv4_addresses(records)
    span = records[-1][0] - records[0][0]
    step = span + COPY_GAP_S * 1_000_000
    out = [header]
    written = 0
    copy = 0
    while written < packets:
        moves = copy_moves(addresses, copy, tor, catalogue, catalogue_share)
        shift = copy * step
        for ts, frame in records:
            data = moved_frame(frame, moves)
            when = ts + shift
            out.append(RECORD.pack(when // 1_000_000, when % 1_000_000, len(data), len(data)))
            out.append(data)
        written += len(records)
        copy += 1
    return b"".join(out), written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="big_pcap.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--catalogue-share", type=float, default=0.3,
                        help="share of scenario copies that keep their catalogue hosts (default 0.3)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data, count = big_pcap(args.packets, args.catalogue_share)
    write_bytes_atomic(args.out, data)
    print(f"{args.out}: {count} packets, {len(data) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
