"""Every scenario pcap through real Suricata 7 with the generated rules: exactly these rules fire.

Expectations are rule keys (``range:kp-star-jv:to-range``), turned into sids through the
rendered sid-map. The range rules are IP-only and per packet direction, so a two-way
conversation with a range raises both of its rules. Every other rule that names an NK_NETS
host and another party comes in two, and exactly the one whose message names the right
opener fires: ``tls:sslv3`` ("... opened by NK_NETS host") when the NK_NETS host is the
client, ``tls:sslv3:to-nk`` ("... opened to NK_NETS host") when it is the server.

Besides the pcaps helper's scenarios (``sensor_plugins.scenarios.pcaps.SCENARIOS``), a few
supplementary captures here reach the rules those scenarios leave alone: TLS 1.1, each
weak-cipher class, a DHT announce_peer, a real SSLv2 handshake from Zeek's test traces
with its server (or its client) moved into kp-star-jv, and the same TLS, BitTorrent and
DHT traffic with an outside host opening the connection to an NK_NETS host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Packet
from scapy.utils import rdpcap

from sensor_plugins.atomic import write_bytes_atomic
from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import SuricataRenderer
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.runners.suricata import BASE_ARGS, Alert, find_suricata, parse_eve, render_config, replay
from sensor_plugins.scenarios import pcaps
from sensor_plugins.scenarios.bittorrent import bencode
from sensor_plugins.scenarios.flows import Capture, udp_datagram
from sensor_plugins.scenarios.tls import wire as t
from sensor_plugins.scenarios.tls.flows import LEGACY_CLIENT_CIPHERS

FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = [
    pytest.mark.suricata,
    pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed"),
]


def both(range_name: str) -> frozenset[str]:
    return frozenset({f"range:{range_name}:to-range", f"range:{range_name}:from-range"})


STAR, NETCOM, SATGATE = both("kp-star-jv"), both("kp-china-netcom"), both("kp-satgate")
NOTHING: frozenset[str] = frozenset()

# What Suricata must raise for each of the pcaps helper's scenarios with the default rules.
EXPECTED: dict[str, frozenset[str]] = {
    "http-kp-star-jv-out": STAR,
    "http-kp-star-jv-in": STAR,
    "http-kp-china-netcom-out": NETCOM,
    "http-kp-china-netcom-in": NETCOM,
    "http-kp-satgate-out": SATGATE,
    "http-kp-satgate-in": SATGATE,
    "tls10-rc4-kp-star-jv-out": STAR | {"tls:tls10", "tls:cipher-rc4"},
    "sslv3-kp-star-jv-out": STAR | {"tls:sslv3"},
    # Key size and signature hash are Zeek's to report: Suricata 7 has no keyword for either.
    "tls12-rsa1024-kp-star-jv-out": STAR,
    "tls12-sha1-cert-kp-star-jv-out": STAR,
    "tls12-expired-selfsigned-kp-star-jv-out": STAR | {"tls:cert-expired", "tls:cert-self-signed"},
    "tls12-good-kp-star-jv-out": STAR,
    "tls13-kp-star-jv-out": STAR,
    "tls10-rc4-outside": NOTHING,
    "sslv3-outside": NOTHING,
    "tls12-ipv6-outside": NOTHING,
    # The caller's SYN and the called side's SYN-ACK each raise the rule of the right opener.
    "tor-relay-kp-star-jv-out": STAR | {"tor:relay:to-tor", "tor:relay:to-tor-synack"},
    "tor-exit-http-kp-star-jv-in": STAR | {"tor:exit:from-tor", "tor:exit:from-tor-synack"},
    "tor-relay-outside": NOTHING,
    "bittorrent-peer-kp-star-jv-out": STAR | {"bittorrent:handshake"},
    # The ping raises the generic DHT rule, the get_peers its own.
    "bittorrent-dht-kp-china-netcom-out": NETCOM | {"bittorrent:dht-query", "bittorrent:dht-get-peers"},
    "bittorrent-tracker-kp-satgate-out": SATGATE | {"bittorrent:tracker-announce"},
    "bittorrent-torrent-file-kp-star-jv-out": STAR | {"bittorrent:torrent-download"},
    "bittorrent-peer-outside": NOTHING,
    "bittorrent-dht-outside": NOTHING,
    "http-ipv6-outside": NOTHING,
    # The client-fingerprint scenarios: what the client offers is analyze's to judge.
    "client-browser-kp-star-jv-out": STAR,
    "client-tor-kp-china-netcom-out": NETCOM | {"tor:relay:to-tor", "tor:relay:to-tor-synack"},
    "client-old-kp-satgate-out": SATGATE | {"tls:tls10"},
    "client-no-sni-kp-star-jv-out": STAR,
    # Picked up mid-stream (no SYN, no SYN-ACK): the shipped yaml turns stream.midstream on,
    # so the established-flow handshake rule and the TLS rules see what a full capture shows.
    "bittorrent-peer-midstream-kp-star-jv-out": STAR | {"bittorrent:handshake"},
    "tls10-rc4-midstream-kp-star-jv-out": STAR | {"tls:tls10", "tls:cipher-rc4"},
    "http-midstream-kp-china-netcom-in": NETCOM,
}


# -- supplementary captures ---------------------------------------------------------------


OUTSIDE = pcaps.NEGATIVE_CLIENT
AES_CBC = t.TLS_RSA_WITH_AES_128_CBC_SHA


def weak_tls(name: str, version: int, cipher: int, *, nk_opened: bool = True) -> Callable[[], list[Packet]]:
    # An anon suite would carry no certificate in real life; the rule reads only the JA3S.
    plan = pcaps.tls_plan(f"{name}.example.com", 0x2000 + cipher, version, cipher,
                          client_ciphers=(cipher, *LEGACY_CLIENT_CIPHERS))
    client, server = (pcaps.KP_STAR_JV_HOST, pcaps.TLS_SERVER) if nk_opened else (OUTSIDE, pcaps.KP_STAR_JV_HOST)
    return lambda: pcaps.build_tls(name, client, server, 443, plan)


def expired_self_signed_to_nk() -> list[Packet]:
    """An outside client calls a kp-star-jv server whose certificate is self-signed and expired."""
    name = "extra-expired-selfsigned-to-nk"
    plan = pcaps.tls_plan(f"{name}.example.com", 0x3004, t.TLS12, t.TLS_RSA_WITH_AES_128_GCM_SHA256,
                          expired=True, self_signed=True)
    return pcaps.build_tls(name, OUTSIDE, pcaps.KP_STAR_JV_HOST, 443, plan)


def dht_announce_peer(sender: str = pcaps.KP_SATGATE_HOST, node: str = pcaps.DHT_NODE) -> list[Packet]:
    rng = pcaps.scenario_rng("extra-dht-announce-peer", "dht")
    query = bencode.bencode({
        "a": {"id": rng.randbytes(20), "implied_port": 1, "info_hash": pcaps.torrent().info_hash,
              "port": pcaps.BT_PORT, "token": rng.randbytes(8)},
        "q": "announce_peer", "t": b"ap", "y": "q",
    })
    capture = Capture()
    udp_datagram(capture, (sender, pcaps.BT_PORT), (node, 46882), query)
    udp_datagram(capture, (node, 46882), (sender, pcaps.BT_PORT),
                 bencode.bencode({"r": {"id": rng.randbytes(20)}, "t": b"ap", "y": "r"}))
    return capture.packets


def tracker_in_satgate() -> list[Packet]:
    """An outside client announces to a tracker in kp-satgate."""
    name = "extra-tracker-to-nk"
    rng = pcaps.scenario_rng(name, "tracker")
    capture = Capture()
    pcaps.http_flow(capture, rng, OUTSIDE, (pcaps.KP_SATGATE_HOST, pcaps.TRACKER_PORT), pcaps.tracker_exchange(rng))
    return capture.packets


def http_between(name: str, client: str, server: str) -> Callable[[], list[Packet]]:
    exchange = pcaps.HttpExchange("www.example.net", f"/{name}.html", pcaps.html_page(name))
    return lambda: pcaps.build_http(name, client, server, exchange)


def sslv2_with_a_star_jv_host(end: str) -> Callable[[], list[Packet]]:
    """Zeek's real SSLv2 trace with its server (91.227.4.92) or its client moved to a kp-star-jv host."""
    def build() -> list[Packet]:
        packets = rdpcap(str(FIXTURES / "suricata" / "ssl-v2.pcap"))
        server = "91.227.4.92"
        client = next(p[IP].src for p in packets if p[IP].dst == server)
        moved = {server if end == "server" else client: pcaps.KP_STAR_JV_HOST}
        rebuilt_packets = []
        for packet in packets:
            ip = packet[IP]
            ip.src, ip.dst = moved.get(ip.src, ip.src), moved.get(ip.dst, ip.dst)
            del ip.chksum, packet[TCP].chksum
            rebuilt = packet.__class__(bytes(packet))
            rebuilt.time = packet.time
            rebuilt_packets.append(rebuilt)
        return rebuilt_packets
    return build


def tor_relay_midstream() -> list[Packet]:
    """A Tor connection from kp-star-jv already open when capture starts: no SYN, no SYN-ACK."""
    return [p for p in pcaps.build_packets("tor-relay-kp-star-jv-out") if not (TCP in p and p[TCP].flags.S)]


EXTRA: dict[str, tuple[Callable[[], list[Packet]], frozenset[str]]] = {
    "extra-sslv2-kp-star-jv": (sslv2_with_a_star_jv_host("client"), STAR | {"tls:sslv2"}),
    "extra-sslv2-to-kp-star-jv": (sslv2_with_a_star_jv_host("server"), STAR | {"tls:sslv2:to-nk"}),
    "extra-tls11-kp-star-jv": (weak_tls("extra-tls11", t.TLS11, t.TLS_RSA_WITH_AES_128_CBC_SHA),
                               STAR | {"tls:tls11"}),
    "extra-null-kp-star-jv": (weak_tls("extra-null", t.TLS12, 0x003B), STAR | {"tls:cipher-null"}),
    "extra-export-kp-star-jv": (weak_tls("extra-export", t.TLS10, 0x0003),
                                STAR | {"tls:tls10", "tls:cipher-export"}),
    "extra-anon-kp-star-jv": (weak_tls("extra-anon", t.TLS12, 0x00A6), STAR | {"tls:cipher-anon"}),
    "extra-des-kp-star-jv": (weak_tls("extra-des", t.TLS10, 0x0009), STAR | {"tls:tls10", "tls:cipher-des"}),
    "extra-3des-kp-star-jv": (weak_tls("extra-3des", t.TLS12, 0x000A), STAR | {"tls:cipher-3des"}),
    "extra-dht-announce-peer-kp-satgate": (
        # One alert per DHT query, from the most specific rule: no generic one besides.
        dht_announce_peer, SATGATE | {"bittorrent:dht-announce-peer"}),
    # The same traffic with an outside host opening the connection to the NK_NETS host.
    "extra-sslv3-to-kp-star-jv": (weak_tls("extra-sslv3-to-nk", t.SSL3, AES_CBC, nk_opened=False),
                                  STAR | {"tls:sslv3:to-nk"}),
    "extra-tls11-to-kp-star-jv": (weak_tls("extra-tls11-to-nk", t.TLS11, AES_CBC, nk_opened=False),
                                  STAR | {"tls:tls11:to-nk"}),
    "extra-null-to-kp-star-jv": (weak_tls("extra-null-to-nk", t.TLS12, 0x003B, nk_opened=False),
                                 STAR | {"tls:cipher-null:to-nk"}),
    "extra-export-to-kp-star-jv": (weak_tls("extra-export-to-nk", t.TLS10, 0x0003, nk_opened=False),
                                   STAR | {"tls:tls10:to-nk", "tls:cipher-export:to-nk"}),
    "extra-anon-to-kp-star-jv": (weak_tls("extra-anon-to-nk", t.TLS12, 0x00A6, nk_opened=False),
                                 STAR | {"tls:cipher-anon:to-nk"}),
    "extra-rc4-to-kp-star-jv": (weak_tls("extra-rc4-to-nk", t.TLS12, 0x0005, nk_opened=False),
                                STAR | {"tls:cipher-rc4:to-nk"}),
    "extra-des-to-kp-star-jv": (weak_tls("extra-des-to-nk", t.TLS12, 0x0009, nk_opened=False),
                                STAR | {"tls:cipher-des:to-nk"}),
    "extra-3des-to-kp-star-jv": (weak_tls("extra-3des-to-nk", t.TLS12, 0x000A, nk_opened=False),
                                 STAR | {"tls:cipher-3des:to-nk"}),
    "extra-expired-selfsigned-to-kp-star-jv": (
        expired_self_signed_to_nk, STAR | {"tls:cert-expired:to-nk", "tls:cert-self-signed:to-nk"}),
    "extra-bittorrent-peer-to-kp-star-jv": (
        lambda: pcaps.build_bt_peer("extra-bittorrent-peer-to-nk", pcaps.BT_PEER, pcaps.KP_STAR_JV_HOST),
        STAR | {"bittorrent:handshake:to-nk"}),
    "extra-bittorrent-dht-to-kp-china-netcom": (
        lambda: pcaps.build_bt_dht("extra-bittorrent-dht-to-nk", pcaps.DHT_NODE, pcaps.KP_CHINA_NETCOM_HOST),
        NETCOM | {"bittorrent:dht-query:to-nk", "bittorrent:dht-get-peers:to-nk"}),
    "extra-dht-announce-peer-to-kp-satgate": (
        lambda: dht_announce_peer(sender=pcaps.DHT_NODE, node=pcaps.KP_SATGATE_HOST),
        SATGATE | {"bittorrent:dht-announce-peer:to-nk"}),
    "extra-tracker-to-kp-satgate": (tracker_in_satgate, SATGATE | {"bittorrent:tracker-announce:to-nk"}),
    "extra-torrent-file-from-kp-star-jv": (
        lambda: pcaps.build_http("extra-torrent-file-from-nk", OUTSIDE, pcaps.KP_STAR_JV_HOST,
                                 pcaps.torrent_download()),
        STAR | {"bittorrent:torrent-download:to-nk"}),
    # Tor the other way round from the scenarios: the NK_NETS host calls the exit, the relay
    # calls the NK_NETS host.
    "extra-tor-exit-kp-star-jv-out": (http_between("extra-tor-exit-out", pcaps.KP_STAR_JV_HOST, pcaps.TOR_EXIT),
                                      STAR | {"tor:exit:to-tor", "tor:exit:to-tor-synack"}),
    "extra-tor-relay-to-kp-star-jv": (http_between("extra-tor-relay-in", pcaps.TOR_RELAY, pcaps.KP_STAR_JV_HOST),
                                      STAR | {"tor:relay:from-tor", "tor:relay:from-tor-synack"}),
    # The Tor rules look only at each side's opening packet (generate.suricata.TOR_PACKETS);
    # a connection picked up mid-stream is left to Zeek's conn.log and the analyzer.
    "extra-tor-relay-midstream-kp-star-jv": (tor_relay_midstream, STAR),
}

# With the optional everywhere-BitTorrent file loaded as well.
EVERYWHERE_EXPECTED: dict[str, frozenset[str]] = {
    "bittorrent-peer-kp-star-jv-out":
        EXPECTED["bittorrent-peer-kp-star-jv-out"] | {"bittorrent-all:handshake"},
    "bittorrent-tracker-kp-satgate-out":
        EXPECTED["bittorrent-tracker-kp-satgate-out"] | {"bittorrent-all:tracker-announce"},
    "bittorrent-torrent-file-kp-star-jv-out":
        EXPECTED["bittorrent-torrent-file-kp-star-jv-out"] | {"bittorrent-all:torrent-download"},
    "bittorrent-peer-outside": frozenset({"bittorrent-all:handshake"}),
    "bittorrent-dht-outside": frozenset({"bittorrent-all:dht-query", "bittorrent-all:dht-get-peers"}),
    "extra-dht-announce-peer-kp-satgate": EXTRA["extra-dht-announce-peer-kp-satgate"][1]
    | {"bittorrent-all:dht-announce-peer"},
    "http-kp-star-jv-out": STAR,
}

# The messages of everything but the range rules, for the same traffic opened from each
# side: the text names who opened the connection (or sent the query).
BY_NK, TO_NK = "opened by NK_NETS host", "opened to NK_NETS host"
TOR_RELAY, TOR_EXIT = "listed non-exit Tor relay", "Listed Tor exit"
MESSAGES: dict[str, frozenset[str]] = {
    "sslv3-kp-star-jv-out": frozenset({f"NKSENSOR TLS SSLv3 session {BY_NK}"}),
    "extra-sslv3-to-kp-star-jv": frozenset({f"NKSENSOR TLS SSLv3 session {TO_NK}"}),
    "tls12-expired-selfsigned-kp-star-jv-out": frozenset({
        f"NKSENSOR TLS Expired server certificate in session {BY_NK}",
        f"NKSENSOR TLS Self-signed server certificate in session {BY_NK}"}),
    "extra-expired-selfsigned-to-kp-star-jv": frozenset({
        f"NKSENSOR TLS Expired server certificate in session {TO_NK}",
        f"NKSENSOR TLS Self-signed server certificate in session {TO_NK}"}),
    "tor-relay-kp-star-jv-out": frozenset({
        f"NKSENSOR TOR NK_NETS host opened a connection to {TOR_RELAY} (SYN)",
        f"NKSENSOR TOR NK_NETS host opened a connection to {TOR_RELAY} (SYN-ACK)"}),
    "tor-exit-http-kp-star-jv-in": frozenset({
        f"NKSENSOR TOR {TOR_EXIT} opened a connection to NK_NETS host (SYN)",
        f"NKSENSOR TOR {TOR_EXIT} opened a connection to NK_NETS host (SYN-ACK)"}),
    "extra-tor-exit-kp-star-jv-out": frozenset({
        "NKSENSOR TOR NK_NETS host opened a connection to listed Tor exit (SYN)",
        "NKSENSOR TOR NK_NETS host opened a connection to listed Tor exit (SYN-ACK)"}),
    "extra-tor-relay-to-kp-star-jv": frozenset({
        "NKSENSOR TOR Listed non-exit Tor relay opened a connection to NK_NETS host (SYN)",
        "NKSENSOR TOR Listed non-exit Tor relay opened a connection to NK_NETS host (SYN-ACK)"}),
    "bittorrent-peer-kp-star-jv-out": frozenset({f"NKSENSOR P2P BitTorrent peer handshake in connection {BY_NK}"}),
    "extra-bittorrent-peer-to-kp-star-jv": frozenset({
        f"NKSENSOR P2P BitTorrent peer handshake in connection {TO_NK}"}),
    "bittorrent-dht-kp-china-netcom-out": frozenset({
        "NKSENSOR P2P BitTorrent DHT query other than get_peers or announce_peer sent by NK_NETS host",
        "NKSENSOR P2P BitTorrent DHT get_peers query sent by NK_NETS host"}),
    "extra-bittorrent-dht-to-kp-china-netcom": frozenset({
        "NKSENSOR P2P BitTorrent DHT query other than get_peers or announce_peer sent to NK_NETS host",
        "NKSENSOR P2P BitTorrent DHT get_peers query sent to NK_NETS host"}),
    "bittorrent-tracker-kp-satgate-out": frozenset({f"NKSENSOR P2P BitTorrent tracker announce in connection {BY_NK}"}),
    "extra-tracker-to-kp-satgate": frozenset({f"NKSENSOR P2P BitTorrent tracker announce in connection {TO_NK}"}),
    "bittorrent-torrent-file-kp-star-jv-out": frozenset({
        f"NKSENSOR P2P BitTorrent .torrent file download in connection {BY_NK}"}),
    "extra-torrent-file-from-kp-star-jv": frozenset({
        f"NKSENSOR P2P BitTorrent .torrent file download in connection {TO_NK}"}),
}

# Rule key -> why no capture can make it fire. Empty: every generated rule is exercised.
UNEXERCISED: dict[str, str] = {}


def builder(name: str) -> Callable[[], list[Packet]]:
    return EXTRA[name][0] if name in EXTRA else (lambda: pcaps.build_packets(name))


@dataclass
class Bench:
    """Rendered rules plus a cache of what each capture fires, so no pcap is replayed twice."""

    root: Path
    keys_by_sid: dict[int, str]
    alerts_cache: dict[tuple[str, bool], list[Alert]] = field(default_factory=dict)

    @property
    def rules(self) -> Path:
        return self.root / "rules"

    def alerts(self, name: str, everywhere: bool = False) -> list[Alert]:
        if (name, everywhere) not in self.alerts_cache:
            pcap = self.root / "pcaps" / f"{name}.pcap"
            if not pcap.exists():
                write_bytes_atomic(pcap, pcaps.pcap_bytes(builder(name)()))
            logs = self.root / "logs" / f"{name}-{'all' if everywhere else 'nk'}"
            self.alerts_cache[(name, everywhere)] = replay([pcap], self.rules, logs, bittorrent_everywhere=everywhere)
        return self.alerts_cache[(name, everywhere)]

    def fired(self, name: str, everywhere: bool = False) -> frozenset[str]:
        return frozenset(self.keys_by_sid.get(a.sid, f"foreign sid {a.sid}") for a in self.alerts(name, everywhere))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Bench:
    root = tmp_path_factory.mktemp("suricata-scenarios")
    content = SensorContent(load_catalogue(), load_tor_list())
    rendered = SuricataRenderer().render(content, None)
    for rel, text in rendered.files.items():
        (root / "rules").mkdir(exist_ok=True)
        (root / "rules" / rel).write_text(text, encoding="utf-8")
    sid_map = json.loads(rendered.files["sid-map.json"])["rules"]
    return Bench(root, {entry["sid"]: key for key, entry in sid_map.items()})


def test_every_pcaps_scenario_has_an_expectation_here():
    assert set(EXPECTED) == set(pcaps.SCENARIOS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_fires_exactly_the_expected_rules(bench, name):
    assert bench.fired(name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_supplementary_capture_fires_exactly_the_expected_rules(bench, name):
    assert bench.fired(name) == EXTRA[name][1]


@pytest.mark.parametrize("name", sorted(EVERYWHERE_EXPECTED))
def test_with_bittorrent_everywhere_enabled_the_capture_fires_exactly(bench, name):
    assert bench.fired(name, everywhere=True) == EVERYWHERE_EXPECTED[name]


MIDSTREAM = sorted(n for n, s in pcaps.SCENARIOS.items() if s.midstream)


def run_with(bench: Bench, pcap: Path, label: str, *extra: str) -> list[str]:
    """Rule keys of every alert (repeats kept) of the shipped yaml over ``pcap``, with ``extra`` arguments."""
    logs = bench.root / "logs" / label
    logs.mkdir(parents=True)
    config = logs / "suricata.yaml"
    config.write_text(render_config(bench.rules, logs), encoding="utf-8")
    subprocess.run([find_suricata(), "-r", str(pcap), "-c", str(config), "-l", str(logs), *BASE_ARGS, *extra],
                   check=True, capture_output=True)
    return [bench.keys_by_sid[a.sid] for a in parse_eve(logs / "eve.json", str(pcap))]


@pytest.mark.parametrize("name", MIDSTREAM)
def test_with_midstream_off_a_capture_that_starts_after_the_handshake_raises_only_the_ip_only_range_rules(
        bench, name):
    # What the shipped `stream.midstream: true` gains: Suricata's default leaves the
    # stream, and every rule that needs it, blind to a connection it did not see open.
    bench.fired(name)  # writes the pcap
    fired = set(run_with(bench, bench.root / "pcaps" / f"{name}.pcap", f"{name}-midstream-off",
                         "--set", "stream.midstream=false"))
    ranges = set().union(*(both(pcaps.RANGE_OF_HOST[h]) for h in pcaps.SCENARIOS[name].nk_hosts))
    assert fired == ranges


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_message_names_who_opened_the_connection(bench, name):
    messages = {a.msg for a in bench.alerts(name) if not bench.keys_by_sid[a.sid].startswith("range:")}
    assert messages == MESSAGES[name]


def test_every_generated_rule_is_exercised_by_a_capture_or_listed_with_a_reason(bench):
    fired = set().union(
        *(bench.fired(name) for name in [*EXPECTED, *EXTRA]),
        *(bench.fired(name, everywhere=True) for name in EVERYWHERE_EXPECTED),
    )
    generated = set(bench.keys_by_sid.values())
    assert (generated - fired - set(UNEXERCISED), set(UNEXERCISED) - generated) == (set(), set())
