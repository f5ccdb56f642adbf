"""Every scenario pcap through real Suricata 7 with the generated rules: exactly these rules fire.

Expectations are rule keys (``range:kp-star-jv:to-range``), turned into sids through the
rendered sid-map. The range rules are IP-only and per packet direction, so a two-way
conversation with a range raises both of its rules.

Besides the pcaps helper's scenarios (``sensor_plugins.scenarios.pcaps.SCENARIOS``), a few
supplementary captures here reach the rules those scenarios leave alone: TLS 1.1, each
weak-cipher class, a DHT announce_peer, and a real SSLv2 handshake from Zeek's test
traces with its server moved into kp-star-jv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
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
from sensor_plugins.runners.suricata import BASE_ARGS, data_dir, find_suricata, parse_eve, render_config, replay
from sensor_plugins.scenarios import pcaps
from sensor_plugins.scenarios.bittorrent import bencode
from sensor_plugins.scenarios.bittorrent import wire as btwire
from sensor_plugins.scenarios.flows import Capture, TcpFlow, udp_datagram
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
    "tor-relay-kp-star-jv-out": STAR | {"tor:relay:to-tor", "tor:relay:from-tor"},
    "tor-exit-http-kp-star-jv-in": STAR | {"tor:exit:to-tor", "tor:exit:from-tor"},
    "tor-relay-outside": NOTHING,
    "bittorrent-peer-kp-star-jv-out": STAR | {"bittorrent:handshake"},
    # The ping raises the generic DHT rule, the get_peers its own.
    "bittorrent-dht-kp-china-netcom-out": NETCOM | {"bittorrent:dht-query", "bittorrent:dht-get-peers"},
    "bittorrent-tracker-kp-satgate-out": SATGATE | {"bittorrent:tracker-announce"},
    "bittorrent-torrent-file-kp-star-jv-out": STAR | {"bittorrent:torrent-download"},
    "bittorrent-peer-outside": NOTHING,
    "bittorrent-dht-outside": NOTHING,
    "http-ipv6-outside": NOTHING,
    # Picked up mid-stream (no SYN, no SYN-ACK): the shipped yaml turns stream.midstream on,
    # so the established-flow handshake rule and the TLS rules see what a full capture shows.
    "bittorrent-peer-midstream-kp-star-jv-out": STAR | {"bittorrent:handshake"},
    "tls10-rc4-midstream-kp-star-jv-out": STAR | {"tls:tls10", "tls:cipher-rc4"},
    "http-midstream-kp-china-netcom-in": NETCOM,
}


# -- supplementary captures ---------------------------------------------------------------


def weak_tls(name: str, version: int, cipher: int) -> Callable[[], list[Packet]]:
    # An anon suite would carry no certificate in real life; the rule reads only the JA3S.
    plan = pcaps.tls_plan(f"{name}.example.com", 0x2000 + cipher, version, cipher,
                          client_ciphers=(cipher, *LEGACY_CLIENT_CIPHERS))
    return lambda: pcaps.build_tls(name, pcaps.KP_STAR_JV_HOST, pcaps.TLS_SERVER, 443, plan)


def dht_announce_peer() -> list[Packet]:
    rng = pcaps.scenario_rng("extra-dht-announce-peer", "dht")
    query = bencode.bencode({
        "a": {"id": rng.randbytes(20), "implied_port": 1, "info_hash": pcaps.torrent().info_hash,
              "port": pcaps.BT_PORT, "token": rng.randbytes(8)},
        "q": "announce_peer", "t": b"ap", "y": "q",
    })
    capture = Capture()
    udp_datagram(capture, (pcaps.KP_SATGATE_HOST, pcaps.BT_PORT), (pcaps.DHT_NODE, 46882), query)
    udp_datagram(capture, (pcaps.DHT_NODE, 46882), (pcaps.KP_SATGATE_HOST, pcaps.BT_PORT),
                 bencode.bencode({"r": {"id": rng.randbytes(20)}, "t": b"ap", "y": "r"}))
    return capture.packets


def sslv2_into_star_jv() -> list[Packet]:
    """Zeek's real SSLv2 trace with its server (91.227.4.92) moved to a kp-star-jv host."""
    moved = {"91.227.4.92": pcaps.KP_STAR_JV_HOST}
    packets = []
    for packet in rdpcap(str(FIXTURES / "suricata" / "ssl-v2.pcap")):
        ip = packet[IP]
        ip.src, ip.dst = moved.get(ip.src, ip.src), moved.get(ip.dst, ip.dst)
        del ip.chksum, packet[TCP].chksum
        rebuilt = packet.__class__(bytes(packet))
        rebuilt.time = packet.time
        packets.append(rebuilt)
    return packets


def tor_relay_midstream() -> list[Packet]:
    """A Tor connection from kp-star-jv already open when capture starts: no SYN, no SYN-ACK."""
    return [p for p in pcaps.build_packets("tor-relay-kp-star-jv-out") if not (TCP in p and p[TCP].flags.S)]


EXTRA: dict[str, tuple[Callable[[], list[Packet]], frozenset[str]]] = {
    "extra-sslv2-kp-star-jv": (sslv2_into_star_jv, STAR | {"tls:sslv2"}),
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
    # The Tor rules look only at each side's opening packet (generate.suricata.TOR_OPENING);
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

# Rule key -> why no capture can make it fire. Empty: every generated rule is exercised.
UNEXERCISED: dict[str, str] = {}


def builder(name: str) -> Callable[[], list[Packet]]:
    return EXTRA[name][0] if name in EXTRA else (lambda: pcaps.build_packets(name))


@dataclass
class Bench:
    """Rendered rules plus a cache of what each capture fires, so no pcap is replayed twice."""

    root: Path
    keys_by_sid: dict[int, str]
    fired_cache: dict[tuple[str, bool], frozenset[str]] = field(default_factory=dict)

    @property
    def rules(self) -> Path:
        return self.root / "rules"

    def fired(self, name: str, everywhere: bool = False) -> frozenset[str]:
        if (name, everywhere) not in self.fired_cache:
            pcap = self.root / "pcaps" / f"{name}.pcap"
            if not pcap.exists():
                write_bytes_atomic(pcap, pcaps.pcap_bytes(builder(name)()))
            logs = self.root / "logs" / f"{name}-{'all' if everywhere else 'nk'}"
            alerts = replay([pcap], self.rules, logs, bittorrent_everywhere=everywhere)
            self.fired_cache[(name, everywhere)] = frozenset(
                self.keys_by_sid.get(a.sid, f"foreign sid {a.sid}") for a in alerts
            )
        return self.fired_cache[(name, everywhere)]


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


def run_with(bench: Bench, pcap: Path, label: str, *extra: str, config_dir: Path | None = None) -> list[str]:
    """Rule keys of every alert (repeats kept) of the shipped yaml over ``pcap``, with ``extra`` arguments."""
    logs = bench.root / "logs" / label
    logs.mkdir(parents=True)
    config = logs / "suricata.yaml"
    config.write_text(render_config(bench.rules, logs, config_dir=config_dir), encoding="utf-8")
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


def two_handshakes_from_one_host() -> list[Packet]:
    """Two peer-wire connections from one kp-star-jv host, a minute apart."""
    rng = pcaps.scenario_rng("extra-two-handshakes", "peer")
    capture = Capture()
    for port in (40001, 40002):
        flow = TcpFlow(capture, (pcaps.KP_STAR_JV_HOST, port), (pcaps.BT_PEER, pcaps.BT_PORT), rng).open()
        flow.send(btwire.handshake(pcaps.torrent().info_hash, btwire.peer_id(rng)))
        flow.close()
        capture.pause(60_000_000)
    return capture.packets


def test_threshold_config_lifts_the_limit_of_a_one_way_rule_but_not_of_the_bidirectional_handshake_rule(
        bench, tmp_path):
    # docs/DEPLOY.md warns sites: Suricata builds two signatures from a `<>` rule and a
    # threshold.config entry for its sid reaches only one, so the rule's own per-host
    # limit stays. The range rules are one-way: the same entry lifts theirs.
    pcap = tmp_path / "two-handshakes.pcap"
    write_bytes_atomic(pcap, pcaps.pcap_bytes(two_handshakes_from_one_host()))
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("classification.config", "reference.config"):
        shutil.copy(data_dir() / name, conf / name)
    (conf / "threshold.config").write_text("".join(
        f"threshold gen_id 1, sig_id {sid}, type limit, track by_src, count 1000, seconds 3600\n"
        for sid in bench.keys_by_sid), encoding="utf-8")
    shipped, lifted = (Counter(run_with(bench, pcap, label, config_dir=config_dir))
                       for label, config_dir in (("two-handshakes-shipped", None), ("two-handshakes-lifted", conf)))
    handshake, from_range = "bittorrent:handshake", "range:kp-star-jv:from-range"
    assert ((shipped[handshake], shipped[from_range]), (lifted[handshake], lifted[from_range])) == ((1, 1), (1, 2))


def test_every_generated_rule_is_exercised_by_a_capture_or_listed_with_a_reason(bench):
    fired = set().union(
        *(bench.fired(name) for name in [*EXPECTED, *EXTRA]),
        *(bench.fired(name, everywhere=True) for name in EVERYWHERE_EXPECTED),
    )
    generated = set(bench.keys_by_sid.values())
    assert (generated - fired - set(UNEXERCISED), set(UNEXERCISED) - generated) == (set(), set())
