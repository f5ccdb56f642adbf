"""What real Zeek with our package must report for a scenario pcap, and how to run it.

The source of truth is the scenario itself (``sensor_plugins.scenarios.pcaps.SCENARIOS``):
its North Korean hosts and its traffic labels, the same facts the Suricata exact-sid
tests expect rule keys from. Here they become the ``NKSensor::*`` notices and the conn.log
tags that the Zeek package must produce, no more and no less.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sensor_plugins.runners import zeek
from sensor_plugins.scenarios import pcaps

# Traffic label -> the notices (note:reason) the package raises for it on catalogue traffic.
# Expired and self-signed are one reason in Zeek: validate-certs' status is not "ok".
# A .torrent download has no notice: files.log's mime type carries it to `analyze`.
NOTICES_FOR_LABEL: dict[str, frozenset[str]] = {
    "tls:weak-cipher": frozenset({"Weak_TLS:unsafe cipher"}),
    "tls:old-version": frozenset({"Weak_TLS:old version"}),
    "tls:weak-key": frozenset({"Weak_TLS:short key"}),
    "tls:sha1-signature": frozenset({"Weak_TLS:weak signature"}),
    "tls:expired": frozenset({"Weak_TLS:failed validation"}),
    "tls:self-signed": frozenset({"Weak_TLS:failed validation"}),
    "tor:relay": frozenset({"Tor_Traffic:relay", "Tor_Traffic:certificate"}),
    "tor:exit": frozenset({"Tor_Traffic:exit"}),
    "bittorrent:peer": frozenset({"BitTorrent:peer-wire handshake"}),
    "bittorrent:dht": frozenset({"BitTorrent:BitTorrent DHT query", "BitTorrent:BitTorrent DHT response"}),
    "bittorrent:tracker": frozenset({"BitTorrent:HTTP tracker announce"}),
    "bittorrent:torrent-file": frozenset(),
    # What a client offers is analyze's to judge from ssl.log's ja4: no notice.
    "client:weak-offer": frozenset(),
    "client:old-max-version": frozenset(),
    "client:known": frozenset(),
}


def notice_key(notice: zeek.Notice) -> str:
    """``Weak_TLS:unsafe cipher``, ``Range_Traffic:kp-star-jv``, ``Tor_Traffic:relay`` ..."""
    note = notice.note.removeprefix(zeek.NOTE_PREFIX)
    if note == "Range_Traffic":
        return f"{note}:{notice.sub.split(',', 1)[0].removeprefix('range ')}"
    if note == "Tor_Traffic":
        if "Tor-style certificate" in notice.msg:
            return f"{note}:certificate"
        return f"{note}:{notice.sub.split(',', 1)[0].removeprefix('role ')}"
    return f"{note}:{notice.sub}"


# Label families Zeek cannot see on a connection it picked up mid-stream: its SSL
# analyzer, like the BitTorrent one, returns early on a partial connection (no SYN seen),
# and the package has no fallback for TLS as it has for the peer-wire handshake. Such a
# TLS session shows in Zeek as its range alone; Suricata, with midstream on, sees it all.
BLIND_MIDSTREAM = ("tls",)


def zeek_labels(scenario: pcaps.Scenario) -> frozenset[str]:
    """The scenario's traffic labels that Zeek can report."""
    if not scenario.midstream:
        return scenario.traffic
    return frozenset(label for label in scenario.traffic if label.split(":", 1)[0] not in BLIND_MIDSTREAM)


def expected_notices(scenario: pcaps.Scenario, *, everywhere: Sequence[str] = ()) -> frozenset[str]:
    """The notices for ``scenario``; ``everywhere`` names the families widened to all hosts."""
    found: set[str] = {f"Range_Traffic:{pcaps.RANGE_OF_HOST[h]}" for h in scenario.nk_hosts}
    for label in zeek_labels(scenario):
        family = label.split(":", 1)[0]
        if scenario.nk_hosts or family in everywhere:
            found |= NOTICES_FOR_LABEL[label]
    return frozenset(found)


def expected_tag(orig: str, resp: str) -> tuple[str, str]:
    """conn.log's (nk_range, nk_side) for a connection: the originator wins when both are in."""
    if orig in pcaps.RANGE_OF_HOST:
        return pcaps.RANGE_OF_HOST[orig], "orig"
    if resp in pcaps.RANGE_OF_HOST:
        return pcaps.RANGE_OF_HOST[resp], "resp"
    return "-", "-"


def conn_tags(log_dir: Path) -> dict[str, tuple[str, str, str, str]]:
    """uid -> (orig, resp, nk_range, nk_side) for every conn.log row."""
    return {row["uid"]: (row["id.orig_h"], row["id.resp_h"], row.get("nk_range", "-"), row.get("nk_side", "-"))
            for row in zeek.read_zeek_log(log_dir / "conn.log")}


def run_scenario(name: str, package: Path, workdir: Path, redefs: Sequence[str] = ()) -> zeek.ZeekRun:
    """Write the scenario's pcap and run ``zeek -C -r`` over it with ``local`` and the package."""
    workdir.mkdir(parents=True, exist_ok=True)
    (pcap,) = pcaps.write_pcaps(workdir, [name])
    return zeek.run_pcap(pcap, package, workdir / "logs", redefs=[pcaps.trust_ca_zeek(), *redefs])


# -- a catalogue and Tor list changed while a sensor runs (the live-reload tests) ---------

DATA = Path(__file__).resolve().parents[1] / "sensor_plugins" / "data"
EXIT_LIST, RELAY_LIST = DATA / "tor" / "secops-tor-exit-nodes.lst", DATA / "tor" / "secops-tor-nodes.lst"
NEW_RANGE, NEW_HOST = "46.36.200.0/24", "46.36.200.15"
NEW_EXIT = "45.95.147.201"


def changed_inputs(root: Path, drop: str | None = None) -> tuple[Path, Path, Path]:
    """The bundled catalogue less kp-satgate plus NEW_RANGE (kp-live-test), the exit list plus
    NEW_EXIT, and both lists without the address ``drop``."""
    text = (DATA / "catalogue.yaml").read_text()
    start = text.index("  - name: kp-satgate")
    end = text.find("\n  - name:", start + 1)
    text = text[:start] + (text[end + 1:] if end != -1 else "")
    text = text.rstrip("\n") + "\n" + (
        "  - name: kp-live-test\n"
        f"    cidr: {NEW_RANGE}\n"
        "    country: KP\n"
        "    owner: A range added while the sensor runs\n"
        "    source: sensor-plugins live reload test\n"
        "    confidence: low\n")
    catalogue = root / "catalogue.yaml"
    catalogue.write_text(text)

    def listed(path: Path) -> str:
        return "".join(line for line in path.read_text().splitlines(keepends=True) if line.strip() != drop)

    exits = root / EXIT_LIST.name
    exits.write_text(listed(EXIT_LIST).rstrip("\n") + f"\n{NEW_EXIT}\n")
    relays = root / RELAY_LIST.name
    relays.write_text(listed(RELAY_LIST))
    return catalogue, exits, relays
