"""The shipped signature file and regular expressions, checked against real and built payloads."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.zeek import render
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import TorList

FIXTURES = Path(__file__).parent / "fixtures"

ZEEK_FIXTURES = FIXTURES / "zeek"

# Zeek's signature language, one condition or action a line.
CONDITION_RES = (
    re.compile(r"ip-proto == (tcp|udp|icmp)"),
    re.compile(r"payload /(?P<regex>(?:[^/\\]|\\.)+)/"),
    re.compile(r"payload-size (==|!=|<|<=|>|>=) \d+"),
    re.compile(r"(tcp|udp)-state (originator|responder|established)"),
    re.compile(r"(src|dst)-port (==|!=|<|<=|>|>=) \d+(,\d+)*"),
    re.compile(r"requires-(reverse-)?signature (?P<requires>[\w-]+)"),
    re.compile(r'enable "(?P<enable>[a-z_]+)"'),
    re.compile(r'event "(?P<event>[^"\\]*)"'),
)


@dataclass
class Signature:
    id: str
    payload: re.Pattern[bytes] | None = None
    requires: list[str] = field(default_factory=list)
    enable: str | None = None
    event: str | None = None
    lines: list[str] = field(default_factory=list)


class SignatureSyntaxError(Exception):
    pass


def parse_signatures(text: str) -> dict[str, Signature]:
    """A small parser for the subset of Zeek's signature language that the package uses."""
    sigs: dict[str, Signature] = {}
    current: Signature | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if current is None:
            head = re.fullmatch(r"signature ([\w-]+) \{", line)
            if not head or head.group(1) in sigs:
                raise SignatureSyntaxError(f"line {lineno}: expected a new 'signature <id> {{': {line!r}")
            current = sigs[head.group(1)] = Signature(head.group(1))
        elif line == "}":
            if current.payload is None and current.enable is None and not current.requires:
                raise SignatureSyntaxError(f"line {lineno}: signature {current.id} matches nothing")
            current = None
        else:
            match = next((m for r in CONDITION_RES if (m := r.fullmatch(line))), None)
            if match is None:
                raise SignatureSyntaxError(f"line {lineno}: unknown condition {line!r}")
            groups = match.groupdict()
            if groups.get("regex"):
                # Zeek payload regexes are byte patterns anchored at the payload's start.
                current.payload = re.compile(groups["regex"].encode("latin-1"), re.S)
            if groups.get("requires"):
                current.requires.append(groups["requires"])
            current.enable = groups.get("enable") or current.enable
            current.event = groups.get("event") or current.event
            current.lines.append(line)
    if current is not None:
        raise SignatureSyntaxError(f"signature {current.id} is not closed")
    return sigs


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render(SensorContent(load_catalogue(), TorList())).files


@pytest.fixture(scope="module")
def sigs(files: dict[str, str]) -> dict[str, Signature]:
    return parse_signatures(files["bittorrent.sig"])


def matching(sigs: dict[str, Signature], payload: bytes) -> list[str]:
    return [s.id for s in sigs.values() if s.payload is not None and s.payload.match(payload)]


PEER_HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + b"\xe4" * 20 + b"-DE13F0-VnpZRF8ZP9iv"
DHT_PING = b"d1:ad2:id20:" + b"A" * 20 + b"e1:q4:ping1:t2:aa1:y1:qe"
DHT_PONG = b"d1:rd2:id20:" + b"B" * 20 + b"e1:t2:aa1:y1:re"
UTP_SYN = b"\x41\x00" + struct.pack(">HIIIHH", 0x1234, 1, 0, 0x100000, 1, 0)
UDP_TRACKER_CONNECT = struct.pack(">QII", 0x41727101980, 0, 0xCAFE)
TLS_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
HTTP_GET = b"GET /announce?info_hash=abc HTTP/1.1\r\n\r\n"


def test_signature_file_parses(files: dict[str, str]) -> None:
    assert len(parse_signatures(files["bittorrent.sig"])) >= 5


def test_parser_rejects_a_broken_signature() -> None:
    with pytest.raises(SignatureSyntaxError, match="line 3"):
        parse_signatures("signature x {\n  ip-proto == tcp\n  payload /abc/;\n}\n")


def test_peer_wire_signature_enables_zeeks_bittorrent_analyzer_on_tcp(sigs: dict[str, Signature]) -> None:
    enabling = [(s.id, s.enable, "ip-proto == tcp" in s.lines) for s in sigs.values() if s.enable]
    assert enabling == [("nksensor-bittorrent-peer-wire", "bittorrent", True)]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (PEER_HANDSHAKE, ["nksensor-bittorrent-peer-wire"]),
        (DHT_PING, ["nksensor-bittorrent-dht-query"]),
        (DHT_PONG, ["nksensor-bittorrent-dht-response"]),
        (UTP_SYN, ["nksensor-bittorrent-utp-syn"]),
        (b"\x01\x00" + bytes(18) + PEER_HANDSHAKE, ["nksensor-bittorrent-utp-peer-wire"]),
        (UDP_TRACKER_CONNECT, ["nksensor-bittorrent-udp-tracker"]),
        (TLS_CLIENT_HELLO, []),
        (HTTP_GET, []),
    ],
    ids=["peer-wire", "dht-query", "dht-response", "utp-syn", "utp-data", "udp-tracker", "tls", "http"],
)
def test_payload_matches_only_its_own_signature(
    sigs: dict[str, Signature], payload: bytes, expected: list[str]
) -> None:
    assert matching(sigs, payload) == expected


def test_et_open_dht_content_is_what_the_dht_signature_matches(sigs: dict[str, Signature]) -> None:
    # ET Open sid 2008581 looks for content "d1|3a|ad2|3a|id20|3a|" at depth 12.
    assert sigs["nksensor-bittorrent-dht-query"].payload.match(b"d1:ad2:id20:")


def test_every_required_signature_exists(sigs: dict[str, Signature]) -> None:
    assert [r for s in sigs.values() for r in s.requires if r not in sigs] == []


def test_script_turns_exactly_the_event_signatures_into_notices(
    sigs: dict[str, Signature], files: dict[str, str]
) -> None:
    block = re.search(r"const bittorrent_signatures: set\[string\] = \{(.*?)\};", files["bittorrent.zeek"], re.S)
    handled = set(re.findall(r'"([\w-]+)"', block.group(1))) if block else set()
    # The peer-wire signature's event has a handler of its own (the mid-stream fallback).
    handled |= set(re.findall(r'^const peer_wire_signature = "([\w-]+)";$', files["bittorrent.zeek"], re.M))
    assert handled == {s.id for s in sigs.values() if s.event}


def test_generic_signature_notices_are_silenced_for_every_package_signature(
    sigs: dict[str, Signature], files: dict[str, str]
) -> None:
    silenced = set(re.findall(r'\["([\w-]+)"\] = Signatures::SIG_IGNORE', files["bittorrent.zeek"]))
    assert silenced == {s.id for s in sigs.values() if s.event or not s.enable}


def zeek_option_regex(files: dict[str, str], name: str) -> re.Pattern[str]:
    match = re.search(rf"^\toption {name} = /(.*)/;$", files["main.zeek"], re.M)
    assert match, f"option {name} not found"
    return re.compile(match.group(1).replace("\\/", "/"))


def ssl_rows(path: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows


def test_tor_certificate_regexes_find_the_54_tor_handshakes_in_zats_tor_ssl_log(files: dict[str, str]) -> None:
    issuer = zeek_option_regex(files, "tor_cert_issuer_regex")
    subject = zeek_option_regex(files, "tor_cert_subject_regex")
    rows = ssl_rows(ZEEK_FIXTURES / "tor_ssl.log")
    hits = [r for r in rows if issuer.search(r["issuer"]) and subject.search(r["subject"])]
    assert (len(rows), len(hits)) == (733, 54)


def test_tor_certificate_regex_is_anchored_at_both_ends(files: dict[str, str]) -> None:
    subject = zeek_option_regex(files, "tor_cert_subject_regex")
    near_misses = ["CN=www.abcdefgh.net,O=Evil", "OU=x,CN=www.abcdefgh.net", "CN=www.abcdefgh.network"]
    assert [s for s in near_misses if subject.search(s)] == []


def test_unsafe_cipher_regex_flags_every_rc4_suite_in_zats_ssl_log(files: dict[str, str]) -> None:
    unsafe = zeek_option_regex(files, "unsafe_cipher_regex")
    ciphers = {r["cipher"] for r in ssl_rows(ZEEK_FIXTURES / "ssl.log")}
    assert [c for c in ciphers if not unsafe.search(c)] == []


def test_unsafe_cipher_regex_spares_aead_suites_in_zats_tor_ssl_log(files: dict[str, str]) -> None:
    unsafe = zeek_option_regex(files, "unsafe_cipher_regex")
    aead = {r["cipher"] for r in ssl_rows(ZEEK_FIXTURES / "tor_ssl.log") if re.search("GCM|CHACHA20", r["cipher"])}
    assert (len(aead) > 0, [c for c in aead if unsafe.search(c)]) == (True, [])


@pytest.mark.parametrize(
    "cipher",
    ["TLS_RSA_EXPORT_WITH_RC4_40_MD5", "TLS_RSA_WITH_NULL_SHA", "TLS_DH_anon_WITH_AES_128_CBC_SHA",
     "TLS_RSA_WITH_DES_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "SSLv20_CK_DES_192_EDE3_CBC_WITH_MD5",
     "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDH_anon_WITH_NULL_SHA"],
)
def test_unsafe_cipher_regex_covers_each_weak_family(files: dict[str, str], cipher: str) -> None:
    assert zeek_option_regex(files, "unsafe_cipher_regex").search(cipher)


@pytest.mark.parametrize(
    ("sig_alg", "weak"),
    [("md5WithRSAEncryption", True), ("md2WithRSAEncryption", True), ("sha1WithRSAEncryption", True),
     ("dsaWithSHA1", True), ("ecdsa-with-SHA1", True), ("shaWithRSAEncryption", True),
     ("sha256WithRSAEncryption", False), ("ecdsa-with-SHA384", False), ("rsassaPss", False),
     ("ED25519", False)],
)
def test_weak_signature_regex_flags_md5_and_sha1_only(files: dict[str, str], sig_alg: str, weak: bool) -> None:
    assert bool(zeek_option_regex(files, "weak_signature_regex").search(sig_alg)) is weak


def test_tracker_regex_matches_the_announce_in_zeeks_bittorrent_baseline(files: dict[str, str]) -> None:
    baseline = (ZEEK_FIXTURES / "bittorrent-tracker-baseline.txt").read_text(encoding="utf-8")
    uri = re.search(r"(/announce\?\S+),", baseline).group(1)
    assert zeek_option_regex(files, "tracker_announce_regex").search(uri)


def test_tracker_regex_ignores_other_announce_paths(files: dict[str, str]) -> None:
    tracker = zeek_option_regex(files, "tracker_announce_regex")
    assert [u for u in ["/news/announce.html", "/announce?peer_id=x", "/scrape?info_hash=x"]
            if tracker.search(u)] == []
