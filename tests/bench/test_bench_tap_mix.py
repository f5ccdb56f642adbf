"""The tap-mix builder (bench/tap_mix.py) writes a valid, deterministic capture whose copies never repeat a session.

A smoke test on a tiny mix from three public Zeek traces kept in tests/bench/fixtures/; the
benchmark itself reads all of ../shared/data/zeek-traces at run time.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import struct
import sys
from collections import Counter
from pathlib import Path

import pytest

from sensor_plugins.inputs.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[2]
TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
TRACE_FRAMES = 10 + 14 + 23  # tracker.pcap, get.pcap, tls1_1.pcap: all IPv4
TRACKER_BAD_IP_SUMS = 10  # tracker.pcap's IP header checksums do not verify as captured


def load_tap_mix():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("tap_mix", ROOT / "bench" / "tap_mix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


tap_mix = load_tap_mix()


def frames(pcap: Path) -> list[tuple[int, bytes]]:
    data = pcap.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, offset = [], 24
    while offset < len(data):
        sec, usec, caplen, length = struct.unpack_from("<IIII", data, offset)
        assert caplen == length
        out.append((sec * 1_000_000 + usec, data[offset + 16:offset + 16 + caplen]))
        offset += 16 + caplen
    return out


def ip_header_ok(frame: bytes) -> bool:
    header = frame[14:14 + (frame[14] & 0x0F) * 4]
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tap") / "tap.pcap"
    tap_mix.write_tap_mix(out, 3_000, 0.15, TRACES)
    return out, json.loads(tap_mix.manifest_path(out).read_text())


def test_mix_has_the_packets_and_share_asked_for(mix: tuple[Path, dict]) -> None:
    pcap, manifest = mix
    records = frames(pcap)
    assert len(records) == manifest["packets"] >= 3_000
    assert manifest["background_packets"] == manifest["rounds"] * TRACE_FRAMES
    assert manifest["scenario_packets"] == len(records) - manifest["background_packets"]
    # The share is met to within one scenario copy.
    copy_len = manifest["scenario_packets"] // manifest["scenario_copies"]
    assert abs(manifest["scenario_packets"] - 0.15 * len(records)) <= copy_len
    assert [ts for ts, _ in records] == sorted(ts for ts, _ in records)


def test_mix_is_deterministic(mix: tuple[Path, dict], tmp_path: Path) -> None:
    pcap, _ = mix
    again = tmp_path / "again.pcap"
    tap_mix.write_tap_mix(again, 3_000, 0.15, TRACES)
    assert again.read_bytes() == pcap.read_bytes()


def test_no_tcp_session_repeats(mix: tuple[Path, dict]) -> None:
    """Zeek 7.0.11 crashed on a mix replaying identical sessions: every copy's SYNs name new endpoints."""
    pcap, manifest = mix
    syns = Counter()
    for _, frame in frames(pcap):
        ihl = (frame[14] & 0x0F) * 4
        if frame[12:14] == b"\x08\x00" and frame[23] == 6 and frame[14 + ihl + 13] & 0x12 == 0x02:
            tcp = frame[14 + ihl:14 + ihl + 4]
            syns[(frame[26:30], frame[30:34], tcp)] += 1
    # get.pcap and tls1_1.pcap each open one connection with one SYN, tracker.pcap one too.
    background_syns = 3 * manifest["rounds"]
    assert sum(syns.values()) >= background_syns
    assert max(syns.values()) == 1


def test_checksums_that_were_valid_stay_valid(mix: tuple[Path, dict]) -> None:
    pcap, manifest = mix
    bad = sum(not ip_header_ok(frame) for _, frame in frames(pcap) if frame[12:14] == b"\x08\x00")
    assert bad == TRACKER_BAD_IP_SUMS * manifest["rounds"]


def test_background_addresses_avoid_the_catalogue_and_stay_distinct() -> None:
    catalogue = load_catalogue()
    step_inverse = pow(tap_mix.ADDRESS_STEP, -1, 65536)
    start = ipaddress.IPv4Address("175.45.0.10").packed
    # The copy whose plain step would land exactly on 175.45.176.10, inside kp-star-jv.
    copy = ((176 * 256 + 10) - 10) * step_inverse % 65536
    others = {bytes((175, 45, 0, n)) for n in range(11, 60)}
    moves = tap_mix.background_moves({start, *others}, copy, frozenset(), catalogue)
    assert moves[start] != bytes((175, 45, 176, 10))
    assert all(catalogue.lookup(str(ipaddress.IPv4Address(new))) is None for new in moves.values())
    assert all(new[3] not in (0, 255) for new in moves.values())
    assert len(set(moves.values())) == len(moves)
    # Multicast and broadcast keep their meaning.
    assert tap_mix.background_moves({b"\xff\xff\xff\xff", b"\xe0\x00\x00\xfb"}, 3, frozenset(), catalogue) == {}


def test_missing_traces_are_said_aloud(tmp_path: Path) -> None:
    with pytest.raises(tap_mix.TapMixError, match="no such directory"):
        tap_mix.write_tap_mix(tmp_path / "x.pcap", 1_000, 0.01, tmp_path / "absent")
    assert not (tmp_path / "x.pcap").exists()
