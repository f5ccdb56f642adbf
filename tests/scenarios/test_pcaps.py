"""The scenario pcaps read back as real, consistent traffic that says what each scenario claims."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from sensor_plugins.cli import main
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.scenarios import pcaps
from sensor_plugins.scenarios.bittorrent.bencode import bdecode, bencode
from sensor_plugins.scenarios.tls import wire as t

REPO = Path(__file__).resolve().parents[2]
CAPTURE_START = dt.datetime(2017, 5, 15, 3, 0, tzinfo=dt.UTC)
TLS_SCENARIOS = [n for n, s in pcaps.SCENARIOS.items() if s.tls]
CERT_SCENARIOS = [n for n, s in pcaps.SCENARIOS.items() if s.tls and s.tls.certificate]


@pytest.fixture(scope="session")
def pcap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pcaps")
    pcaps.write_pcaps(out)
    return out


@pytest.fixture(scope="session")
def packets(pcap_dir: Path) -> dict[str, list]:
    return {name: list(rdpcap(str(pcap_dir / f"{name}.pcap"))) for name in pcaps.SCENARIOS}


# -- reading flows back -------------------------------------------------------------------


def ip_layer(pkt):
    return pkt[IP] if IP in pkt else pkt[IPv6]


@dataclass
class Flow:
    client: tuple[str, int]
    server: tuple[str, int]
    segments: list = field(default_factory=list)

    def stream(self, from_client: bool) -> bytes:
        sender = self.client if from_client else self.server
        return b"".join(
            bytes(p[TCP].payload) for p in self.segments if (ip_layer(p).src, p[TCP].sport) == sender
        )


def tcp_flows(pkts: list) -> list[Flow]:
    flows: dict[frozenset, Flow] = {}
    for p in pkts:
        if TCP not in p:
            continue
        ends = ((ip_layer(p).src, p[TCP].sport), (ip_layer(p).dst, p[TCP].dport))
        key = frozenset(ends)
        if key not in flows:
            # A SYN, or the client's ACK that ends the handshake when the capture starts mid-stream.
            assert p[TCP].flags in ("S", "A"), f"flow {ends} starts with neither a SYN nor an ACK"
            flows[key] = Flow(*ends)
        flows[key].segments.append(p)
    return list(flows.values())


def sequence_errors(flow: Flow, midstream: bool = False) -> list[str]:
    """Every place where seq/ack numbers or the open/close sequence are not those of a real flow.

    ``midstream``: the capture starts at the client's last handshake ACK, and holds no SYN at all.
    """
    errors = []
    flags = [str(p[TCP].flags) for p in flow.segments]
    opening = ["A"] if midstream else ["S", "SA", "A"]
    if flags[:len(opening)] != opening:
        errors.append(f"opening is {flags[:len(opening)]}")
    if midstream and any("S" in f for f in flags):
        errors.append("a SYN in a capture picked up mid-stream")
    next_seq: dict[tuple, int] = {}
    fins: set[tuple] = set()
    for i, p in enumerate(flow.segments):
        tcp = p[TCP]
        me = (ip_layer(p).src, tcp.sport)
        peer = (ip_layer(p).dst, tcp.dport)
        if me in next_seq and tcp.seq != next_seq[me]:
            errors.append(f"packet {i}: seq {tcp.seq}, expected {next_seq[me]}")
        # The peer's first segment is still to come when a mid-stream capture opens.
        if "A" in tcp.flags and peer in next_seq and tcp.ack != next_seq[peer]:
            errors.append(f"packet {i}: ack {tcp.ack}, expected {next_seq.get(peer)}")
        step = len(tcp.payload) + (1 if tcp.flags.S or tcp.flags.F else 0)
        next_seq[me] = (tcp.seq + step) & 0xFFFFFFFF
        if tcp.flags.F:
            fins.add(me)
    if fins != {flow.client, flow.server}:
        errors.append(f"FIN sent by {sorted(fins)} only")
    last = flow.segments[-1][TCP]
    if str(last.flags) != "A" or last.ack != next_seq[(ip_layer(flow.segments[-1]).dst, last.dport)]:
        errors.append("the last FIN is not acknowledged")
    return errors


def ones_complement(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum_errors(pkt) -> list[str]:
    """Checks the checksums on the wire bytes with an independent ones' complement sum."""
    raw = bytes(pkt)[14:]
    errors = []
    if raw[0] >> 4 == 4:
        header_len = (raw[0] & 0x0F) * 4
        if ones_complement(raw[:header_len]) != 0xFFFF:
            errors.append("IPv4 header checksum")
        proto, src, dst = raw[9], raw[12:16], raw[16:20]
        total = struct.unpack("!H", raw[2:4])[0]
        payload = raw[header_len:total]
    else:
        proto, src, dst = raw[6], raw[8:24], raw[24:40]
        payload = raw[40 : 40 + struct.unpack("!H", raw[4:6])[0]]
    pseudo = src + dst + struct.pack("!HH", proto, len(payload))
    if ones_complement(pseudo + payload) != 0xFFFF:
        errors.append(f"transport checksum (protocol {proto})")
    return errors


def tls_records(flow: Flow, from_client: bool) -> list[t.Record]:
    return list(t.parse_records(flow.stream(from_client)))


def clear_handshakes(records: list[t.Record]) -> list[tuple[int, bytes]]:
    """The handshake messages sent before ChangeCipherSpec (after it they are encrypted)."""
    clear = b""
    for record in records:
        if record.content_type == t.CHANGE_CIPHER_SPEC:
            break
        if record.content_type == t.HANDSHAKE:
            clear += record.body
    return list(t.parse_handshakes(clear))


def only_tls_flow(pkts: list) -> Flow:
    (flow,) = tcp_flows(pkts)
    return flow


def server_handshakes(pkts: list) -> dict[int, bytes]:
    return dict(clear_handshakes(tls_records(only_tls_flow(pkts), from_client=False)))


def leaf_and_chain(pkts: list) -> list[x509.Certificate]:
    chain = t.parse_certificate_chain(server_handshakes(pkts)[t.CERTIFICATE])
    return [x509.load_der_x509_certificate(der) for der in chain]


def server_hello_version_and_cipher(body: bytes) -> tuple[int, int]:
    version = int.from_bytes(body[:2], "big")
    session_id_len = body[34]
    cipher = int.from_bytes(body[35 + session_id_len : 37 + session_id_len], "big")
    return version, cipher


def extensions(body: bytes, fixed_len: int) -> dict[int, bytes]:
    """Extensions of a hello whose fields before the extension block take ``fixed_len`` bytes."""
    block = body[fixed_len:]
    total = int.from_bytes(block[:2], "big")
    assert total == len(block) - 2, "extension block length disagrees with the hello length"
    found, i = {}, 2
    while i < len(block):
        ext_type, length = struct.unpack_from("!HH", block, i)
        found[ext_type] = block[i + 4 : i + 4 + length]
        i += 4 + length
    return found


def client_hello_fields(body: bytes) -> tuple[int, dict[int, bytes]]:
    i = 34
    i += 1 + body[i]  # session id
    i += 2 + int.from_bytes(body[i : i + 2], "big")  # ciphers
    i += 1 + body[i]  # compression
    return int.from_bytes(body[:2], "big"), (extensions(body, i) if i < len(body) else {})


def sni_of(ext: dict[int, bytes]) -> str | None:
    if t.EXT_SERVER_NAME not in ext:
        return None
    data = ext[t.EXT_SERVER_NAME]
    return data[5 : 5 + int.from_bytes(data[3:5], "big")].decode("ascii")


# -- determinism ----------------------------------------------------------------------------


def test_a_fresh_process_with_another_hash_seed_writes_byte_identical_pcaps(pcap_dir: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run(
        [sys.executable, "-m", "sensor_plugins", "pcaps", "--out", str(tmp_path)],
        check=True, cwd=REPO, env=env, capture_output=True,
    )
    differing = [
        name for name in pcaps.SCENARIOS
        if (tmp_path / f"{name}.pcap").read_bytes() != (pcap_dir / f"{name}.pcap").read_bytes()
    ]
    assert differing == []


def test_building_a_scenario_twice_in_one_process_gives_the_same_bytes():
    name = "tls12-good-kp-star-jv-out"
    assert pcaps.pcap_bytes(pcaps.build_packets(name)) == pcaps.pcap_bytes(pcaps.build_packets(name))


# -- link, IP and TCP/UDP layers ------------------------------------------------------------


@pytest.mark.parametrize("name", list(pcaps.SCENARIOS))
def test_every_packet_is_an_ethernet_frame_with_valid_checksums(packets, name):
    problems = [(i, e) for i, p in enumerate(packets[name]) for e in checksum_errors(p)]
    assert all(Ether in p for p in packets[name]) and problems == []


@pytest.mark.parametrize("name", list(pcaps.SCENARIOS))
def test_timestamps_start_in_the_2017_study_window_and_never_go_back(packets, name):
    times = [p.time for p in packets[name]]
    start = dt.datetime.fromtimestamp(float(times[0]), dt.UTC)
    assert CAPTURE_START <= start < CAPTURE_START + dt.timedelta(minutes=1) and times == sorted(times)


@pytest.mark.parametrize("name", [n for n, s in pcaps.SCENARIOS.items() if "bittorrent:dht" not in s.traffic])
def test_tcp_flows_have_a_handshake_continuous_seq_ack_and_a_fin_from_both_sides(packets, name):
    flows, midstream = tcp_flows(packets[name]), pcaps.SCENARIOS[name].midstream
    assert flows and {f.client: sequence_errors(f, midstream) for f in flows} == {f.client: [] for f in flows}



def test_data_segments_never_exceed_the_mss():
    ipv4 = pcaps.build_packets("bittorrent-peer-kp-star-jv-out")
    ipv6 = pcaps.build_packets("tls12-ipv6-outside")
    assert max(len(p[TCP].payload) for p in ipv4) == 1460 and max(len(p[TCP].payload) for p in ipv6) <= 1440


# -- addresses --------------------------------------------------------------------------------


def test_each_nk_host_constant_lies_in_the_catalogue_range_it_is_named_after():
    catalogue = load_catalogue()
    assert {name: catalogue.lookup(host).name for name, host in pcaps.NK_HOSTS.items()} == {
        name: name for name in pcaps.NK_HOSTS
    }


def test_the_tor_relay_constant_is_listed_as_a_relay_and_not_as_an_exit():
    assert load_tor_list().role_of(pcaps.TOR_RELAY) == "relay"


def test_the_tor_exit_constant_is_listed_as_an_exit():
    assert load_tor_list().role_of(pcaps.TOR_EXIT) == "exit"


def addresses(pkts: list) -> set[str]:
    return {a for p in pkts for a in (ip_layer(p).src, ip_layer(p).dst)}


@pytest.mark.parametrize("name", [n for n, s in pcaps.SCENARIOS.items() if not s.nk_hosts])
def test_scenarios_without_nk_hosts_touch_no_catalogued_address(packets, name):
    catalogue = load_catalogue()
    assert [a for a in addresses(packets[name]) if catalogue.lookup(a)] == []


@pytest.mark.parametrize("name", [n for n, s in pcaps.SCENARIOS.items() if s.nk_hosts])
def test_scenarios_with_nk_hosts_carry_exactly_those_catalogued_addresses(packets, name):
    catalogue = load_catalogue()
    inside = {a for a in addresses(packets[name]) if catalogue.lookup(a)}
    assert inside == set(pcaps.SCENARIOS[name].nk_hosts)


def test_outside_addresses_come_from_documentation_ranges_or_the_tor_lists(packets):
    documentation = [ipaddress.ip_network(n) for n in
                     ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
    catalogue = load_catalogue()
    allowed = {pcaps.TOR_RELAY, pcaps.TOR_EXIT}
    stray = {
        a for pkts in packets.values() for a in addresses(pkts)
        if not catalogue.lookup(a) and a not in allowed
        and not any(ipaddress.ip_address(a) in n for n in documentation)
    }
    assert stray == set()


def test_http_covers_every_range_as_client_and_as_server(packets):
    seen = set()
    for name in pcaps.SCENARIOS:
        if not name.startswith("http-"):
            continue
        for flow in tcp_flows(packets[name]):
            for role, (address, _) in (("client", flow.client), ("server", flow.server)):
                found = load_catalogue().lookup(address)
                if found:
                    seen.add((found.name, role))
    assert seen == {(r, role) for r in pcaps.NK_HOSTS for role in ("client", "server")}


@pytest.mark.parametrize("name", [n for n, s in pcaps.SCENARIOS.items() if s.http_uris])
def test_http_scenarios_send_their_uri_and_get_a_complete_response(packets, name):
    (flow,) = tcp_flows(packets[name])
    request, response = flow.stream(True), flow.stream(False)
    head, _, body = response.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length:")).split()[1])
    uri = request.split(b" ")[1].decode("ascii")
    assert (uri, head.split(b" ")[1], len(body)) == (pcaps.SCENARIOS[name].http_uris[0], b"200", length)


# -- TLS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TLS_SCENARIOS)
def test_tls_record_and_handshake_lengths_agree_with_the_bytes(packets, name):
    flow = only_tls_flow(packets[name])
    # parse_records / parse_handshakes raise on any length that disagrees with the bytes.
    parsed = [clear_handshakes(tls_records(flow, side)) for side in (True, False)]
    assert [m[0][0] for m in parsed] == [t.CLIENT_HELLO, t.SERVER_HELLO]


@pytest.mark.parametrize("name", TLS_SCENARIOS)
def test_tls_server_hello_negotiates_the_scenario_version_and_cipher(packets, name):
    facts = pcaps.SCENARIOS[name].tls
    body = server_handshakes(packets[name])[t.SERVER_HELLO]
    version, cipher = server_hello_version_and_cipher(body)
    if facts.version == t.TLS13:
        version = int.from_bytes(extensions(body, 38 + body[34])[t.EXT_SUPPORTED_VERSIONS], "big")
    assert (version, cipher) == (facts.version, facts.cipher)


@pytest.mark.parametrize("name", TLS_SCENARIOS)
def test_tls_client_hello_names_the_scenario_server(packets, name):
    records = tls_records(only_tls_flow(packets[name]), from_client=True)
    _, ext = client_hello_fields(dict(clear_handshakes(records))[t.CLIENT_HELLO])
    assert sni_of(ext) == pcaps.SCENARIOS[name].tls.server_name


@pytest.mark.parametrize("name", TLS_SCENARIOS)
def test_tls_sessions_end_in_encrypted_application_data_both_ways(packets, name):
    flow = only_tls_flow(packets[name])
    types = [{r.content_type for r in tls_records(flow, side)} for side in (True, False)]
    assert all(t.APPLICATION_DATA in s and t.CHANGE_CIPHER_SPEC in s for s in types)


@pytest.mark.parametrize("name", CERT_SCENARIOS)
def test_the_leaf_certificate_says_what_the_scenario_declares(packets, name):
    facts = pcaps.SCENARIOS[name].tls
    spec = facts.certificate
    leaf = leaf_and_chain(packets[name])[0]
    actual = (leaf.public_key().key_size, leaf.signature_hash_algorithm.name,
              leaf.not_valid_before_utc, leaf.not_valid_after_utc, leaf.subject, leaf.issuer.rfc4514_string())
    expected = (spec.key_bits, {"sha1": "sha1", "sha256": "sha256"}[spec.hash_name],
                spec.not_before, spec.not_after, spec.subject, facts.issuer)
    assert actual == expected


def test_rc4_scenario_is_tls_1_0_with_rsa_rc4_128_sha(packets):
    body = server_handshakes(packets["tls10-rc4-kp-star-jv-out"])[t.SERVER_HELLO]
    assert server_hello_version_and_cipher(body) == (0x0301, 0x0005)


def test_sslv3_scenario_uses_0x0300_on_every_record_and_on_both_hellos(packets):
    flow = only_tls_flow(packets["sslv3-kp-star-jv-out"])
    records = tls_records(flow, True) + tls_records(flow, False)
    hellos = [clear_handshakes(tls_records(flow, side))[0][1][:2] for side in (True, False)]
    assert {r.version for r in records} == {0x0300} and hellos == [b"\x03\x00", b"\x03\x00"]


def test_rsa1024_scenario_certificate_has_a_1024_bit_key(packets):
    assert leaf_and_chain(packets["tls12-rsa1024-kp-star-jv-out"])[0].public_key().key_size == 1024


def test_expired_scenario_certificate_expired_before_the_capture_and_signs_itself(packets):
    (cert,) = leaf_and_chain(packets["tls12-expired-selfsigned-kp-star-jv-out"])
    cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                             cert.signature_hash_algorithm)
    assert cert.not_valid_after_utc < CAPTURE_START and cert.subject == cert.issuer


def test_sha1_scenario_certificate_is_signed_with_sha1_by_the_ca_that_follows_it(packets):
    leaf, ca = leaf_and_chain(packets["tls12-sha1-cert-kp-star-jv-out"])
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(),
                           leaf.signature_hash_algorithm)
    assert leaf.signature_hash_algorithm.name == "sha1"


def test_good_scenario_sends_a_valid_2048_bit_sha256_leaf_signed_by_the_ca_behind_it(packets):
    leaf, ca = leaf_and_chain(packets["tls12-good-kp-star-jv-out"])
    leaf.verify_directly_issued_by(ca)
    ca.verify_directly_issued_by(ca)
    assert (leaf.public_key().key_size, leaf.signature_hash_algorithm.name,
            leaf.not_valid_before_utc < CAPTURE_START < leaf.not_valid_after_utc) == (2048, "sha256", True)


def test_good_scenario_signs_its_ecdhe_parameters_with_the_certificate_key(packets):
    flow = only_tls_flow(packets["tls12-good-kp-star-jv-out"])
    client_random = clear_handshakes(tls_records(flow, True))[0][1][2:34]
    server = dict(clear_handshakes(tls_records(flow, False)))
    server_random = server[t.SERVER_HELLO][2:34]
    ske = server[t.SERVER_KEY_EXCHANGE]
    params_len = 4 + ske[3]
    signature = ske[params_len + 4 :]
    leaf = x509.load_der_x509_certificate(t.parse_certificate_chain(server[t.CERTIFICATE])[0])
    leaf.public_key().verify(signature, client_random + server_random + ske[:params_len], padding.PKCS1v15(),
                             hashes.SHA256())
    assert int.from_bytes(ske[params_len + 2 : params_len + 4], "big") == len(signature)


def test_tls13_scenario_selects_0x0304_and_shows_no_certificate_in_clear(packets):
    server = server_handshakes(packets["tls13-kp-star-jv-out"])
    body = server[t.SERVER_HELLO]
    selected = extensions(body, 38 + body[34])[t.EXT_SUPPORTED_VERSIONS]
    assert (selected, t.CERTIFICATE in server) == (b"\x03\x04", False)


def test_tor_scenario_has_tor_style_names_on_port_9001_to_the_listed_relay(packets):
    pkts = packets["tor-relay-kp-star-jv-out"]
    flow = only_tls_flow(pkts)
    (cert,) = leaf_and_chain(pkts)
    _, ext = client_hello_fields(clear_handshakes(tls_records(flow, True))[0][1])
    names = (sni_of(ext), cert.subject.rfc4514_string(), cert.issuer.rfc4514_string())
    patterns = (r"www\.[a-z0-9]+\.com", r"CN=www\.[a-z0-9]+\.net", r"CN=www\.[a-z0-9]+\.com")
    assert flow.server == (pcaps.TOR_RELAY, 9001) and all(
        re.fullmatch(p, n) for p, n in zip(patterns, names, strict=True)
    )


# -- BitTorrent -------------------------------------------------------------------------------


def bt_info_hash() -> bytes:
    info = bdecode(pcaps.torrent().metainfo)[b"info"]
    return hashlib.sha1(bencode(info)).digest()


@pytest.mark.parametrize("name", ["bittorrent-peer-kp-star-jv-out", "bittorrent-peer-outside"])
def test_peer_scenarios_exchange_handshakes_both_ways_off_the_usual_ports(packets, name):
    (flow,) = tcp_flows(packets[name])
    starts = [flow.stream(side)[:68] for side in (True, False)]
    ok = [s[:20] == b"\x13BitTorrent protocol" and s[28:48] == bt_info_hash() and len(s) == 68 for s in starts]
    assert ok == [True, True] and flow.server[1] not in range(6881, 6890)


@pytest.mark.parametrize("name", ["bittorrent-dht-kp-china-netcom-out", "bittorrent-dht-outside"])
def test_dht_scenarios_carry_a_ping_and_a_get_peers_with_their_replies(packets, name):
    messages = [bdecode(bytes(p[UDP].payload)) for p in packets[name]]
    kinds = [(m[b"y"], m.get(b"q"), m[b"t"]) for m in messages]
    assert kinds == [(b"q", b"ping", b"pn"), (b"r", None, b"pn"), (b"q", b"get_peers", b"gp"), (b"r", None, b"gp")]


def test_dht_queries_start_with_the_bencoded_id_argument(packets):
    first = bytes(packets["bittorrent-dht-kp-china-netcom-out"][0][UDP].payload)
    assert first.startswith(b"d1:ad2:id20:")


def test_tracker_announce_carries_the_sample_info_hash_and_gets_a_bencoded_peer_list(packets):
    (flow,) = tcp_flows(packets["bittorrent-tracker-kp-satgate-out"])
    uri = flow.stream(True).split(b" ")[1].decode("ascii")
    query = parse_qs(urlsplit(uri).query)
    raw_hash = unquote_to_bytes(urlsplit(uri).query.split("info_hash=")[1].split("&")[0])
    reply = bdecode(flow.stream(False).partition(b"\r\n\r\n")[2])
    assert (urlsplit(uri).path, raw_hash, query["port"], len(reply[b"peers"]) % 6) == (
        "/announce", bt_info_hash(), [str(pcaps.BT_PORT)], 0
    )


def test_torrent_download_is_served_as_application_x_bittorrent_with_valid_metainfo(packets):
    (flow,) = tcp_flows(packets["bittorrent-torrent-file-kp-star-jv-out"])
    head, _, body = flow.stream(False).partition(b"\r\n\r\n")
    info = bdecode(body)[b"info"]
    pieces_ok = len(info[b"pieces"]) == 20 * -(-info[b"length"] // info[b"piece length"])
    assert b"Content-Type: application/x-bittorrent" in head.split(b"\r\n") and pieces_ok


# -- scenario catalogue and command line ------------------------------------------------------


def test_negative_scenarios_expect_nothing_but_their_range_labels():
    leaks = {n: s.expect for n, s in pcaps.SCENARIOS.items() if s.negative and any(
        not e.startswith("nk:") for e in s.expect)}
    assert leaks == {}


def test_weak_tls_between_outside_hosts_is_described_but_not_expected():
    rc4 = pcaps.SCENARIOS["tls10-rc4-outside"]
    assert ("tls:weak-cipher" in rc4.traffic, rc4.expect) == (True, frozenset())


def test_unwritable_output_directory_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["pcaps", "--out", str(blocker / "sub"), "--scenario", "http-kp-satgate-in"])
    assert (code, capsys.readouterr().err.count("\n")) == (2, 1)


def test_unknown_scenario_is_a_one_line_error_listing_valid_names_and_writes_nothing(tmp_path, capsys):
    code = main(["pcaps", "--out", str(tmp_path), "--scenario", "tls12-good-kp-star-jv-out",
                 "--scenario", "no-such\nscenario\x1b[2J"])
    err = capsys.readouterr().err
    assert (code, err.count("\n"), "http-kp-star-jv-out" in err, list(tmp_path.iterdir())) == (2, 1, True, [])


def test_scenario_option_writes_only_the_named_pcaps_and_the_test_ca_script(tmp_path):
    main(["pcaps", "--out", str(tmp_path), "--scenario", "http-kp-satgate-in"])
    # And the manifest of what sensor-plugins wrote there (tests/scenarios/test_pcaps_out.py).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["http-kp-satgate-in.pcap", pcaps.TRUST_CA_ZEEK, ".sensor-plugins.manifest"])


def test_the_test_ca_script_trusts_exactly_the_scenarios_root_certificate():
    from cryptography.hazmat.primitives.serialization import Encoding

    der = pcaps.root_ca()[0].public_bytes(Encoding.DER)
    literal = re.search(r'\] = "((?:\\x[0-9a-f]{2})+)" \}', pcaps.trust_ca_zeek()).group(1)
    assert bytes.fromhex(literal.replace("\\x", "")) == der


def test_list_prints_one_line_per_scenario(capsys):
    main(["pcaps", "--list"])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(pcaps.SCENARIOS)
