"""Scenario pcaps: the project's ground truth, crafted with scapy and identical on every run.

Each scenario is one small capture of one thing the sensors must tag (traffic to and
from each North Korean range, weak TLS, Tor, BitTorrent) or must leave alone (the same
traffic between hosts outside every range, clean TLS, IPv6). Timestamps, ports, ISNs,
IP ids, random fields and certificates all come from fixed seeds, so the pcaps are
byte-identical between runs and machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from scapy.layers.inet import TCP
from scapy.packet import Packet

from sensor_plugins.atomic import apply_changes, digest, locked, plan_tree, read_manifest, sweep_tree
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.scenarios.bittorrent import wire as btwire
from sensor_plugins.scenarios.flows import Capture, TcpFlow, udp_datagram
from sensor_plugins.scenarios.httpwire import HttpExchange, html_page, http_request, http_response
from sensor_plugins.scenarios.tls import certs, hellos
from sensor_plugins.scenarios.tls import wire as t
from sensor_plugins.scenarios.tls.flows import (
    LEGACY_CLIENT_CIPHERS,
    MODERN_CLIENT_CIPHERS,
    TLS13_CLIENT_CIPHERS,
    TlsSession,
    tls_conversation,
)
from sensor_plugins.scenarios.tls.hellos import CustomHello

# One host inside each catalogue range.
KP_STAR_JV_HOST = "175.45.176.10"
KP_CHINA_NETCOM_HOST = "210.52.109.20"
KP_SATGATE_HOST = "77.94.35.30"
NK_HOSTS: dict[str, str] = {
    "kp-star-jv": KP_STAR_JV_HOST,
    "kp-china-netcom": KP_CHINA_NETCOM_HOST,
    "kp-satgate": KP_SATGATE_HOST,
}
RANGE_OF_HOST = {host: range_name for range_name, host in NK_HOSTS.items()}
# Outside servers and clients (TEST-NET-2 and TEST-NET-3).
WEB_SERVER = "198.51.100.80"
TLS_SERVER = "198.51.100.43"
BT_PEER = "198.51.100.60"
OUTSIDE_CLIENT = "203.0.113.50"
DHT_NODE = "203.0.113.61"
TRACKER = "203.0.113.69"
SWARM_PEER = "203.0.113.77"  # only named inside tracker and DHT replies, never contacted
# Hosts for the negative scenarios (TEST-NET-1): never in any range.
NEGATIVE_CLIENT = "192.0.2.10"
NEGATIVE_PEER = "192.0.2.20"
IPV6_CLIENT = "2001:db8:10::10"
IPV6_SERVER = "2001:db8:20::80"
# Tor addresses from the bundled SecOps-Institute lists (2024-02-27). The relay is listed
# in secops-tor-nodes.lst and not as an exit; it is also the responder of a real Tor
# handshake on port 9001 in zat's tor_ssl.log. The exit is in secops-tor-exit-nodes.lst.
TOR_RELAY = "193.11.164.243"
TOR_RELAY_PORT = 9001
TOR_EXIT = "185.220.101.1"

BT_PORT = 51413  # Transmission's default, deliberately outside 6881-6889
DHT_REMOTE_PORT = 46882
SWARM_PEER_PORT = 50321
TRACKER_PORT = 6969

CAPTURE_DATE = dt.datetime(2017, 5, 15, 3, 0, tzinfo=dt.UTC)
LEAF_VALID = (dt.datetime(2017, 1, 10, tzinfo=dt.UTC), dt.datetime(2018, 1, 10, tzinfo=dt.UTC))
EXPIRED_VALID = (dt.datetime(2015, 3, 1, tzinfo=dt.UTC), dt.datetime(2016, 3, 1, tzinfo=dt.UTC))
CA_VALID = (dt.datetime(2015, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
CA_NAME = certs.name("Sensor Plugins Test Root CA", "Sensor Plugins Test PKI", "US")
SERVER_ORG = "Example Hosting Ltd"

TLS_VERSION_NAMES = {t.SSL3: "SSLv3", t.TLS10: "TLS 1.0", t.TLS11: "TLS 1.1", t.TLS12: "TLS 1.2", t.TLS13: "TLS 1.3"}
# How each sensor spells the versions: Zeek's ssl.log ``version`` and Suricata's eve ``tls.version``.
ZEEK_VERSION_NAMES = {t.SSL3: "SSLv3", t.TLS10: "TLSv10", t.TLS11: "TLSv11", t.TLS12: "TLSv12", t.TLS13: "TLSv13"}
SURICATA_VERSION_NAMES = {t.SSL3: "SSLv3", t.TLS10: "TLSv1", t.TLS11: "TLS 1.1", t.TLS12: "TLS 1.2", t.TLS13: "TLS 1.3"}

PCAP_MAGIC_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)  # microseconds, Ethernet


@dataclass(frozen=True)
class TlsFacts:
    """What the TLS handshake of a scenario shows a sensor."""

    version: int
    cipher: int
    server_name: str | None
    certificate: certs.CertSpec | None  # the leaf; None when it travels encrypted (TLS 1.3)
    issuer: str | None = None  # RFC 4514 issuer of the leaf, as Zeek's ssl.log writes it
    self_signed: bool = False

    @property
    def version_name(self) -> str:
        return TLS_VERSION_NAMES[self.version]

    @property
    def zeek_version(self) -> str:
        return ZEEK_VERSION_NAMES[self.version]

    @property
    def suricata_version(self) -> str:
        return SURICATA_VERSION_NAMES[self.version]

    @property
    def subject(self) -> str | None:
        """RFC 4514, as Zeek's ssl.log writes it (most specific attribute first)."""
        return self.certificate.subject.rfc4514_string() if self.certificate else None


@dataclass(frozen=True)
class Scenario:
    """One pcap and what it shows.

    ``traffic`` names what a sensor can see in it, whoever the hosts are:
    ``tls:weak-cipher`` (RC4), ``tls:old-version`` (SSLv3 or TLS 1.0), ``tls:weak-key``
    (RSA < 2048 bits), ``tls:expired``, ``tls:self-signed``, ``tls:sha1-signature``,
    ``tor:relay``, ``tor:exit``, ``bittorrent:peer``, ``bittorrent:dht``,
    ``bittorrent:tracker`` and ``bittorrent:torrent-file``; and what the ClientHello
    offers: ``client:weak-offer`` (RC4, export, NULL, anonymous or DES suites),
    ``client:old-max-version`` (nothing above TLS 1.1) and ``client:known`` (a JA4 in the
    bundled known-client table).
    ``midstream`` marks a capture that starts after the TCP handshake (no SYN, no
    SYN-ACK): a connection already open when the sensor started.
    ``expect`` is what the project's content should report: ``nk:<range>`` for each
    North Korean host, plus the ``traffic`` labels, but only when a North Korean host is
    part of the traffic. ``negative`` marks a control scenario: it looks like a
    detection (weak TLS, Tor, BitTorrent, TLS at all) that must not be raised.
    """

    name: str
    description: str
    build: Callable[[], list[Packet]]
    nk_hosts: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    traffic: frozenset[str] = frozenset()
    negative: bool = False
    tls: TlsFacts | None = None
    http_uris: tuple[str, ...] = ()
    midstream: bool = False

    @property
    def expect(self) -> frozenset[str]:
        if not self.nk_hosts:
            return frozenset()
        return frozenset(f"nk:{RANGE_OF_HOST[h]}" for h in self.nk_hosts) | self.traffic


class ScenarioError(SensorPluginsError):
    """An unknown scenario name, or pcaps that cannot be written."""


def scenario_rng(name: str, purpose: str) -> random.Random:
    # str seeds go through SHA-512 in random.seed, so they are stable across runs and machines.
    return random.Random(f"sensor-plugins:{name}:{purpose}")


def ephemeral_port(rng: random.Random) -> int:
    return rng.randrange(49152, 65000)


# -- certificates ---------------------------------------------------------------------


@cache
def root_ca() -> tuple[x509.Certificate, certs.Issuer]:
    spec = certs.CertSpec(CA_NAME, 0x5E150001, *CA_VALID, key_seed="test-root-ca", is_ca=True)
    cert = certs.issue(spec)
    return cert, certs.Issuer(CA_NAME, certs.seeded_rsa_key("test-root-ca", 2048))


def leaf_spec(host: str, serial: int, *, bits: int = 2048, hash_name: str = "sha256",
              valid: tuple[dt.datetime, dt.datetime] = LEAF_VALID) -> certs.CertSpec:
    key_seed = "server-1024" if bits == 1024 else "server-2048"
    return certs.CertSpec(
        certs.name(host, SERVER_ORG, "US"), serial, *valid, key_seed=key_seed, key_bits=bits,
        hash_name=hash_name, dns_names=(host,),
    )


def ca_signed_chain(spec: certs.CertSpec) -> tuple[bytes, ...]:
    ca_cert, ca = root_ca()
    return certs.der(certs.issue(spec, ca)), certs.der(ca_cert)


def self_signed_chain(spec: certs.CertSpec) -> tuple[bytes, ...]:
    return (certs.der(certs.issue(spec)),)


# -- TLS scenarios --------------------------------------------------------------------


@dataclass(frozen=True)
class TlsPlan:
    """A TLS scenario before it is built: the facts a sensor will see and how to make the chain."""

    facts: TlsFacts
    chain: Callable[[], tuple[bytes, ...]]
    client_ciphers: tuple[int, ...] = MODERN_CLIENT_CIPHERS
    request_sizes: tuple[int, ...] = (420,)
    response_sizes: tuple[int, ...] = (1400, 2900)
    # Builds a particular client's hello from the scenario's rng (scenarios/tls/hellos.py).
    hello: Callable[[random.Random], CustomHello] | None = None


def tls_plan(
    host: str,
    serial: int,
    version: int,
    cipher: int,
    *,
    bits: int = 2048,
    hash_name: str = "sha256",
    expired: bool = False,
    self_signed: bool = False,
    client_ciphers: tuple[int, ...] = MODERN_CLIENT_CIPHERS,
) -> TlsPlan:
    spec = leaf_spec(host, serial, bits=bits, hash_name=hash_name, valid=EXPIRED_VALID if expired else LEAF_VALID)
    chain = partial(self_signed_chain if self_signed else ca_signed_chain, spec)
    issuer = spec.subject if self_signed else CA_NAME
    server_name = host if version >= t.TLS10 else None
    if version == t.TLS13:
        # The certificate travels encrypted, so a sensor sees no subject or issuer.
        facts = TlsFacts(version, cipher, server_name, None)
    else:
        facts = TlsFacts(version, cipher, server_name, spec, issuer.rfc4514_string(), self_signed)
    return TlsPlan(facts, chain, client_ciphers)


TOR_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def tor_plan(seed: str) -> TlsPlan:
    """Tor's link handshake: random www.<x>.com SNI and issuer, www.<y>.net subject.

    The link certificate is signed by the relay's 1024-bit identity key, which Tor does
    not put in the TLS chain, so the issuer is named but absent. After the handshake
    Tor sends 514-byte cells.
    """
    rng = random.Random(f"sensor-plugins:tor-names:{seed}")

    def word(low: int, high: int) -> str:
        # Tor's crypto_random_hostname() base32-encodes random bytes: [a-z2-7], never 0, 1, 8 or 9.
        return "".join(rng.choice(TOR_NAME_ALPHABET) for _ in range(rng.randint(low, high)))

    sni, subject_cn, issuer_cn = f"www.{word(8, 14)}.com", f"www.{word(8, 20)}.net", f"www.{word(8, 16)}.com"
    spec = certs.CertSpec(
        certs.name(subject_cn),
        rng.getrandbits(63),
        dt.datetime(2017, 2, 26, tzinfo=dt.UTC),
        dt.datetime(2018, 1, 31, tzinfo=dt.UTC),
        key_seed="tor-link-key",
    )
    issuer_name = certs.name(issuer_cn)

    def chain() -> tuple[bytes, ...]:
        issuer = certs.Issuer(issuer_name, certs.seeded_rsa_key("tor-identity-key", 1024))
        return (certs.der(certs.issue(spec, issuer)),)

    facts = TlsFacts(t.TLS12, t.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, sni, spec, issuer_name.rfc4514_string())
    return TlsPlan(facts, chain, request_sizes=(514 * 3,), response_sizes=(514 * 2, 514))


def build_tls(name: str, client: str, server: str, port: int, plan: TlsPlan) -> list[Packet]:
    rng = scenario_rng(name, "tls")
    spec = plan.facts.certificate
    key = certs.seeded_rsa_key(spec.key_seed, spec.key_bits) if spec else certs.seeded_rsa_key("server-2048")
    session = TlsSession(
        version=plan.facts.version,
        cipher=plan.facts.cipher,
        server_name=plan.facts.server_name,
        chain=plan.chain(),
        server_key=key,
        client_ciphers=plan.client_ciphers,
        request_sizes=plan.request_sizes,
        response_sizes=plan.response_sizes,
        hello=plan.hello(scenario_rng(name, "hello")) if plan.hello else None,
    )
    capture = Capture()
    flow = TcpFlow(capture, (client, ephemeral_port(rng)), (server, port), rng).open()
    tls_conversation(flow, session, rng)
    flow.close()
    return capture.packets


# -- HTTP -----------------------------------------------------------------------------


def http_flow(capture: Capture, rng: random.Random, client: str, server: tuple[str, int],
              exchange: HttpExchange) -> None:
    flow = TcpFlow(capture, (client, ephemeral_port(rng)), server, rng).open()
    flow.send(http_request(exchange))
    flow.send(http_response(exchange, capture.now_us // 1_000_000), from_client=False)
    # "Connection: close": the server ends the connection.
    flow.close(client_first=False)


def build_http(name: str, client: str, server: str, exchange: HttpExchange, port: int = 80) -> list[Packet]:
    capture = Capture()
    http_flow(capture, scenario_rng(name, "http"), client, (server, port), exchange)
    return capture.packets


# -- BitTorrent -----------------------------------------------------------------------


def torrent() -> btwire.Torrent:
    created = int(CAPTURE_DATE.timestamp()) - 86400
    return btwire.sample_torrent(f"http://{TRACKER}:{TRACKER_PORT}/announce", created)


def build_bt_peer(name: str, client: str, peer: str) -> list[Packet]:
    """A peer-wire session: both handshakes, bitfield, interested, unchoke, one block."""
    rng = scenario_rng(name, "peer")
    info = torrent()
    capture = Capture()
    flow = TcpFlow(capture, (client, ephemeral_port(rng)), (peer, BT_PORT), rng).open()
    flow.send(btwire.handshake(info.info_hash, btwire.peer_id(rng)))
    pieces = -(-info.length // btwire.PIECE_LENGTH)
    flow.send(btwire.handshake(info.info_hash, btwire.peer_id(rng)) + btwire.bitfield(pieces), from_client=False)
    flow.send(btwire.message(btwire.INTERESTED))
    flow.send(btwire.message(btwire.UNCHOKE), from_client=False)
    flow.send(btwire.request(0, 0, btwire.PIECE_LENGTH))
    flow.send(btwire.piece(0, 0, info.content[: btwire.PIECE_LENGTH]), from_client=False)
    flow.close()
    return capture.packets


def build_bt_dht(name: str, node: str, remote: str) -> list[Packet]:
    """A DHT ping and a get_peers for the sample torrent, each answered (BEP 5)."""
    rng = scenario_rng(name, "dht")
    info = torrent()
    capture = Capture()
    local, other = (node, BT_PORT), (remote, DHT_REMOTE_PORT)
    node_id, remote_id = rng.randbytes(20), rng.randbytes(20)
    udp_datagram(capture, local, other, btwire.dht_ping(b"pn", node_id))
    udp_datagram(capture, other, local, btwire.dht_ping_response(b"pn", remote_id))
    udp_datagram(capture, local, other, btwire.dht_get_peers(b"gp", node_id, info.info_hash))
    peers = [btwire.compact_peer(BT_PEER, BT_PORT), btwire.compact_peer(SWARM_PEER, SWARM_PEER_PORT)]
    reply = btwire.dht_get_peers_response(b"gp", remote_id, rng.randbytes(8), peers)
    udp_datagram(capture, other, local, reply)
    return capture.packets


def tracker_exchange(rng: random.Random) -> HttpExchange:
    info = torrent()
    key = f"{rng.getrandbits(32):08x}"
    uri = btwire.announce_uri(info.info_hash, btwire.peer_id(rng), BT_PORT, info.length, key)
    peers = [btwire.compact_peer(BT_PEER, BT_PORT), btwire.compact_peer(SWARM_PEER, SWARM_PEER_PORT)]
    return HttpExchange(
        host=f"{TRACKER}:{TRACKER_PORT}",
        uri=uri,
        body=btwire.announce_response(peers),
        content_type="text/plain",
        user_agent=btwire.USER_AGENT,
        server="opentracker",
    )


def build_tracker(name: str, client: str) -> list[Packet]:
    rng = scenario_rng(name, "tracker")
    capture = Capture()
    http_flow(capture, rng, client, (TRACKER, TRACKER_PORT), tracker_exchange(rng))
    return capture.packets


TORRENT_URI = "/torrents/sensor-plugins-sample.tar.torrent"


def torrent_download() -> HttpExchange:
    return HttpExchange(
        host="torrents.example.org", uri=TORRENT_URI, body=torrent().metainfo,
        content_type="application/x-bittorrent",
    )


# -- the catalogue of scenarios ---------------------------------------------------------


def scenario(name: str, description: str, build: Callable[[], list[Packet]], hosts: Sequence[str],
             traffic: Sequence[str] = (), **extra) -> Scenario:
    """A Scenario whose North Korean hosts and outside peers are sorted out from ``hosts``."""
    return Scenario(
        name, description, build,
        nk_hosts=tuple(h for h in hosts if h in RANGE_OF_HOST),
        peers=tuple(h for h in hosts if h not in RANGE_OF_HOST),
        traffic=frozenset(traffic), **extra,
    )


def http_scenarios() -> list[Scenario]:
    scenarios = []
    for range_name, host in NK_HOSTS.items():
        out = HttpExchange("www.example.com", f"/{range_name}/outbound.html", html_page(f"{range_name} outbound"))
        inbound = HttpExchange(host, f"/{range_name}/inbound.html", html_page(f"{range_name} inbound"),
                               server="Apache/2.2.15 (Red Hat)")
        out_name, in_name = f"http-{range_name}-out", f"http-{range_name}-in"
        scenarios += [
            scenario(out_name, f"HTTP GET from {host} ({range_name}) to the outside web server {WEB_SERVER}",
                     partial(build_http, out_name, host, WEB_SERVER, out), (host, WEB_SERVER),
                     http_uris=(out.uri,)),
            scenario(in_name, f"HTTP GET from the outside client {OUTSIDE_CLIENT} to a web server at {host} "
                     f"({range_name})", partial(build_http, in_name, OUTSIDE_CLIENT, host, inbound),
                     (OUTSIDE_CLIENT, host), http_uris=(inbound.uri,)),
        ]
    return scenarios


def tls_scenario(name: str, description: str, client: str, plan: TlsPlan, traffic: Sequence[str] = (),
                 negative: bool = False, server: str = TLS_SERVER, port: int = 443) -> Scenario:
    return scenario(name, description, partial(build_tls, name, client, server, port, plan), (client, server),
                    traffic, negative=negative, tls=plan.facts)


# The legacy client's hello offers RC4 and nothing above its session's version.
OLD_CLIENT = ("client:weak-offer", "client:old-max-version")


def rc4_plan() -> TlsPlan:
    """TLS 1.0 with RC4, the study's typical weak session."""
    return tls_plan("legacy-rc4.example.com", 0x1001, t.TLS10, t.TLS_RSA_WITH_RC4_128_SHA,
                    client_ciphers=LEGACY_CLIENT_CIPHERS)


def tls_scenarios() -> list[Scenario]:
    nk = KP_STAR_JV_HOST
    rc4 = rc4_plan()
    sslv3 = tls_plan("sslv3.example.com", 0x1002, t.SSL3, t.TLS_RSA_WITH_AES_128_CBC_SHA,
                     client_ciphers=LEGACY_CLIENT_CIPHERS)
    rsa_gcm, ecdhe_gcm = t.TLS_RSA_WITH_AES_128_GCM_SHA256, t.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    good = tls_plan("good.example.com", 0x1006, t.TLS12, ecdhe_gcm)
    tls13 = tls_plan("tls13.example.com", 0x1007, t.TLS13, t.TLS_AES_128_GCM_SHA256,
                     client_ciphers=TLS13_CLIENT_CIPHERS)
    return [
        tls_scenario("tls10-rc4-kp-star-jv-out", f"TLS 1.0 with TLS_RSA_WITH_RC4_128_SHA from {nk} to {TLS_SERVER}",
                     nk, rc4, ("tls:weak-cipher", "tls:old-version", *OLD_CLIENT)),
        tls_scenario("sslv3-kp-star-jv-out",
                     f"SSLv3 (TLS_RSA_WITH_AES_128_CBC_SHA, no extensions) from {nk} to {TLS_SERVER}",
                     nk, sslv3, ("tls:old-version", *OLD_CLIENT)),
        tls_scenario("tls12-rsa1024-kp-star-jv-out",
                     f"TLS 1.2 from {nk} to {TLS_SERVER}; the CA-signed certificate has a 1024-bit RSA key",
                     nk, tls_plan("weak-key.example.com", 0x1003, t.TLS12, rsa_gcm, bits=1024), ("tls:weak-key",)),
        tls_scenario("tls12-expired-selfsigned-kp-star-jv-out",
                     f"TLS 1.2 from {nk} to {TLS_SERVER}; self-signed certificate that expired on 2016-03-01",
                     nk, tls_plan("expired.example.com", 0x1004, t.TLS12, rsa_gcm, expired=True, self_signed=True),
                     ("tls:expired", "tls:self-signed")),
        tls_scenario("tls12-sha1-cert-kp-star-jv-out",
                     f"TLS 1.2 from {nk} to {TLS_SERVER}; CA-signed certificate with a SHA-1 signature",
                     nk, tls_plan("sha1.example.com", 0x1005, t.TLS12, rsa_gcm, hash_name="sha1"),
                     ("tls:sha1-signature",)),
        tls_scenario("tls12-good-kp-star-jv-out",
                     f"Clean TLS 1.2 (ECDHE-RSA-AES128-GCM, 2048-bit, SHA-256, CA chain) from {nk}: "
                     "only the range may be reported", nk, good, negative=True),
        tls_scenario("tls13-kp-star-jv-out",
                     f"TLS 1.3 (TLS_AES_128_GCM_SHA256) from {nk}: only the range may be reported",
                     nk, tls13, negative=True),
        tls_scenario("tls10-rc4-outside",
                     f"TLS 1.0 with RC4 between {NEGATIVE_CLIENT} and {TLS_SERVER}, both outside every range",
                     NEGATIVE_CLIENT, rc4, ("tls:weak-cipher", "tls:old-version", *OLD_CLIENT), negative=True),
        tls_scenario("sslv3-outside", f"SSLv3 between {NEGATIVE_CLIENT} and {TLS_SERVER}, both outside every range",
                     NEGATIVE_CLIENT, sslv3, ("tls:old-version", *OLD_CLIENT), negative=True),
        tls_scenario("tls12-ipv6-outside", f"Clean TLS 1.2 over IPv6 between {IPV6_CLIENT} and {IPV6_SERVER}",
                     IPV6_CLIENT, tls_plan("ipv6.example.com", 0x1008, t.TLS12, ecdhe_gcm),
                     negative=True, server=IPV6_SERVER),
    ]


def tor_scenarios() -> list[Scenario]:
    relay_name, exit_name, outside_name = "tor-relay-kp-star-jv-out", "tor-exit-http-kp-star-jv-in", "tor-relay-outside"
    exit_http = HttpExchange(KP_STAR_JV_HOST, "/tor-exit/inbound.html", html_page("reached through Tor"),
                             user_agent="Mozilla/5.0 (Windows NT 6.1; rv:52.0) Gecko/20100101 Firefox/52.0",
                             server="Apache/2.2.15 (Red Hat)")
    relay = f"the listed relay {TOR_RELAY}:{TOR_RELAY_PORT}"
    return [
        tls_scenario(relay_name, f"Tor link handshake from {KP_STAR_JV_HOST} to {relay}", KP_STAR_JV_HOST,
                     tor_plan(relay_name), ("tor:relay",), server=TOR_RELAY, port=TOR_RELAY_PORT),
        scenario(exit_name, f"HTTP from the listed Tor exit {TOR_EXIT} to {KP_STAR_JV_HOST}:80",
                 partial(build_http, exit_name, TOR_EXIT, KP_STAR_JV_HOST, exit_http),
                 (TOR_EXIT, KP_STAR_JV_HOST), ("tor:exit",), http_uris=(exit_http.uri,)),
        tls_scenario(outside_name, f"Tor link handshake from {NEGATIVE_CLIENT} (outside every range) to {relay}",
                     NEGATIVE_CLIENT, tor_plan(outside_name), ("tor:relay",), negative=True,
                     server=TOR_RELAY, port=TOR_RELAY_PORT),
    ]


def client_scenarios() -> list[Scenario]:
    """Distinct ClientHellos for the JA4 client fingerprints (``analyze``'s client findings)."""
    star, netcom, satgate = KP_STAR_JV_HOST, KP_CHINA_NETCOM_HOST, KP_SATGATE_HOST
    ecdhe_gcm = t.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    browser = replace(tls_plan("browser.example.com", 0x1101, t.TLS13, t.TLS_AES_128_GCM_SHA256),
                      hello=partial(hellos.browser_hello, host="browser.example.com"))
    tor_name = "client-tor-kp-china-netcom-out"
    tor = tor_plan(tor_name)
    tor = replace(tor, hello=partial(hellos.tor_hello, host=tor.facts.server_name))
    old = replace(tls_plan("old-client.example.com", 0x1102, t.TLS10, t.TLS_RSA_WITH_AES_128_CBC_SHA),
                  hello=partial(hellos.old_client_hello, host="old-client.example.com"))
    no_sni = tls_plan("device.example.com", 0x1103, t.TLS12, ecdhe_gcm)
    no_sni = replace(no_sni, facts=replace(no_sni.facts, server_name=None), hello=hellos.embedded_hello)
    return [
        tls_scenario("client-browser-kp-star-jv-out",
                     f"A Chromium-like TLS 1.3 hello with GREASE, ALPN h2 and ECH GREASE from {star}",
                     star, browser, ("client:known",)),
        tls_scenario(tor_name, f"The tor daemon's OpenSSL hello (no ALPN) from {netcom} to the listed relay "
                     f"{TOR_RELAY}:{TOR_RELAY_PORT}", netcom, tor, ("tor:relay",),
                     server=TOR_RELAY, port=TOR_RELAY_PORT),
        tls_scenario("client-old-kp-satgate-out",
                     f"A TLS 1.0-only client offering RC4, export and DES suites from {satgate}; "
                     "the server picks AES128-SHA", satgate, old, ("tls:old-version", *OLD_CLIENT)),
        tls_scenario("client-no-sni-kp-star-jv-out",
                     f"A TLS 1.2 client without SNI or ALPN from {star} to {TLS_SERVER}", star, no_sni),
    ]


def bittorrent_scenarios() -> list[Scenario]:
    star, netcom, satgate = KP_STAR_JV_HOST, KP_CHINA_NETCOM_HOST, KP_SATGATE_HOST
    outside = (NEGATIVE_CLIENT, NEGATIVE_PEER)
    names = ("bittorrent-peer-kp-star-jv-out", "bittorrent-dht-kp-china-netcom-out",
             "bittorrent-tracker-kp-satgate-out", "bittorrent-torrent-file-kp-star-jv-out",
             "bittorrent-peer-outside", "bittorrent-dht-outside")
    peer, dht, tracker, torrent_file, peer_outside, dht_outside = names
    announce = tracker_exchange(scenario_rng(tracker, "tracker"))
    return [
        scenario(peer, f"BitTorrent peer-wire handshakes and one block from {star} to {BT_PEER}:{BT_PORT}",
                 partial(build_bt_peer, peer, star, BT_PEER), (star, BT_PEER), ("bittorrent:peer",)),
        scenario(dht, f"BitTorrent DHT ping and get_peers from {netcom} to {DHT_NODE}",
                 partial(build_bt_dht, dht, netcom, DHT_NODE), (netcom, DHT_NODE), ("bittorrent:dht",)),
        scenario(tracker, f"BitTorrent tracker announce over HTTP from {satgate} to {TRACKER}:{TRACKER_PORT}",
                 partial(build_tracker, tracker, satgate), (satgate, TRACKER), ("bittorrent:tracker",),
                 http_uris=(announce.uri,)),
        scenario(torrent_file, f"Download of a .torrent file (application/x-bittorrent) by {star} from {WEB_SERVER}",
                 partial(build_http, torrent_file, star, WEB_SERVER, torrent_download()), (star, WEB_SERVER),
                 ("bittorrent:torrent-file",), http_uris=(TORRENT_URI,)),
        scenario(peer_outside, f"BitTorrent peer-wire session between {NEGATIVE_CLIENT} and {NEGATIVE_PEER}, "
                 "both outside every range", partial(build_bt_peer, peer_outside, *outside), outside,
                 ("bittorrent:peer",), negative=True),
        scenario(dht_outside, f"BitTorrent DHT ping and get_peers between {NEGATIVE_CLIENT} and {NEGATIVE_PEER}, "
                 "both outside every range", partial(build_bt_dht, dht_outside, *outside), outside,
                 ("bittorrent:dht",), negative=True),
    ]


def ipv6_scenarios() -> list[Scenario]:
    name = "http-ipv6-outside"
    exchange = HttpExchange("www.example.net", "/ipv6/index.html", html_page("IPv6 outside"))
    return [
        scenario(name, f"HTTP over IPv6 between {IPV6_CLIENT} and {IPV6_SERVER}, both outside every range",
                 partial(build_http, name, IPV6_CLIENT, IPV6_SERVER, exchange), (IPV6_CLIENT, IPV6_SERVER),
                 negative=True, http_uris=(exchange.uri,)),
    ]


def without_handshake(build: Callable[[], list[Packet]]) -> list[Packet]:
    """The capture ``build`` makes, less every SYN and SYN-ACK: what a sensor started mid-connection sees."""
    return [p for p in build() if not (TCP in p and p[TCP].flags.S)]


def midstream(base: Scenario, description: str) -> Scenario:
    """``base`` picked up mid-stream: same name, hosts, labels and facts, a capture without the handshake."""
    return replace(base, description=description, build=partial(without_handshake, base.build), midstream=True)


def midstream_scenarios() -> list[Scenario]:
    """Connections that started before the sensor: BitTorrent, weak TLS and plain traffic with a range.

    Each is built like a full scenario, under its own name (so ports and ISNs differ),
    with the SYN and SYN-ACK cut out: the client's ACK that ends the handshake comes first.
    """
    bt, tls, http = "bittorrent-peer-midstream-kp-star-jv-out", "tls10-rc4-midstream-kp-star-jv-out", \
        "http-midstream-kp-china-netcom-in"
    star, netcom = KP_STAR_JV_HOST, KP_CHINA_NETCOM_HOST
    inbound = HttpExchange(netcom, "/midstream/inbound.html", html_page("kp-china-netcom midstream"),
                           server="Apache/2.2.15 (Red Hat)")
    return [
        midstream(scenario(bt, "", partial(build_bt_peer, bt, star, BT_PEER), (star, BT_PEER), ("bittorrent:peer",)),
                  f"BitTorrent peer-wire session from {star} to {BT_PEER}:{BT_PORT} open before capture "
                  "began: handshakes without SYN or SYN-ACK"),
        midstream(tls_scenario(tls, "", star, rc4_plan(), ("tls:weak-cipher", "tls:old-version")),
                  f"TLS 1.0 with RC4 from {star} to {TLS_SERVER} open before capture began: the hellos "
                  "without SYN or SYN-ACK"),
        midstream(scenario(http, "", partial(build_http, http, OUTSIDE_CLIENT, netcom, inbound),
                           (OUTSIDE_CLIENT, netcom), http_uris=(inbound.uri,)),
                  f"HTTP GET from {OUTSIDE_CLIENT} to a web server at {netcom} (kp-china-netcom) open "
                  "before capture began: no SYN or SYN-ACK"),
    ]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for group in (http_scenarios, tls_scenarios, tor_scenarios, bittorrent_scenarios, ipv6_scenarios,
                  client_scenarios, midstream_scenarios)
    for s in group()
}


# -- building and writing ---------------------------------------------------------------

TRUST_CA_ZEEK = "trust-test-ca.zeek"


def trust_ca_zeek() -> str:
    """A Zeek script that trusts the scenarios' test root CA, as a site trusts its own CA.

    Zeek's ``validate-certs`` (loaded by ``local``) checks chains against
    ``SSL::root_certs``; without this every scenario certificate fails for want of an
    issuer, and the clean TLS scenarios could not show that only real weaknesses count.
    """
    cert, _issuer = root_ca()
    literal = "".join(f"\\x{b:02x}" for b in cert.public_bytes(Encoding.DER))
    return ("# Trust the sensor-plugins scenario test CA (load after local).\n"
            f'redef SSL::root_certs += {{ ["{cert.subject.rfc4514_string()}"] = "{literal}" }};\n')



def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ScenarioError(
            f"unknown scenario {', '.join(repr(n) for n in unknown)}; valid names: {', '.join(SCENARIOS)}"
        )


def build_packets(name: str) -> list[Packet]:
    check_names([name])
    return SCENARIOS[name].build()


def pcap_bytes(packets: Sequence[Packet]) -> bytes:
    """Classic libpcap, microsecond timestamps, Ethernet link type, written by hand so every byte is ours."""
    out = [PCAP_MAGIC_HEADER]
    for packet in packets:
        data = bytes(packet)
        micros = int(packet.time * 1_000_000)
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(data), len(data)))
        out.append(data)
    return b"".join(out)


def write_pcaps(out_dir: Path, names: Sequence[str] | None = None,
                extra: Mapping[str, bytes] | None = None) -> list[Path]:
    """Write ``<out_dir>/<name>.pcap`` for each scenario (all when ``names`` is None), and the
    ``extra`` files, all or nothing, and return the pcaps' paths.

    ``out_dir`` is an output directory like generate's: under its lock, with a manifest of
    what sensor-plugins wrote there, so a file it did not write is never replaced. What an
    earlier run wrote there, the pcaps of other scenarios, is kept.
    """
    selected = list(SCENARIOS) if names is None else list(dict.fromkeys(names))
    check_names(selected)
    out = Path(out_dir)
    # Build everything before writing anything, so a failure leaves no partial set behind.
    built = {f"{name}.pcap": pcap_bytes(build_packets(name)) for name in selected} | dict(extra or {})
    with locked([out]):
        sweep_tree(out)
        apply_changes(plan_tree({**earlier_files(out), **built}, out), ScenarioError)
    return [out / f"{name}.pcap" for name in selected]


def earlier_files(out: Path) -> dict[str, bytes]:
    """The files an earlier run wrote in ``out`` that still hold the bytes it wrote, to keep.
    One edited since is left out, so the plan refuses to drop it and the edit is not lost."""
    if not out.is_dir():
        return {}
    kept = {}
    for rel, digests in read_manifest(out).items():
        path = out / rel
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if digest(data) in digests:
                kept[rel] = data
    return kept


# -- command line -----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pcaps",
        help="write the scenario pcaps (deterministic ground truth for the sensors)",
        description="Write one pcap per scenario into DIR as DIR/<name>.pcap.",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="directory for the pcaps")
    parser.add_argument("--scenario", action="append", metavar="NAME", help="only this scenario (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        width = max(len(n) for n in SCENARIOS)
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<{width}}  {scenario.description}")
        return 0
    if args.out is None:
        raise ScenarioError("pcaps: --out DIR is required unless --list is given")
    if args.out.exists() and not args.out.is_dir():
        raise ScenarioError(f"{args.out}: not a directory")
    paths = write_pcaps(args.out, args.scenario, {TRUST_CA_ZEEK: trust_ca_zeek().encode("ascii")})
    print(f"wrote {len(paths)} pcap(s) to {args.out}, and {TRUST_CA_ZEEK} for `replay --zeek-script`")
    return 0
