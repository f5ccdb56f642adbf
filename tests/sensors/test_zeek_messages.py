"""Real Zeek's notices say who opened the connection, and which endpoint is the NK host.

The same traffic is run through ``zeek -C -r PCAP local zeek_scripts`` opened from each
side: a scenario pcap where the catalogued host calls out, and one where it is called
(the scenarios' own, or the same builder with the hosts swapped). Each notice must read
"<originator> opened a connection to <responder>", with the catalogued endpoint named with
its range, never "X talks to Y" whatever the direction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO
from scapy.packet import Packet

from sensor_plugins.runners import zeek
from sensor_plugins.scenarios import pcaps

pytestmark = pytest.mark.zeek

PACKAGE = REPO / "zeek_scripts"
STAR = f"{pcaps.KP_STAR_JV_HOST} (catalogued range kp-star-jv, Star Joint Venture Co. Ltd. (Ryugyong-dong, Pyongyang))"
NETCOM = (f"{pcaps.KP_CHINA_NETCOM_HOST} (catalogued range kp-china-netcom, "
          "China Netcom (CNCGROUP), assigned for North Korean use)")
SATGATE = (f"{pcaps.KP_SATGATE_HOST} (catalogued range kp-satgate, "
           "Russian satellite provider, later seen as SatGate)")
OUTSIDE = pcaps.OUTSIDE_CLIENT
RELAY = pcaps.TOR_RELAY


def scenario(name: str) -> Callable[[], list[Packet]]:
    return lambda: pcaps.build_packets(name)


def http_between(name: str, client: str, server: str) -> Callable[[], list[Packet]]:
    exchange = pcaps.HttpExchange("www.example.net", f"/{name}.html", pcaps.html_page(name))
    return lambda: pcaps.build_http(name, client, server, exchange)


def weak_tls_to(name: str, client: str, server: str) -> Callable[[], list[Packet]]:
    plan = pcaps.tls_plan(f"{name}.example.com", 0x4001, pcaps.t.SSL3, pcaps.t.TLS_RSA_WITH_AES_128_CBC_SHA,
                          client_ciphers=pcaps.LEGACY_CLIENT_CIPHERS)
    return lambda: pcaps.build_tls(name, client, server, 443, plan)


# Capture -> (how to build it, the notices (note, msg) of ours it must raise, no more).
CASES: dict[str, tuple[Callable[[], list[Packet]], set[tuple[str, str]]]] = {
    "http-kp-star-jv-out": (scenario("http-kp-star-jv-out"), {
        ("Range_Traffic", f"{STAR} opened a connection to {pcaps.WEB_SERVER}")}),
    "http-kp-star-jv-in": (scenario("http-kp-star-jv-in"), {
        ("Range_Traffic", f"{OUTSIDE} opened a connection to {STAR}")}),
    "tor-exit-http-kp-star-jv-in": (scenario("tor-exit-http-kp-star-jv-in"), {
        ("Range_Traffic", f"{pcaps.TOR_EXIT} opened a connection to {STAR}"),
        ("Tor_Traffic", f"Tor exit {pcaps.TOR_EXIT} opened a connection to {STAR}")}),
    "tor-exit-kp-star-jv-out": (http_between("tor-exit-out", pcaps.KP_STAR_JV_HOST, pcaps.TOR_EXIT), {
        ("Range_Traffic", f"{STAR} opened a connection to {pcaps.TOR_EXIT}"),
        ("Tor_Traffic", f"{STAR} opened a connection to Tor exit {pcaps.TOR_EXIT}")}),
    "tor-relay-kp-star-jv-out": (scenario("tor-relay-kp-star-jv-out"), {
        ("Range_Traffic", f"{STAR} opened a connection to {RELAY}"),
        ("Tor_Traffic", f"{STAR} opened a connection to Tor relay {RELAY}"),
        ("Tor_Traffic", f"{STAR} opened a connection to a Tor relay at {RELAY} (Tor-style certificate)")}),
    "tor-relay-to-kp-star-jv": (http_between("tor-relay-in", RELAY, pcaps.KP_STAR_JV_HOST), {
        ("Range_Traffic", f"{RELAY} opened a connection to {STAR}"),
        ("Tor_Traffic", f"Tor relay {RELAY} opened a connection to {STAR}")}),
    "bittorrent-tracker-kp-satgate-out": (scenario("bittorrent-tracker-kp-satgate-out"), {
        ("Range_Traffic", f"{SATGATE} opened a connection to {pcaps.TRACKER}"),
        ("BitTorrent", f"BitTorrent tracker announce: {SATGATE} opened a connection to {pcaps.TRACKER}")}),
    "sslv3-kp-star-jv-out": (weak_tls_to("sslv3-out", pcaps.KP_STAR_JV_HOST, pcaps.TLS_SERVER), {
        ("Range_Traffic", f"{STAR} opened a connection to {pcaps.TLS_SERVER}"),
        ("Weak_TLS", f"Weak TLS, version SSLv3 is below TLSv12: {STAR} opened a connection to {pcaps.TLS_SERVER}")}),
    "sslv3-to-kp-star-jv": (weak_tls_to("sslv3-in", OUTSIDE, pcaps.KP_STAR_JV_HOST), {
        ("Range_Traffic", f"{OUTSIDE} opened a connection to {STAR}"),
        ("Weak_TLS", f"Weak TLS, version SSLv3 is below TLSv12: {OUTSIDE} opened a connection to {STAR}")}),
    "bittorrent-peer-kp-star-jv-out": (scenario("bittorrent-peer-kp-star-jv-out"), {
        ("Range_Traffic", f"{STAR} opened a connection to {pcaps.BT_PEER}")}),
    "bittorrent-peer-to-kp-star-jv": (
        lambda: pcaps.build_bt_peer("bittorrent-peer-in", pcaps.BT_PEER, pcaps.KP_STAR_JV_HOST), {
            ("Range_Traffic", f"{pcaps.BT_PEER} opened a connection to {STAR}")}),
    "bittorrent-dht-kp-china-netcom-out": (scenario("bittorrent-dht-kp-china-netcom-out"), {
        ("Range_Traffic", f"{NETCOM} opened a connection to {pcaps.DHT_NODE}"),
        ("BitTorrent", f"BitTorrent DHT query: {NETCOM} opened a connection to {pcaps.DHT_NODE}"),
        ("BitTorrent", f"BitTorrent DHT response: {NETCOM} opened a connection to {pcaps.DHT_NODE}")}),
    "bittorrent-dht-to-kp-china-netcom": (
        lambda: pcaps.build_bt_dht("bittorrent-dht-in", pcaps.DHT_NODE, pcaps.KP_CHINA_NETCOM_HOST), {
            ("Range_Traffic", f"{pcaps.DHT_NODE} opened a connection to {NETCOM}"),
            ("BitTorrent", f"BitTorrent DHT query: {pcaps.DHT_NODE} opened a connection to {NETCOM}"),
            ("BitTorrent", f"BitTorrent DHT response: {pcaps.DHT_NODE} opened a connection to {NETCOM}")}),
}
# The peer-wire notice carries the torrent's info_hash, which the expectation reads off the sample torrent.
INFO_HASH = pcaps.torrent().info_hash.hex()
CASES["bittorrent-peer-kp-star-jv-out"][1].add(
    ("BitTorrent", f"BitTorrent peer-wire handshake, info_hash {INFO_HASH}: {STAR} opened a connection to "
                   f"{pcaps.BT_PEER}"))
CASES["bittorrent-peer-to-kp-star-jv"][1].add(
    ("BitTorrent", f"BitTorrent peer-wire handshake, info_hash {INFO_HASH}: {pcaps.BT_PEER} opened a connection "
                   f"to {STAR}"))


def run(name: str, workdir: Path) -> zeek.ZeekRun:
    pcap = workdir / f"{name}.pcap"
    pcap.write_bytes(pcaps.pcap_bytes(CASES[name][0]()))
    return zeek.run_pcap(pcap, PACKAGE, workdir / "logs", redefs=[pcaps.trust_ca_zeek()])


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_notice_says_who_opened_the_connection_and_which_end_is_catalogued(tmp_path, name):
    result = run(name, tmp_path)
    notices = {(n.note.removeprefix(zeek.NOTE_PREFIX), n.msg) for n in result.notices}
    assert (result.messages, notices) == ((), CASES[name][1])
