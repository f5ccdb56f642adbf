"""The Suricata renderer: ET-style rules, the NK_NETS vars file and the Tor datasets.

Rules that look at NK_NETS traffic carry the catalogue's networks written out in their
header, as ET Open writes its address lists, not ``$NK_NETS``: they load whatever the
site's ``vars`` say, and a catalogue change raises the rev of exactly the rules whose
list changed. The vars file still defines ``NK_NETS`` for a site's own rules.

Every rule is built from a ``RuleSpec`` whose detection options are fixed text in this
module; what comes from the catalogue or a feed (range names, CIDRs, dates, owners,
addresses) passes through a validating or escaping filter before it reaches a rule, a
comment or a dataset file. A value that cannot be made safe stops the render with a
one-line error instead of producing a rule that means something else.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.content import Rendered, SensorContent
from sensor_plugins.generate.sids import SidRegistry
from sensor_plugins.generate.templating import environment
from sensor_plugins.inputs.catalogue import CONFIDENCES, COUNTRY_RE, NAME_RE, Catalogue, Range
from sensor_plugins.inputs.feeds import ROLES, TorList

# The rules directory's file names are the runner's contract with what it loads; the renderer
# writes to them, so generate and the sensors agree on one spelling.
from sensor_plugins.runners.suricata import BITTORRENT_ALL_RULES, MAIN_RULES, VARS_FILE, yaml_string

SID_MAP = "sid-map.json"
# What a rules directory holds. "full" is every rule. "ranges" is only the IP-only range
# tags, for sensors that must stay near the cost of no rules: in B5 every rule that looks
# inside TCP cost Suricata more than 5% over none, while the range rules alone kept 0.985
# (docs/BENCHMARKS.md). Sids come from one registry of every rule whatever the profile, so
# the same rule has the same sid in both, and switching profile retires nothing.
PROFILES = ("full", "ranges")
DEFAULT_PROFILE = "full"
PROFILE_LINE_RE = re.compile(r"^# Profile: ([a-z]+)\b", re.M)
MSG_PREFIX = "NKSENSOR"
# Thresholds hold a chatty conversation to one alert per host and window, as ET's IP rules do.
THRESHOLD_SECONDS = 300
# The host a per-host limit counts is the one the alert names as its target.
TARGET_BY_TRACK = {"by_src": "src_ip", "by_dst": "dest_ip"}


def host_limit(track: str) -> str:
    """One alert per host (``by_src`` or ``by_dst``) and THRESHOLD_SECONDS window."""
    return f"type limit, track {track}, count 1, seconds {THRESHOLD_SECONDS}"
# Header address tokens a RuleSpec may use besides a validated network or list of them.
HEADER_WORDS = frozenset({"any"})
# Suricata reads a rules file line by line into a buffer of 8192 bytes (DETECT_MAX_RULE_SIZE
# in 7.0), and a longer rule fails to load: 8191 bytes and the newline is the most a rule
# can be (measured with suricata -T on 7.0.10).
MAX_RULE_BYTES = 8191
# The part of a rule an NK_NETS address list may take. The longest rule without its list is
# under 700 bytes; a catalogue whose list is longer is split over several rules (nk_nets).
NETS_BUDGET = 6000
SEVERITY_BY_CONFIDENCE = {"high": "Major", "medium": "Minor", "low": "Informational"}
# A self-signed certificate names itself as issuer: the DER of the issuer Name (before the
# validity) and of the subject Name (after it) are the same bytes. Suricata 7 has no keyword
# comparing two buffers and Lua rules are off by default, so a pcre back-reference over the
# certificate does it; validity is two UTCTime or GeneralizedTime values.
# The captured issuer must open the way every non-empty DER Name does (SEQUENCE, then the
# first RDN's SET, then its AttributeTypeAndValue SEQUENCE and OID), so the lazy scan for the
# validity starts at the issuer and subject only, not at every 0x30 byte of the certificate:
# it matches the same certificates (tests/generate/test_suricata_self_signed.py) at a tenth of the cost.
# ET's style (suricata-check S121/S123) wants no ":" and no escape other than hex and the
# character classes in a pcre, so the groups are plain capturing ones, not "(?:", and the
# issuer is a named group matched again with "(?P=issuer)", not "\1".
_TIME = r"(\x17\x0d[0-9]{12}Z|\x18\x0f[0-9]{14}Z)"
_DER_LEN = r"([\x00-\x7f]|\x81[\s\S]|\x82[\s\S]{2})"
_SHORT_DER_LEN = r"([\x00-\x7f]|\x81[\s\S])"
_NAME = r"\x30" + _DER_LEN + r"\x31" + _SHORT_DER_LEN + r"\x30" + _SHORT_DER_LEN + r"\x06[\s\S]{0,400}?"
SELF_SIGNED_PCRE = r"/(?P<issuer>" + _NAME + r")\x30[\x1e\x20\x22]" + _TIME + _TIME + r"(?P=issuer)\x30/"


class SuricataRenderError(SensorPluginsError):
    """Catalogue or feed content that cannot be turned into a safe rule."""


@dataclass(frozen=True)
class NetList:
    """The NK_NETS networks (or one part of them) written out in a rule header."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@dataclass(frozen=True)
class RuleSpec:
    """One rule before it has a sid: header, message, detection options and ET metadata."""

    key: str
    proto: str
    src: Any
    arrow: str
    dst: Any
    msg: str
    options: tuple[str, ...]
    classtype: str
    severity: str
    src_port: str = "any"
    dst_port: str = "any"
    threshold: str = ""
    target: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    comment: str = ""
    performance_impact: str = "Low"
    attack_target: str = "Any"


@dataclass
class Section:
    title: str
    notes: tuple[str, ...] = ()
    specs: list[RuleSpec] = field(default_factory=list)
    rules: list[RenderedRule] = field(default_factory=list)
    # The profiles whose rules files hold this section.
    profiles: tuple[str, ...] = ("full",)


@dataclass(frozen=True)
class RenderedRule:
    key: str
    text: str
    comment: str


# -- filters ----------------------------------------------------------------------------


def escape_msg(text: Any) -> str:
    """A ``msg`` value: printable ASCII only, with Suricata's special characters escaped."""
    if not isinstance(text, str):
        raise SuricataRenderError(f"rule message must be text, got {type(text).__name__}")
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return re.sub(r'([\\";])', r"\\\1", printable)


def metadata_value(value: Any) -> str:
    """A metadata value: Suricata splits metadata on ``,`` and ends the option at ``;``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(value)) or "_"


def header_address(value: Any) -> str:
    """A rule-header address: a validated network, or one of the fixed words."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, NetList) and value.networks:
        return "[" + ",".join(header_address(n) for n in value.networks) + "]"
    if isinstance(value, str) and value in HEADER_WORDS:
        return value
    raise SuricataRenderError(f"not a network or address group for a rule header: {str(value)[:60]!r}")


def comment_text(value: Any) -> str:
    """A single comment line: no character that could end the comment or the line."""
    text = "".join(c if c.isprintable() and c not in "\u2028\u2029\x85" else "?" for c in str(value))
    return text[:200]


@functools.cache
def _environment():
    return environment(
        "suricata",
        filters={
            "msg": escape_msg,
            "meta": metadata_value,
            "addr": header_address,
            "comment": comment_text,
            "yaml_str": yaml_string,
        },
    )


# -- validation of what the loaders normally guarantee --------------------------------------


def checked_range(r: Range, where: str) -> Range:
    """The range, if every field a rule uses is what the catalogue loader would have allowed."""
    label = f"{where}: range {str(r.name)[:40]!r}"
    if not isinstance(r.name, str) or not NAME_RE.fullmatch(r.name):
        raise SuricataRenderError(f"{label}: name must match [a-z0-9-]{{1,40}}")
    if not isinstance(r.cidr, ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise SuricataRenderError(f"{label}: cidr must be a network, got {str(r.cidr)[:60]!r}")
    if r.confidence not in CONFIDENCES:
        raise SuricataRenderError(f"{label}: confidence must be one of {', '.join(CONFIDENCES)}")
    if not isinstance(r.country, str) or not COUNTRY_RE.fullmatch(r.country):
        raise SuricataRenderError(f"{label}: country must be a two-letter code")
    for name in ("first_seen", "last_seen"):
        value = getattr(r, name)
        if value is not None and not isinstance(value, dt.date):
            raise SuricataRenderError(f"{label}: {name} must be a date")
    return r


def dataset_lines(tor: TorList, role: str) -> list[str]:
    """Canonical addresses of ``role`` for a ``type ip`` dataset file, IPv4 first, in numeric order."""
    addresses = []
    for entry in tor.entries.values():
        if entry.role not in ROLES:
            raise SuricataRenderError(f"Tor list: entry {str(entry.address)[:60]!r} has unknown role "
                                      f"{str(entry.role)[:20]!r}")
        if entry.role != role:
            continue
        try:
            addresses.append(ipaddress.ip_address(str(entry.address).strip()))
        except ValueError as exc:
            raise SuricataRenderError(
                f"Tor list: {role} entry {str(entry.address)[:60]!r} is not an IP address"
            ) from exc
    return [str(a) for a in sorted(addresses, key=lambda a: (a.version, int(a)))]


# -- rule catalogue ---------------------------------------------------------------------


def nk_nets(ranges: Sequence[Range]) -> tuple[NetList, ...]:
    """The catalogue's networks for rule headers: merged, IPv4 first, in address order, in parts.

    Merging adjacent and nested networks keeps the address set, so what matches, and makes a
    rule's text (and rev) follow that set rather than how the catalogue names or orders its
    ranges. A list longer than NETS_BUDGET is cut into parts, each the header of its own rule:
    the parts do not overlap, so a host is in one part and raises the alerts one list raised.
    """
    networks = [*ipaddress.collapse_addresses(r.cidr for r in ranges if r.cidr.version == 4),
                *ipaddress.collapse_addresses(r.cidr for r in ranges if r.cidr.version == 6)]
    parts: list[NetList] = []
    current: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    size = len("[]")
    for net in networks:
        width = len(str(net)) + len(",")
        if current and size + width > NETS_BUDGET:
            parts.append(NetList(tuple(current)))
            current, size = [], len("[]")
        current.append(net)
        size += width
    return (*parts, NetList(tuple(current)))


def part_key(key: str, index: int) -> str:
    # The first part keeps the key (and sid) a rule had before its list was ever split.
    return key if index == 0 else f"{key}:nets{index + 1}"


def for_each_part(nets: Sequence[NetList], build: Callable[[NetList], list[RuleSpec]]) -> list[RuleSpec]:
    """The rules ``build`` makes for each part of the NK_NETS list, keyed apart."""
    return [replace(spec, key=part_key(spec.key, index))
            for index, part in enumerate(nets) for spec in build(part)]


def ruledate(value: dt.date) -> str:
    return value.strftime("%Y_%m_%d")


def range_rules(r: Range) -> list[RuleSpec]:
    """Two IP-only rules per range: packets to it, and packets from it."""
    historical = f", historical, last seen {r.last_seen.isoformat()}" if r.last_seen else ""
    meta = [("nk_confidence", r.confidence), ("nk_range", r.name)]
    if r.first_seen:
        meta.append(("nk_first_seen", ruledate(r.first_seen)))
    if r.last_seen:
        meta.append(("nk_last_seen", ruledate(r.last_seen)))
    common = dict(
        proto="ip", classtype="policy-violation", severity=SEVERITY_BY_CONFIDENCE[r.confidence],
        options=(), metadata=tuple(meta), comment=f"{r.name}: {r.owner} (source: {r.source})",
    )
    return [
        RuleSpec(
            key=f"range:{r.name}:to-range", src="any", arrow="->", dst=r.cidr,
            msg=f"{MSG_PREFIX} POLICY Traffic to {r.country} network {r.name} {r.cidr}{historical}",
            threshold=host_limit("by_src"), target=TARGET_BY_TRACK["by_src"], **common,
        ),
        RuleSpec(
            key=f"range:{r.name}:from-range", src=r.cidr, arrow="->", dst="any",
            msg=f"{MSG_PREFIX} POLICY Traffic from {r.country} network {r.name} {r.cidr}{historical}",
            threshold=host_limit("by_dst"), target=TARGET_BY_TRACK["by_dst"], **common,
        ),
    ]


# (key, label, severity, detection, whether it reads the reassembled stream only). Every TLS
# rule has a fast pattern: a keyword without one (ssl_version, tls_cert_expired) is tried on
# every server packet of every TLS session, NK or not, which on a sensor running ET Open cost
# more than all our other TLS rules together (docs/BENCHMARKS.md, B5). SSLv3 to TLS 1.1 are
# read from the JA3S string, whose first field is the ServerHello version in decimal (TLS 1.3
# servers put 771 there, as TLS 1.2 does).
# JA3S does not cover SSLv2, so its SERVER-HELLO is matched as bytes at the start of the
# server's stream: a two-byte record header with the high bit set, message type 4, the
# session-id-hit and certificate-type bytes, then server version 0x0002. The version is the
# one content, so the fast pattern is held to its offset; the header bit and the message type
# are byte tests. only_stream gives one alert per session, where the packet and the
# reassembled stream would each raise one.
SSLV2_SERVER_HELLO = ('content:"|00 02|"; offset:5; depth:2', "byte_test:1,&,0x80,0", "byte_test:1,=,4,2")
TLS_VERSIONS = (
    ("sslv2", "SSLv2", "Major", SSLV2_SERVER_HELLO, True),
    ("sslv3", "SSLv3", "Major", ("ja3s.string", 'content:"768,"; startswith'), False),
    ("tls1.0", "TLS 1.0", "Minor", ("ja3s.string", 'content:"769,"; startswith'), False),
    ("tls1.1", "TLS 1.1", "Minor", ("ja3s.string", 'content:"770,"; startswith'), False),
)
WEAK_CIPHER_LABELS = {
    "null": ("NULL encryption", "Major"),
    "export": ("EXPORT grade", "Major"),
    "anon": ("anonymous key exchange", "Major"),
    "rc4": ("RC4", "Minor"),
    "des": ("single DES", "Minor"),
    "3des": ("3DES", "Minor"),
}


@functools.cache
def weak_cipher_suites() -> dict[str, tuple[tuple[int, str], ...]]:
    """The weakness classes and their (code, IANA name) suites, from the shipped table."""
    path = resources.files("sensor_plugins") / "data" / "suricata" / "weak-cipher-suites.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {cls: tuple((int(code), str(name)) for code, name in doc[cls]) for cls in WEAK_CIPHER_LABELS}


# Who opened the connection, for rules that name an NK_NETS host and another party. Each
# such rule comes in two, one per opener, so that its message says who called whom:
# "opened by NK_NETS host" or "opened to NK_NETS host". The rule where the NK_NETS host is
# the opener keeps the key (and sid) the undivided rule had; the other adds ":to-nk".
OPENED_BY = {True: "opened by NK_NETS host", False: "opened to NK_NETS host"}
SENT_BY = {True: "sent by NK_NETS host", False: "sent to NK_NETS host"}


def side_key(key: str, nk_opened: bool) -> str:
    return key if nk_opened else f"{key}:to-nk"


@dataclass(frozen=True)
class NkSide:
    """The header of a rule that sees one direction of a connection with an NK_NETS host.

    ``to_server`` says which direction the rule inspects (the opener's packets, or the
    answer); the alert's target and its per-host limit are always the NK_NETS host.
    """

    src: NetList | str
    dst: NetList | str
    track: str

    @property
    def target(self) -> str:
        return TARGET_BY_TRACK[self.track]

    @property
    def nk_is_src(self) -> bool:
        return self.track == "by_src"


def nk_side(nets: NetList, nk_opened: bool, to_server: bool) -> NkSide:
    if nk_opened == to_server:
        return NkSide(nets, "any", "by_src")
    return NkSide("any", nets, "by_dst")


def tls_rule(key: str, nets: NetList, nk_opened: bool, msg: str, options: tuple[str, ...],
             stream_only: bool = False, **kw: Any) -> RuleSpec:
    # to_client: what the server chose and sent, not what the client offered.
    side = nk_side(nets, nk_opened, to_server=False)
    flow = f"flow:established,to_client{',only_stream' if stream_only else ''}"
    return RuleSpec(
        key=side_key(key, nk_opened), proto="tls", src=side.src, arrow="->", dst=side.dst,
        msg=f"{MSG_PREFIX} TLS {msg} {OPENED_BY[nk_opened]}",
        options=(flow, *options), target=side.target, **kw,
    )


def tls_rules(nets: NetList) -> list[RuleSpec]:
    """Weak TLS on sessions with ``nets``: one rule for each side the NK_NETS host can be."""
    specs = []
    for nk_opened in (True, False):
        for keyword, label, severity, detection, stream_only in TLS_VERSIONS:
            specs.append(tls_rule(f"tls:{keyword.replace('.', '')}", nets, nk_opened, f"{label} session", detection,
                                  stream_only=stream_only, classtype="policy-violation", severity=severity))
        for cls, suites in weak_cipher_suites().items():
            label, severity = WEAK_CIPHER_LABELS[cls]
            codes = "|".join(str(code) for code, _name in suites)
            # JA3S is "version,cipher,extensions" with the server's cipher in decimal.
            specs.append(tls_rule(
                f"tls:cipher-{cls}", nets, nk_opened, f"{label} cipher suite chosen in session",
                ("ja3s.string", 'content:","', f'pcre:"/^[0-9]+,({codes}),/"'),
                classtype="policy-violation", severity=severity,
                comment=f"{cls}: {len(suites)} suites, e.g. {suites[0][1]}",
            ))
        specs.append(tls_rule(
            "tls:cert-expired", nets, nk_opened, "Expired server certificate in session",
            # Every DER certificate starts with a SEQUENCE (0x30): the byte is the fast pattern
            # that has the rule tried once per certificate, not on every server packet.
            ("tls.certs", 'content:"|30|"; startswith', "tls_cert_expired"),
            classtype="bad-unknown", severity="Minor",
            comment="Compared with the packet time, so replayed captures are judged as of their own date.",
        ))
        specs.append(tls_rule(
            "tls:cert-self-signed", nets, nk_opened, "Self-signed server certificate in session",
            ("tls.cert_chain_len:1", "tls.certs", 'content:"|30|"', f'pcre:"{SELF_SIGNED_PCRE}"'),
            classtype="bad-unknown", severity="Minor", performance_impact="Moderate",
            comment="A lone certificate whose issuer and subject are the same DER bytes; "
                    "a self-signed leaf sent with more certificates is not seen.",
        ))
    return specs


TOR_LABELS = {"exit": "Tor exit", "relay": "non-exit Tor relay"}


def dataset_option(role: str) -> str:
    # A relative load path resolves against the rules file's own directory, so the rules
    # directory works wherever it is installed; a missing file fails the load, loudly.
    return f"dataset:isset,nksensor-tor-{role},type ip,load nksensor-tor-{role}.lst"


# Tor speaks TCP only. The opening handshake is enough to see who called whom, and the
# alert limit keeps one alert per host and period anyway; looking the address up on every
# NK_NETS packet cost close to a fifth of everything the rules add to a replay
# (docs/BENCHMARKS.md, B5). The caller's SYN and the called side's SYN-ACK each have a rule,
# so a sensor that sees one direction of the connection only still sees it; CWR and ECE
# are ignored, since an ECN-capable stack sets them on both. The price: a connection
# already open when Suricata starts is not seen here (Zeek's conn.log still is).
# (key suffix, flags, who opened it: the NK_NETS host or the listed address, which packet)
TOR_PACKETS = (
    ("to-tor", "flags:S,CE", True, "SYN"),
    ("to-tor-synack", "flags:SA,CE", True, "SYN-ACK"),
    ("from-tor", "flags:S,CE", False, "SYN"),
    ("from-tor-synack", "flags:SA,CE", False, "SYN-ACK"),
)


def tor_rules(nets: NetList) -> list[RuleSpec]:
    specs = []
    for role in ROLES:
        label = TOR_LABELS[role]
        for suffix, flags, nk_opened, packet in TOR_PACKETS:
            side = nk_side(nets, nk_opened, to_server=packet == "SYN")
            # The listed address is the end that is not the NK_NETS host.
            tor_end = "ip.dst" if side.nk_is_src else "ip.src"
            who = (f"NK_NETS host opened a connection to listed {label}" if nk_opened
                   else f"Listed {label} opened a connection to NK_NETS host")
            specs.append(RuleSpec(
                key=f"tor:{role}:{suffix}", proto="tcp", src=side.src, arrow="->", dst=side.dst,
                msg=f"{MSG_PREFIX} TOR {who} ({packet})",
                options=(flags, tor_end, dataset_option(role)),
                threshold=host_limit(side.track), target=side.target,
                classtype="policy-violation", severity="Major", metadata=(("tor_role", role),),
            ))
    return specs


@dataclass(frozen=True)
class BitTorrentDetection:
    key: str
    proto: str
    what: str
    options: tuple[str, ...]
    # Whether the rule sees the opener's packets (a query counts as the sender's opening).
    to_server: bool
    # Whether one alert per host and period is enough.
    limited: bool
    # "opened" for a connection, "sent" for a datagram.
    verb: str = "opened"


DHT_QUERY = 'content:"d1|3a|ad2|3a|id20|3a|"; depth:12'
GET_PEERS = '"1|3a|q9|3a|get_peers"'
ANNOUNCE_PEER = '"1|3a|q13|3a|announce_peer"'
BITTORRENT_DETECTIONS = (
    # Swarm traffic is limited per host: a swarm repeats handshakes, DHT queries and
    # downloads thousands of times, and one alert per host and period is the evidence
    # an analyst needs. A client announces to a tracker only every 15-30 minutes per
    # torrent, so announces never flood and stay unlimited.
    # Both peers send the handshake; the initiator's (to_server) is the one alert per
    # connection, where the reply raised a second one keyed on the other peer.
    BitTorrentDetection("handshake", "tcp", "peer handshake",
                        ("flow:established,to_server", 'content:"|13|BitTorrent|20|protocol"', "depth:20"),
                        to_server=True, limited=True),
    # One alert per query, from the most specific rule: the generic rule leaves the
    # get_peers and announce_peer queries to their own rules. The query prefix is its
    # fast pattern, since a negated content cannot be one.
    BitTorrentDetection("dht-query", "udp", "DHT query other than get_peers or announce_peer",
                        (f"{DHT_QUERY}; fast_pattern", f"content:!{GET_PEERS}", f"content:!{ANNOUNCE_PEER}"),
                        to_server=True, limited=True, verb="sent"),
    BitTorrentDetection("dht-get-peers", "udp", "DHT get_peers query",
                        (DHT_QUERY, f"content:{GET_PEERS}; distance:0; fast_pattern"),
                        to_server=True, limited=True, verb="sent"),
    BitTorrentDetection("dht-announce-peer", "udp", "DHT announce_peer query",
                        (DHT_QUERY, f"content:{ANNOUNCE_PEER}; distance:0; fast_pattern"),
                        to_server=True, limited=True, verb="sent"),
    BitTorrentDetection("tracker-announce", "http", "tracker announce",
                        ("flow:established,to_server", "http.uri", 'content:"|2f|announce"',
                         'content:"info_hash="; fast_pattern'), to_server=True, limited=False),
    # A metainfo file is a bencoded dict whose first key, sorted, is "announce". The
    # file flows to the client, so the downloader is the destination.
    BitTorrentDetection("torrent-download", "http", ".torrent file download",
                        ("flow:established,to_client", "file.data", 'content:"d8|3a|announce"; startswith'),
                        to_server=False, limited=True),
)


def bittorrent_nk_rule(d: BitTorrentDetection, nets: NetList, nk_opened: bool) -> RuleSpec:
    """``d`` on traffic with ``nets``, where the NK_NETS host opened the connection (or sent the query) or not."""
    side = nk_side(nets, nk_opened, d.to_server)
    phrase = SENT_BY[nk_opened] if d.verb == "sent" else f"in connection {OPENED_BY[nk_opened]}"
    return RuleSpec(
        key=side_key(f"bittorrent:{d.key}", nk_opened), proto=d.proto, src=side.src, arrow="->", dst=side.dst,
        msg=f"{MSG_PREFIX} P2P BitTorrent {d.what} {phrase}", options=d.options,
        threshold=host_limit(side.track) if d.limited else "", target=side.target,
        classtype="policy-violation", severity="Minor",
    )


def bittorrent_everywhere_rule(d: BitTorrentDetection) -> RuleSpec:
    """``d`` between any hosts; the target is the host running BitTorrent, the one the limit counts."""
    track = "by_src" if d.to_server else "by_dst"
    return RuleSpec(
        key=f"bittorrent-all:{d.key}", proto=d.proto, src="any", arrow="->", dst="any",
        msg=f"{MSG_PREFIX} P2P BitTorrent {d.what}", options=d.options,
        threshold=host_limit(track) if d.limited else "", target=TARGET_BY_TRACK[track],
        classtype="policy-violation", severity="Informational",
    )


def bittorrent_rules(nets: NetList) -> list[RuleSpec]:
    """BitTorrent on traffic with ``nets``."""
    return [bittorrent_nk_rule(d, nets, nk_opened) for nk_opened in (True, False) for d in BITTORRENT_DETECTIONS]


def bittorrent_everywhere_rules() -> list[RuleSpec]:
    """BitTorrent on any traffic, for the optional file."""
    return [bittorrent_everywhere_rule(d) for d in BITTORRENT_DETECTIONS]


# -- rendering ------------------------------------------------------------------------------


def metadata_for(spec: RuleSpec, created: str, updated: str) -> list[tuple[str, str]]:
    """ET's metadata keys plus the spec's own, sorted by key as ET writes them."""
    pairs = [
        ("affected_product", "Any"),
        ("attack_target", spec.attack_target),
        ("created_at", created),
        ("deployment", "Perimeter"),
        ("performance_impact", spec.performance_impact),
        ("signature_severity", spec.severity),
        ("updated_at", updated),
        *spec.metadata,
    ]
    return sorted(pairs)


def rule_text(spec: RuleSpec, sid: int, rev: int, created: str, updated: str) -> str:
    template = _environment().get_template("rule.j2")
    text = template.render(r=spec, sid=sid, rev=rev, metadata=metadata_for(spec, created, updated)).strip()
    if len(text.encode("utf-8")) > MAX_RULE_BYTES:
        # NETS_BUDGET keeps every rule below the limit; this is the check that it does.
        raise SuricataRenderError(f"rule {spec.key}: {len(text.encode('utf-8'))} bytes, more than the "
                                  f"{MAX_RULE_BYTES} Suricata reads as one rule")
    return text


def assign_rules(registry: SidRegistry, sections: list[Section], date: dt.date) -> None:
    for section in sections:
        for spec in section.specs:
            # The digest covers everything but sid, rev and the dates, which follow from it.
            assignment = registry.assign(spec.key, rule_text(spec, 0, 0, "-", "-"), date)
            text = rule_text(spec, assignment.sid, assignment.rev,
                             ruledate(assignment.created_at), ruledate(assignment.updated_at))
            section.rules.append(RenderedRule(spec.key, text, spec.comment))


def main_sections(catalogue: Catalogue) -> list[Section]:
    ranges = [checked_range(r, catalogue.path) for r in catalogue.ranges]
    nets = nk_nets(ranges)
    return [
        Section("Traffic to and from each catalogued range (IP-only, thresholded per host)",
                ("Both rules of a range fire on a two-way conversation; a one-way flow raises one.",
                 "They say which way packets went, not who opened the connection: IP-only rules cannot",
                 "know that, and IP-only is what keeps them near no-rule cost.",),
                [spec for r in ranges for spec in range_rules(r)], profiles=PROFILES),
        Section("Weak TLS on NK_NETS sessions", (
            "Versions and ciphers are the server's choice, read from the JA3S string (SSLv2: its SERVER-HELLO).",
            "Each check has a rule for sessions opened by an NK_NETS host (it is the client) and one",
            "for sessions opened to it (it is the server); the alert's target is the NK_NETS host.",
        ), for_each_part(nets, tls_rules)),
        Section("Tor relays and exits talking to NK_NETS", (
            "Addresses live in the datasets nksensor-tor-exit.lst and nksensor-tor-relay.lst next to",
            "this file; add one live with: suricatasc -c 'dataset-add nksensor-tor-exit ip 192.0.2.1'",
        ), for_each_part(nets, tor_rules)),
        Section("BitTorrent on NK_NETS traffic", (
            "One rule for connections opened (queries sent) by an NK_NETS host, one for those opened",
            "(sent) to it; the alert's target is the NK_NETS host.",
        ), for_each_part(nets, bittorrent_rules)),
    ]


def bittorrent_all_sections() -> list[Section]:
    return [Section("BitTorrent on any traffic (optional, not enabled by default)", (
        f"To enable, add {BITTORRENT_ALL_RULES} to rule-files in suricata.yaml next to {MAIN_RULES},",
        "or pass --bittorrent-everywhere to `sensor-plugins replay`.",
    ), bittorrent_everywhere_rules())]


def rules_file(title: str, preamble: list[str], sections: list[Section], version: int, date: dt.date) -> str:
    return _environment().get_template("rules.j2").render(
        title=title, preamble=preamble, sections=sections, version=version, content_date=date.isoformat(),
    )


def vars_file(catalogue: Catalogue) -> str:
    ranges = [checked_range(r, catalogue.path) for r in catalogue.ranges]
    nk_nets = "[" + ",".join(header_address(r.cidr) for r in ranges) + "]"
    return _environment().get_template("vars.yaml.j2").render(ranges=ranges, nk_nets=nk_nets)


def dataset_files(tor: TorList) -> dict[str, str]:
    files = {}
    for role in ROLES:
        lines = dataset_lines(tor, role)
        files[f"nksensor-tor-{role}.lst"] = "".join(f"{line}\n" for line in lines)
    return files


def rules_profile(rules_text: str) -> str:
    """The profile a generated main rules file was written for.

    Files written before profiles existed carry no profile line and hold every rule.
    """
    found = PROFILE_LINE_RE.search(rules_text)
    return found.group(1) if found else DEFAULT_PROFILE


def profile_line(profile: str) -> str:
    if profile == "ranges":
        return "Profile: ranges (only the IP-only rules of the catalogued ranges; `generate --profile ranges`)"
    return "Profile: full (every rule; `generate --profile ranges` writes the range rules only)"


class SuricataRenderer:
    """Renders ``suricata_rules/``: the rules files, vars, datasets and the sid registry."""

    name = "suricata"

    def __init__(self, profile: str = DEFAULT_PROFILE) -> None:
        if profile not in PROFILES:
            raise SuricataRenderError(f"unknown rules profile {profile[:20]!r}; one of {', '.join(PROFILES)}")
        self.profile = profile

    def render(self, content: SensorContent, previous: Path | None) -> Rendered:
        catalogue = content.catalogue
        registry = (
            SidRegistry.load(previous / SID_MAP, catalogue.sid_block)
            if previous is not None else SidRegistry(block=catalogue.sid_block)
        )
        # Sections first: they validate the ranges that content_date reads.
        main, optional = main_sections(catalogue), bittorrent_all_sections()
        date = content.content_date
        assign_rules(registry, main, date)
        assign_rules(registry, optional, date)
        summary = registry.finish()
        preamble = [f"Catalogue: {catalogue.description}"] if catalogue.description else []
        title = "sensor-plugins Suricata rules: "
        if self.profile == "ranges":
            # Only the range section: no dataset, no optional file, nothing but IP-only rules.
            files = {
                MAIN_RULES: rules_file(title + "North Korean networks (ranges only)",
                                       [*preamble, profile_line(self.profile)],
                                       [s for s in main if self.profile in s.profiles], summary.version, date),
                VARS_FILE: vars_file(catalogue),
                SID_MAP: registry.to_json(),
            }
            return Rendered(files=files, summary=[f"suricata ({self.profile}): {line}" for line in summary.lines()])
        preamble += [f"Tor feed: {feed.name} ({feed.format}, fetched {feed.fetched.isoformat()})"
                     for feed in content.tor.feeds]
        preamble.append("NK_NETS: the catalogue's networks, written into each rule header (split over :netsN rules "
                        "past one rule line); nksensor-vars.yaml defines $NK_NETS for a site's own rules.")
        preamble.append(profile_line(self.profile))
        files = {
            MAIN_RULES: rules_file(title + "North Korean networks, weak TLS, Tor, BitTorrent",
                                   preamble, main, summary.version, date),
            BITTORRENT_ALL_RULES: rules_file(title + "BitTorrent everywhere (optional)",
                                             [], optional, summary.version, date),
            VARS_FILE: vars_file(catalogue),
            SID_MAP: registry.to_json(),
            **dataset_files(content.tor),
        }
        return Rendered(files=files, summary=[f"suricata: {line}" for line in summary.lines()])
