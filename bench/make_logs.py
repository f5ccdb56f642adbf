"""Synthetic Zeek 7 TSV logs at the scale of a busy tap, for the benchmarks.

    python bench/make_logs.py --rows 1000000 --out bench/out/logs-1m [--seed 1]

Writes conn, dns, http, ssl and x509 logs with the headers and column sets that Zeek 7.0
writes under its ``local`` policy, plus ``manifest.json`` with the counts a correct
analysis must reproduce (catalogue, Tor, BitTorrent and weak-TLS rows).

The shapes follow a tap in front of an office network: mostly outbound connections from
16,000 hosts in 10.0.0.0/8 (a few busy, most quiet; catalogue servers likewise), about 30% of
them (``--catalogue-share``) to or from the catalogue's ranges, a mix of services, some
weak TLS, Tor and BitTorrent at low rates, ``#`` inside URIs and certificate subjects,
Zeek's ``\\xNN`` escapes and plenty of unset (``-``) fields. Rows are built a chunk at a
time with numpy and written by polars, so 10M rows stay within a few hundred MB of RAM.
The output depends only on the seed, the row count and the input lists.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

CHUNK_ROWS = 250_000
LOCAL_HOSTS = 16_000  # desks and servers behind the tap, in 10.0.1.2 upwards
TOR_VIA_CATALOGUE = 0.5
REMOTE_POOL = 256  # hosts of one catalogue range that ever talk to the tap
CATALOGUE_SHARE = 0.30
# Remote hosts outside the catalogue come from these public /8s; none holds a default
# catalogue range, and any hit on a catalogue range or Tor address is re-drawn anyway.
PUBLIC_FIRST_OCTETS = np.array(
    [8, 13, 23, 31, 34, 35, 45, 52, 54, 64, 66, 69, 72, 74, 81, 85, 91, 93, 104, 128,
     142, 151, 157, 162, 185, 198, 203, 208, 213, 216],
    dtype=np.uint32,
)
BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
LOWER = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)


@dataclass(frozen=True)
class Kind:
    """One kind of connection, with the share of conn rows it takes."""

    name: str
    share: float
    proto: str
    ports: tuple[int, ...]
    service: str | None
    sublog: str | None = None  # dns, http or ssl: the protocol log that gets a matching row
    tls: str | None = None  # strong, weak or tor: which certificate pool an ssl row uses
    remote: str = "any"  # any (catalogue ~30% or public) or tor
    inbound: float = 0.1  # share of rows where the remote host opened the connection


KINDS: tuple[Kind, ...] = (
    Kind("dns", 0.22, "udp", (53,), "dns", sublog="dns", inbound=0.0),
    Kind("http", 0.12, "tcp", (80, 80, 80, 8080), "http", sublog="http"),
    Kind("ssl", 0.30, "tcp", (443, 443, 443, 443, 8443, 993), "ssl", sublog="ssl", tls="strong"),
    Kind("ssl_weak", 0.03, "tcp", (443, 443, 993, 465, 8443), "ssl", sublog="ssl", tls="weak"),
    Kind("ssh", 0.03, "tcp", (22,), "ssh", inbound=0.5),
    Kind("smtp", 0.02, "tcp", (25, 587), "smtp", inbound=0.5),
    Kind("other_tcp", 0.08, "tcp", (3389, 5222, 8000, 8888, 1935, 5060), None),
    Kind("ntp", 0.03, "udp", (123,), "ntp", inbound=0.0),
    Kind("other_udp", 0.06, "udp", (1900, 5353, 3478, 19302, 51820, 4500), None),
    Kind("scan", 0.08, "tcp", (22, 23, 445, 3389, 8080, 5900, 1433, 3306), None, inbound=0.9),
    Kind("icmp", 0.017, "icmp", (0,), None),
    Kind("tor_out", 0.004, "tcp", (9001, 443, 9030, 9081), "ssl", sublog="ssl", tls="tor",
         remote="tor", inbound=0.0),
    Kind("tor_in", 0.002, "tcp", (443, 80), "ssl", sublog="ssl", tls="strong", remote="tor", inbound=1.0),
    Kind("bt_peer", 0.005, "tcp", (6881, 6882, 6883, 6885, 6889, 51413), None, inbound=0.3),
    Kind("bt_dht", 0.001, "udp", (6881, 6881, 51413), None, inbound=0.3),
    Kind("bt_tracker", 0.001, "http_tracker", (6969, 80, 2710), "http", sublog="http", inbound=0.0),
)
KIND_INDEX = {k.name: i for i, k in enumerate(KINDS)}

CONN_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
    ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
    ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
    ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
)
DNS_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("trans_id", "count"),
    ("rtt", "interval"), ("query", "string"), ("qclass", "count"), ("qclass_name", "string"),
    ("qtype", "count"), ("qtype_name", "string"), ("rcode", "count"), ("rcode_name", "string"),
    ("AA", "bool"), ("TC", "bool"), ("RD", "bool"), ("RA", "bool"), ("Z", "count"),
    ("answers", "vector[string]"), ("TTLs", "vector[interval]"), ("rejected", "bool"),
)
HTTP_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("trans_depth", "count"), ("method", "string"),
    ("host", "string"), ("uri", "string"), ("referrer", "string"), ("version", "string"),
    ("user_agent", "string"), ("origin", "string"), ("request_body_len", "count"),
    ("response_body_len", "count"), ("status_code", "count"), ("status_msg", "string"),
    ("info_code", "count"), ("info_msg", "string"), ("tags", "set[enum]"), ("username", "string"),
    ("password", "string"), ("proxied", "set[string]"), ("orig_fuids", "vector[string]"),
    ("orig_filenames", "vector[string]"), ("orig_mime_types", "vector[string]"),
    ("resp_fuids", "vector[string]"), ("resp_filenames", "vector[string]"),
    ("resp_mime_types", "vector[string]"),
)
SSL_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("version", "string"), ("cipher", "string"),
    ("curve", "string"), ("server_name", "string"), ("resumed", "bool"), ("last_alert", "string"),
    ("next_protocol", "string"), ("established", "bool"), ("ssl_history", "string"),
    ("cert_chain_fps", "vector[string]"), ("client_cert_chain_fps", "vector[string]"),
    ("sni_matches_cert", "bool"), ("validation_status", "string"),
)
X509_FIELDS = (
    ("ts", "time"), ("fingerprint", "string"), ("certificate.version", "count"),
    ("certificate.serial", "string"), ("certificate.subject", "string"),
    ("certificate.issuer", "string"), ("certificate.not_valid_before", "time"),
    ("certificate.not_valid_after", "time"), ("certificate.key_alg", "string"),
    ("certificate.sig_alg", "string"), ("certificate.key_type", "string"),
    ("certificate.key_length", "count"), ("certificate.exponent", "string"),
    ("certificate.curve", "string"), ("san.dns", "vector[string]"), ("san.uri", "vector[string]"),
    ("san.email", "vector[string]"), ("san.ip", "vector[addr]"), ("basic_constraints.ca", "bool"),
    ("basic_constraints.path_len", "count"), ("host_cert", "bool"), ("client_cert", "bool"),
)
LOG_FIELDS = {"conn": CONN_FIELDS, "dns": DNS_FIELDS, "http": HTTP_FIELDS, "ssl": SSL_FIELDS,
              "x509": X509_FIELDS}

WEB_HOSTS = ("www.example-shop.com", "cdn.mediaserve.net", "api.weatherdata.io", "static.newsportal.org",
             "img.photohost.net", "updates.softvendor.com", "ocsp.certauth.net", "www.videostream.tv")
KP_HOSTS = ("www.naenara.com.kp", "kcna.kp", "rodong.rep.kp", "www.friend.com.kp", "vok.rep.kp",
            "www.star-co.net.kp", "mail.silibank.net.kp", "www.kcckp.net")
URI_PATHS = ("/", "/index.html", "/static/app.js", "/images/logo.png", "/api/v2/items?page=3",
             "/news/2024/02/27/article.html", "/search?q=sensor+plugins", "/favicon.ico",
             "/download/setup.exe", "/css/site.css")
# Clients do send fragments and literal '#'s now and then; a reader that treats '#' as a
# comment anywhere but at the start of a line loses these rows.
HASH_URIS = ("/docs/guide.html#install", "/wiki/Zeek#Logs", "/app/#/dashboard", "/tag/#news",
             "/search?q=%23kp#results")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0",
    "curl/8.5.0",
    "Microsoft-CryptoAPI/10.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    # Zeek writes non-printable bytes as \xNN escapes; a tab in a value arrives as \x09.
    "Scanner\\x09v1.0 \\xe2\\x80\\xae",
)
TRACKER_AGENTS = ("Deluge 1.3.15", "uTorrent/3.6.0", "Transmission/4.0.5", "qBittorrent/4.6.3")
STRONG_TLS = (("TLSv12", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "secp256r1"),
              ("TLSv13", "TLS_AES_256_GCM_SHA384", "x25519"),
              ("TLSv13", "TLS_AES_128_GCM_SHA256", "x25519"),
              ("TLSv12", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "x25519"))
WEAK_TLS = (("TLSv10", "TLS_RSA_WITH_RC4_128_MD5", None),
            ("TLSv10", "TLS_RSA_WITH_RC4_128_SHA", None),
            ("SSLv3", "TLS_RSA_WITH_RC4_128_MD5", None),
            ("TLSv11", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "secp256r1"),
            ("TLSv12", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", None),
            ("TLSv12", "TLS_RSA_EXPORT_WITH_RC4_40_MD5", None))
CA_SUBJECTS = ("CN=R3,O=Let's Encrypt,C=US", "CN=Sectigo RSA Domain Validation Secure Server CA,O=Sectigo Limited,C=GB",
               "CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US",
               "CN=GTS CA 1C3,O=Google Trust Services LLC,C=US",
               "CN=Star JV Root CA #1,O=Star Joint Venture,C=KP")


class MakeLogsError(SensorPluginsError):
    """Inputs the generator cannot use."""


@dataclass
class Manifest:
    """What was written, and the counts a correct analysis must find in it."""

    rows: int
    seed: int
    date: str  # the first day covered
    days: int
    catalogue_ranges: int
    tor_addresses: int
    catalogue_share: float = 0.30  # asked-for share of conn rows to or from the catalogue
    logs: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    catalogue_conn_rows: int = 0
    tor_conn_rows: int = 0
    bittorrent_conn_rows: int = 0
    weak_ssl_rows: int = 0
    tor_style_ssl_rows: int = 0
    hash_uri_rows: int = 0
    hash_subject_rows: int = 0


@dataclass(frozen=True)
class Inputs:
    """The address pools a generator run draws from."""

    cat_starts: np.ndarray  # first address of each IPv4 catalogue range (uint32)
    cat_sizes: np.ndarray
    excl_starts: np.ndarray  # merged catalogue intervals, for rejecting public draws
    excl_ends: np.ndarray
    tor_v4: np.ndarray  # sorted uint32
    tor_v6: tuple[str, ...]
    v6_pool: tuple[str, ...]


def build_inputs(catalogue_path: str | None, tor_paths: Sequence[str] | None) -> Inputs:
    catalogue = load_catalogue(catalogue_path)
    v4 = [r.cidr for r in catalogue.ranges if r.cidr.version == 4]
    if not v4:
        raise MakeLogsError(f"catalogue {catalogue.path}: no IPv4 range to generate catalogue traffic for")
    v4.sort(key=lambda n: int(n.network_address))
    starts = np.array([int(n.network_address) for n in v4], dtype=np.uint64)
    sizes = np.array([n.num_addresses for n in v4], dtype=np.uint64)
    ex_s, ex_e = _merge_intervals(starts, starts + sizes - 1)
    tor = load_tor_list(tor_paths)
    tor_v4 = np.array(sorted(int(ipaddress.IPv4Address(a)) for a in tor.entries if ":" not in a),
                      dtype=np.uint64)
    if tor_v4.size == 0:
        raise MakeLogsError("Tor list: no IPv4 address to generate Tor traffic for")
    tor_v6 = tuple(sorted(a for a in tor.entries if ":" in a))
    v6_nets = [r.cidr for r in catalogue.ranges if r.cidr.version == 6]
    rng = np.random.default_rng(0x6E7)
    pool = []
    for a, b, c in rng.integers(1, 0xFFFF, size=(2048, 3)):
        addr = f"2a0{a % 8 + 1:x}:{b:x}:{c:x}::{(a * b) % 0xFFFF + 1:x}"
        if addr not in tor.entries and not any(ipaddress.ip_address(addr) in n for n in v6_nets):
            pool.append(addr)
    return Inputs(starts, sizes, ex_s, ex_e, tor_v4, tor_v6, tuple(pool))


def _merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    merged: list[list[int]] = []
    for s, e in sorted(zip(starts.tolist(), ends.tolist(), strict=True)):
        if merged and s <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    arr = np.array(merged, dtype=np.uint64)
    return arr[:, 0], arr[:, 1]


def in_intervals(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which values fall in one of the sorted, disjoint [start, end] intervals."""
    idx = np.searchsorted(starts, values, side="right").astype(np.int64) - 1
    safe = np.clip(idx, 0, None)
    return (idx >= 0) & (values <= ends[safe])


def in_sorted(values: np.ndarray, sorted_pool: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(sorted_pool, values), 0, sorted_pool.size - 1)
    return sorted_pool[idx] == values


def zipf_ranks(rng: np.random.Generator, n: int, pool: int, exponent: float = 1.0) -> np.ndarray:
    """Ranks 0..pool-1 drawn with probability proportional to 1 / (rank + 1) ** exponent."""
    weights = 1.0 / np.arange(1, pool + 1) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n)), pool - 1).astype(np.uint64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijection on uint64: distinct row numbers give distinct, random-looking ids."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _mask(salt: int) -> np.uint64:
    """A random-looking 64-bit mask per salt, so nearby seeds share no ids."""
    return splitmix64(np.array([salt & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]


def zeek_ids(counter: np.ndarray, prefix: bytes, salt: int) -> pl.Series:
    """Zeek-style ids ('C' + 17 base62 chars for conn uids); unique for unique counters."""
    x = splitmix64(counter.astype(np.uint64) ^ _mask(salt))
    y = splitmix64(x)
    digits = np.empty((counter.size, 18), dtype=np.uint8)
    digits[:, 0] = prefix[0]
    for col in range(1, 12):  # 62**11 > 2**64, so these 11 digits alone keep ids distinct
        digits[:, col] = BASE62[(x % np.uint64(62)).astype(np.intp)]
        x = x // np.uint64(62)
    for col in range(12, 18):
        digits[:, col] = BASE62[(y % np.uint64(62)).astype(np.intp)]
        y = y // np.uint64(62)
    return _fixed_strings(digits)


def _fixed_strings(chars: np.ndarray) -> pl.Series:
    width = chars.shape[1]
    return pl.Series(np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(f"U{width}"))


def random_labels(rng: np.random.Generator, n: int, low: int, high: int) -> pl.Series:
    """Random lowercase labels of low..high characters, as Tor invents for its TLS names."""
    chars = LOWER[rng.integers(0, 26, size=(n, high))]
    lengths = rng.integers(low, high + 1, size=n)
    return _fixed_strings(chars).str.slice(0, pl.Series(lengths))


def pick(values: Sequence[str | None], idx: np.ndarray) -> pl.Series:
    return pl.Series(values=list(values), dtype=pl.String).gather(idx)


def ipv4_strings(values: np.ndarray) -> pl.Series:
    v = values.astype(np.uint32)
    parts = [pl.Series((v >> np.uint32(s)) & np.uint32(0xFF)).cast(pl.String) for s in (24, 16, 8, 0)]
    return pl.DataFrame({"a": parts[0], "b": parts[1], "c": parts[2], "d": parts[3]}).select(
        pl.concat_str(["a", "b", "c", "d"], separator=".")
    ).to_series()


def fixed6(micros: pl.Expr) -> pl.Expr:
    """Zeek's time/interval format, seconds with six decimals, from integer microseconds."""
    return pl.format("{}.{}", micros // 1_000_000, (micros % 1_000_000).cast(pl.String).str.zfill(6))


def public_ipv4(rng: np.random.Generator, n: int, inputs: Inputs) -> np.ndarray:
    """Public IPv4 addresses that are in no catalogue range and on no Tor list."""
    out = _draw_public(rng, n)
    for _ in range(50):
        bad = in_intervals(out, inputs.excl_starts, inputs.excl_ends) | in_sorted(out, inputs.tor_v4)
        if not bad.any():
            return out
        out[bad] = _draw_public(rng, int(bad.sum()))
    raise MakeLogsError("catalogue covers too much of the public address space to draw other hosts")


def _draw_public(rng: np.random.Generator, n: int) -> np.ndarray:
    first = PUBLIC_FIRST_OCTETS[rng.integers(0, PUBLIC_FIRST_OCTETS.size, size=n)].astype(np.uint64)
    rest = rng.integers(0x000101, 0xFFFFFE, size=n, dtype=np.uint64)
    return (first << np.uint64(24)) | rest


@dataclass
class Chunk:
    conn: pl.DataFrame
    dns: pl.DataFrame
    http: pl.DataFrame
    ssl: pl.DataFrame
    x509: pl.DataFrame
    counts: dict[str, int]


def make_chunk(index: int, first_row: int, n: int, total: int, seed: int, start_us: int, span_us: int,
               inputs: Inputs, catalogue_share: float = CATALOGUE_SHARE) -> Chunk:
    rng = np.random.default_rng([seed, index])
    row = np.arange(first_row, first_row + n, dtype=np.uint64)
    shares = np.array([k.share for k in KINDS])
    kind = rng.choice(len(KINDS), size=n, p=shares / shares.sum())
    is_tor = np.isin(kind, [i for i, k in enumerate(KINDS) if k.remote == "tor"])
    # Half the Tor rows are a catalogue host talking to a relay (the tap sees transit
    # traffic); the other half are local hosts. The non-Tor rows make up the rest of
    # catalogue_share.
    tor_share = float(is_tor.mean())
    cat_p = (catalogue_share - TOR_VIA_CATALOGUE * tor_share) / max(1e-9, 1.0 - tor_share)
    tor_via_cat = is_tor & (rng.random(n) < TOR_VIA_CATALOGUE)
    is_cat = ((~is_tor) & (rng.random(n) < min(1.0, max(0.0, cat_p)))) | tor_via_cat
    inbound_p = np.array([k.inbound for k in KINDS])[kind]
    inbound = rng.random(n) < np.where(is_cat & (inbound_p == 0.1), 0.2, inbound_p)
    # A few percent of ordinary traffic is IPv6; catalogue and Tor rows stay IPv4.
    is_v6 = (~is_cat) & (~is_tor) & (rng.random(n) < 0.02)

    range_pick = rng.integers(0, inputs.cat_starts.size, size=n)
    # Popularity is heavy-tailed on a real tap: a few servers and a few desks carry most of
    # the traffic, so hosts are drawn by Zipf rank and ranks spread over the range.
    rank = zipf_ranks(rng, n, REMOTE_POOL)
    offset = (rank * np.uint64(97)) % np.maximum(inputs.cat_sizes[range_pick] - 2, 1) + 1
    cat_addr = inputs.cat_starts[range_pick] + np.minimum(offset, inputs.cat_sizes[range_pick] - 1)
    tor_addr = inputs.tor_v4[rng.integers(0, inputs.tor_v4.size, size=n)]
    remote_v4 = np.where(is_tor, tor_addr, np.where(is_cat, cat_addr, public_ipv4(rng, n, inputs)))
    local_host = (zipf_ranks(rng, n, LOCAL_HOSTS) * np.uint64(7919)) % np.uint64(LOCAL_HOSTS)
    local_v4 = (np.uint64(10) << np.uint64(24)) + np.uint64(0x000102) + local_host
    local_v4 = np.where(tor_via_cat, cat_addr, local_v4)
    remote_s = ipv4_strings(remote_v4)
    local_s = ipv4_strings(local_v4)
    v6_idx = rng.integers(0, len(inputs.v6_pool), size=n)
    remote_v6 = pick(inputs.v6_pool, v6_idx)
    local_v6 = pl.Series([f"fd00:10::{i:x}" for i in range(1, 257)]).gather(v6_idx % 256)
    remote = pl.select(pl.when(pl.Series(is_v6)).then(remote_v6).otherwise(remote_s)).to_series()
    local = pl.select(pl.when(pl.Series(is_v6)).then(local_v6).otherwise(local_s)).to_series()
    inb = pl.Series(inbound)
    orig_h = pl.select(pl.when(inb).then(remote).otherwise(local)).to_series()
    resp_h = pl.select(pl.when(inb).then(local).otherwise(remote)).to_series()

    max_ports = max(len(k.ports) for k in KINDS)
    port_table = np.array([[k.ports[i % len(k.ports)] for i in range(max_ports)] for k in KINDS])
    resp_p = port_table[kind, rng.integers(0, max_ports, size=n)]
    orig_p = rng.integers(1024, 65535, size=n)
    is_icmp = kind == KIND_INDEX["icmp"]
    orig_p = np.where(is_icmp, 8, orig_p)
    protos = ("tcp", "udp", "icmp")
    proto_idx = np.array([protos.index("tcp" if k.proto == "http_tracker" else k.proto) for k in KINDS])[kind]
    # BitTorrent peers talk over TCP and uTP (UDP) on the same ports.
    proto_idx = np.where((kind == KIND_INDEX["bt_peer"]) & (rng.random(n) < 0.3), 1, proto_idx)
    services = [None, "dns", "http", "ssl", "ssh", "smtp", "ntp"]
    service_idx = np.array([services.index(k.service) for k in KINDS])[kind]

    # Connection states: scans mostly fail, everything else mostly completes.
    states = ("SF", "S0", "REJ", "RSTO", "RSTR", "S1", "SH", "OTH")
    u = rng.random(n)
    state = np.where(kind == KIND_INDEX["scan"], np.where(u < 0.6, 1, np.where(u < 0.9, 2, 6)),
                     np.where(u < 0.90, 0, np.where(u < 0.95, 3, np.where(u < 0.98, 4, 5))))
    udp_like = proto_idx != 0
    state = np.where(udp_like, np.where(u < 0.93, 0, 1), state)
    state = np.where(is_icmp, 7, state)
    # Protocol logs only exist for sessions that got as far as application data.
    has_data = np.isin(state, [0, 3, 4, 5])
    service_idx = np.where(has_data, service_idx, 0)
    history_tcp = {0: "ShADadFf", 1: "S", 2: "Sr", 3: "ShADadR", 4: "ShADadr", 5: "ShADad", 6: "SF", 7: "-"}
    history_udp = {0: "Dd", 1: "D", 7: "-"}
    hist_tcp = pick([history_tcp.get(i) for i in range(len(states))], state)
    hist_udp = pick([history_udp.get(i, "D") for i in range(len(states))], state)
    history = pl.select(pl.when(pl.Series(udp_like)).then(hist_udp).otherwise(hist_tcp)).to_series()

    orig_bytes = np.round(rng.lognormal(6.5, 1.4, size=n)).astype(np.int64)
    resp_bytes = np.round(rng.lognormal(8.5, 2.0, size=n)).astype(np.int64)
    duration_us = np.round(rng.lognormal(11.0, 2.0, size=n)).astype(np.int64) + 50
    orig_pkts = orig_bytes // 1200 + 2
    resp_pkts = resp_bytes // 1400 + 1
    no_reply = np.isin(state, [1, 6])
    rejected = state == 2
    resp_bytes = np.where(no_reply | rejected, 0, resp_bytes)
    resp_pkts = np.where(no_reply, 0, np.where(rejected, 1, resp_pkts))
    orig_bytes = np.where(no_reply | rejected, 0, orig_bytes)
    orig_pkts = np.where(no_reply | rejected, 1, orig_pkts)
    header = np.where(udp_like, 28, 40)
    # Float keeps rows * span (up to 10M * 10 years of microseconds) from overflowing int64.
    ts_us = start_us + (row.astype(np.float64) * (span_us / max(total, 1))).astype(np.int64) \
        + rng.integers(0, 1000, size=n)

    conn = pl.DataFrame({
        "ts_us": ts_us, "uid": zeek_ids(row, b"C", seed), "id.orig_h": orig_h, "id.orig_p": orig_p,
        "id.resp_h": resp_h, "id.resp_p": resp_p, "proto": pick(protos, proto_idx),
        "service": pick(services, service_idx), "duration_us": duration_us,
        "orig_bytes": orig_bytes, "resp_bytes": resp_bytes, "state": state,
        "conn_state": pick(states, state),
        "local_orig": pick(("F", "T"), (~inbound & ~tor_via_cat).astype(np.intp)),
        "local_resp": pick(("F", "T"), (inbound & ~tor_via_cat).astype(np.intp)),
        "missed_bytes": np.zeros(n, np.int64),
        "history": history, "orig_pkts": orig_pkts, "orig_ip_bytes": orig_bytes + orig_pkts * header,
        "resp_pkts": resp_pkts, "resp_ip_bytes": resp_bytes + resp_pkts * header,
        "kind": kind, "is_cat": is_cat, "has_data": has_data,
    })
    single_packet = pl.col("state").is_in([1, 6]) & (pl.col("orig_pkts") == 1)
    conn_out = conn.select(
        fixed6(pl.col("ts_us")).alias("ts"), "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "proto", "service",
        pl.when(single_packet).then(None).otherwise(fixed6(pl.col("duration_us"))).alias("duration"),
        *[pl.when(single_packet).then(None).otherwise(pl.col(c)).alias(c) for c in ("orig_bytes", "resp_bytes")],
        "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
        "resp_pkts", "resp_ip_bytes", pl.lit(None, pl.String).alias("tunnel_parents"),
    )
    with_data = conn.filter(pl.col("has_data"))
    dns = make_dns(with_data.filter(pl.col("kind") == KIND_INDEX["dns"]), rng, index)
    http = make_http(with_data.filter(pl.col("kind").is_in([KIND_INDEX["http"], KIND_INDEX["bt_tracker"]])),
                     rng, index, seed)
    ssl_rows = with_data.filter(pl.col("kind").is_in(
        [i for i, k in enumerate(KINDS) if k.sublog == "ssl"]))
    ssl, x509 = make_ssl(ssl_rows, rng, index, seed, start_us)

    kinds_named = np.bincount(kind, minlength=len(KINDS))
    bt = [KIND_INDEX[k] for k in ("bt_peer", "bt_dht", "bt_tracker")]
    counts = {
        "catalogue_conn_rows": int(is_cat.sum()),
        "tor_conn_rows": int(is_tor.sum()),
        "bittorrent_conn_rows": int(np.isin(kind, bt).sum()),
        "weak_ssl_rows": int((ssl_rows["kind"] == KIND_INDEX["ssl_weak"]).sum()),
        "tor_style_ssl_rows": int((ssl_rows["kind"] == KIND_INDEX["tor_out"]).sum()),
        "hash_uri_rows": int(http["uri"].str.contains("#", literal=True).sum()),
        "hash_subject_rows": int(x509["certificate.subject"].str.contains("#", literal=True).sum()),
        **{f"kind:{k.name}": int(kinds_named[i]) for i, k in enumerate(KINDS)},
    }
    return Chunk(conn_out, dns, http, ssl, x509, counts)


def _ts_plus(rng: np.random.Generator, df: pl.DataFrame, low: int, high: int) -> pl.Expr:
    return fixed6(pl.col("ts_us") + pl.Series(rng.integers(low, high, size=df.height)))


def make_dns(rows: pl.DataFrame, rng: np.random.Generator, index: int) -> pl.DataFrame:
    n = rows.height
    cat = rows["is_cat"].to_numpy()
    qname = np.where(cat, rng.integers(0, len(KP_HOSTS), size=n),
                     len(KP_HOSTS) + rng.integers(0, len(WEB_HOSTS), size=n))
    qtype = rng.choice(4, size=n, p=[0.6, 0.3, 0.05, 0.05])
    nx = rng.random(n) < 0.04
    answers_ok = ~nx & (qtype < 2)
    # A catalogue name resolves inside the catalogue (to the server asked); others to one
    # documentation address, so no answer lands on a catalogue range or a Tor relay by chance.
    a_answer = pl.when(pl.Series(cat)).then(pl.col("id.resp_h")).otherwise(pl.lit("93.184.215.14"))
    return rows.select(
        _ts_plus(rng, rows, 0, 300).alias("ts"), "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "proto", pl.Series("trans_id", rng.integers(1, 65535, size=n)),
        pl.when(pl.Series(nx)).then(None).otherwise(
            fixed6(pl.Series(rng.integers(200, 90_000, size=n)))).alias("rtt"),
        pick(KP_HOSTS + WEB_HOSTS, qname).alias("query"), pl.lit(1).alias("qclass"),
        pl.lit("C_INTERNET").alias("qclass_name"), pick(("1", "28", "16", "65"), qtype).alias("qtype"),
        pick(("A", "AAAA", "TXT", "HTTPS"), qtype).alias("qtype_name"),
        pick(("0", "3"), nx.astype(np.intp)).alias("rcode"),
        pick(("NOERROR", "NXDOMAIN"), nx.astype(np.intp)).alias("rcode_name"),
        pl.lit("F").alias("AA"), pl.lit("F").alias("TC"), pl.lit("T").alias("RD"),
        pick(("F", "T"), (~nx).astype(np.intp)).alias("RA"), pl.lit(0).alias("Z"),
        pl.when(pl.Series(answers_ok)).then(a_answer).otherwise(None).alias("answers"),
        pl.when(pl.Series(answers_ok)).then(pl.lit("300.000000")).otherwise(None).alias("TTLs"),
        pl.lit("F").alias("rejected"),
    )


def make_http(rows: pl.DataFrame, rng: np.random.Generator, index: int, seed: int) -> pl.DataFrame:
    n = rows.height
    kind = rows["kind"].to_numpy()
    cat = rows["is_cat"].to_numpy()
    tracker = kind == KIND_INDEX["bt_tracker"]
    host_idx = np.where(cat, rng.integers(0, len(KP_HOSTS), size=n),
                        len(KP_HOSTS) + rng.integers(0, len(WEB_HOSTS), size=n))
    host = pick(KP_HOSTS + WEB_HOSTS, host_idx)
    with_hash = rng.random(n) < 0.08
    uri_idx = np.where(with_hash, len(URI_PATHS) + rng.integers(0, len(HASH_URIS), size=n),
                       rng.integers(0, len(URI_PATHS), size=n))
    uri = pick(URI_PATHS + HASH_URIS, uri_idx)
    hashes = zeek_ids(np.arange(n, dtype=np.uint64) + np.uint64(index << 32), b"x", seed ^ 0xB17)
    announce = pl.format("/announce?info_hash=%{}&peer_id=-DE13F0-{}&port=6881&uploaded=0&downloaded=0&left={}",
                         hashes.str.slice(1, 12), hashes.str.slice(6, 12), pl.Series(rng.integers(0, 10**9, size=n)))
    tracker_s = pl.Series(tracker)
    agent = pick(USER_AGENTS, rng.choice(len(USER_AGENTS), size=n, p=[0.35, 0.25, 0.1, 0.1, 0.18, 0.02]))
    tracker_agent = pick(TRACKER_AGENTS, rng.integers(0, len(TRACKER_AGENTS), size=n))
    status = rng.choice(5, size=n, p=[0.8, 0.08, 0.06, 0.04, 0.02])
    codes = ("200", "304", "301", "404", "500")
    messages = ("OK", "Not Modified", "Moved Permanently", "Not Found", "Internal Server Error")
    body = rng.integers(0, 200_000, size=n)
    fuids = zeek_ids(np.arange(n, dtype=np.uint64) + np.uint64(index << 32), b"F", seed ^ 0xF11E)
    has_body = (status == 0) & (body > 0)
    mime = pick(("text/html", "image/png", "application/javascript", "application/octet-stream"),
                rng.integers(0, 4, size=n))
    return rows.select(
        _ts_plus(rng, rows, 1000, 90_000).alias("ts"), "uid", "id.orig_h", "id.orig_p", "id.resp_h",
        "id.resp_p", pl.Series("trans_depth", rng.choice(3, size=n, p=[0.8, 0.15, 0.05]) + 1),
        pl.lit("GET").alias("method"),
        pl.when(tracker_s).then(pl.col("id.resp_h")).otherwise(host).alias("host"),
        pl.when(tracker_s).then(announce).otherwise(uri).alias("uri"),
        pl.when(pl.Series(rng.random(n) < 0.4) & ~tracker_s).then(pl.format("http://{}/", host))
        .otherwise(None).alias("referrer"),
        pl.lit("1.1").alias("version"),
        pl.when(tracker_s).then(tracker_agent).otherwise(agent).alias("user_agent"),
        pl.lit(None, pl.String).alias("origin"), pl.lit(0).alias("request_body_len"),
        pl.Series("response_body_len", np.where(status == 0, body, 0)),
        pick(codes, status).alias("status_code"), pick(messages, status).alias("status_msg"),
        pl.lit(None, pl.String).alias("info_code"), pl.lit(None, pl.String).alias("info_msg"),
        pl.lit("(empty)").alias("tags"), pl.lit(None, pl.String).alias("username"),
        pl.lit(None, pl.String).alias("password"), pl.lit(None, pl.String).alias("proxied"),
        pl.lit(None, pl.String).alias("orig_fuids"), pl.lit(None, pl.String).alias("orig_filenames"),
        pl.lit(None, pl.String).alias("orig_mime_types"),
        pl.when(pl.Series(has_body)).then(fuids).otherwise(None).alias("resp_fuids"),
        pl.lit(None, pl.String).alias("resp_filenames"),
        pl.when(pl.Series(has_body)).then(mime).otherwise(None).alias("resp_mime_types"),
    )


def make_ssl(rows: pl.DataFrame, rng: np.random.Generator, index: int, seed: int,
             start_us: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = rows.height
    kind = rows["kind"].to_numpy()
    cat = rows["is_cat"].to_numpy()
    weak = kind == KIND_INDEX["ssl_weak"]
    tor = kind == KIND_INDEX["tor_out"]
    # Servers reuse certificates: about one leaf per eight ordinary connections, while each
    # Tor connection shows a fresh, randomly named one.
    # Four disjoint pools (catalogue or not, weak or not) so a leaf has one site and one strength.
    pool = max(1, n // 8)
    group = cat.astype(np.int64) * 2 + weak.astype(np.int64)
    leaf = np.where(tor, 4 * pool + np.arange(n), group * pool + rng.integers(0, pool, size=n))
    leaf_counter = np.uint64(index) << np.uint64(32)
    leaf_fp = _fingerprints(leaf.astype(np.uint64) + leaf_counter, seed)
    ca = rng.integers(0, len(CA_SUBJECTS), size=n)
    ca_fp = _fingerprints(np.arange(len(CA_SUBJECTS), dtype=np.uint64) + np.uint64(0xCA << 40), seed)
    chain = pl.select(pl.when(pl.Series(tor)).then(leaf_fp).otherwise(
        pl.concat_str([leaf_fp, ca_fp.gather(ca)], separator=","))).to_series()
    site = np.where(cat, leaf % len(KP_HOSTS), len(KP_HOSTS) + leaf % len(WEB_HOSTS))
    site_names = pick(KP_HOSTS + WEB_HOSTS, site)
    tor_sni = "www." + random_labels(rng, n, 8, 20) + ".com"
    tor_subject = "CN=www." + random_labels(rng, n, 8, 20) + ".net"
    tor_issuer = "CN=www." + random_labels(rng, n, 8, 20) + ".com"
    strong = rng.integers(0, len(STRONG_TLS), size=n)
    weak_pick = rng.integers(0, len(WEAK_TLS), size=n)
    suite = np.where(weak, len(STRONG_TLS) + weak_pick, strong)
    suites = STRONG_TLS + WEAK_TLS
    tor_s = pl.Series(tor)
    ssl = rows.select(
        _ts_plus(rng, rows, 200, 40_000).alias("ts"), "uid", "id.orig_h", "id.orig_p", "id.resp_h",
        "id.resp_p",
        pl.when(tor_s).then(pl.lit("TLSv13")).otherwise(pick([s[0] for s in suites], suite)).alias("version"),
        pl.when(tor_s).then(pl.lit("TLS_AES_256_GCM_SHA384")).otherwise(pick([s[1] for s in suites], suite))
        .alias("cipher"),
        pl.when(tor_s).then(pl.lit("x25519")).otherwise(pick([s[2] for s in suites], suite)).alias("curve"),
        pl.when(tor_s).then(tor_sni).when(pl.Series(rng.random(n) < 0.05)).then(None)
        .otherwise(site_names).alias("server_name"),
        pick(("F", "T"), (rng.random(n) < 0.15).astype(np.intp)).alias("resumed"),
        pl.lit(None, pl.String).alias("last_alert"),
        pick((None, "h2", "http/1.1"), rng.integers(0, 3, size=n)).alias("next_protocol"),
        pl.lit("T").alias("established"), pl.lit("CsxknGIi").alias("ssl_history"),
        chain.alias("cert_chain_fps"), pl.lit("(empty)").alias("client_cert_chain_fps"),
        pl.when(tor_s).then(pl.lit("F")).otherwise(pl.lit("T")).alias("sni_matches_cert"),
        pl.when(tor_s).then(pl.lit("self signed certificate"))
        .when(pl.Series(cat & (rng.random(n) < 0.1))).then(pl.lit("unable to get local issuer certificate"))
        .otherwise(pl.lit("ok")).alias("validation_status"),
    )
    x509 = _leaf_certs(ssl, rows, leaf, leaf_fp, site_names, tor_subject, tor_issuer, ca, weak, tor, rng,
                       start_us)
    if index == 0:
        cas = _ca_certs(ca_fp, ssl["ts"][0] if ssl.height else fixed6_value(start_us))
        x509 = pl.concat([cas, x509], how="vertical_relaxed")
    return ssl, x509


def fixed6_value(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _fingerprints(counter: np.ndarray, seed: int) -> pl.Series:
    """sha256-like fingerprints: 64 hex digits from four chained 64-bit mixes of the counter."""
    words = []
    x = counter.astype(np.uint64) ^ _mask(seed)
    for _ in range(4):
        x = splitmix64(x)
        words.append(x)
    raw = np.stack(words, axis=1).astype(">u8").view(np.uint8).reshape(counter.size, 32)
    nibbles = np.empty((counter.size, 64), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    return _fixed_strings(HEX[nibbles])


def _leaf_certs(ssl: pl.DataFrame, rows: pl.DataFrame, leaf: np.ndarray, leaf_fp: pl.Series,
                site_names: pl.Series, tor_subject: pl.Series, tor_issuer: pl.Series, ca: np.ndarray,
                weak: np.ndarray, tor: np.ndarray, rng: np.random.Generator, start_us: int) -> pl.DataFrame:
    df = pl.DataFrame({
        "ts": ssl["ts"], "leaf": leaf, "fp": leaf_fp, "site": site_names, "tor_subject": tor_subject,
        "tor_issuer": tor_issuer, "ca": ca, "weak": weak, "tor": tor,
    }).unique(subset="leaf", keep="first", maintain_order=True)
    m = df.height
    hash_unit = rng.random(m) < 0.1
    subject = pl.when(pl.col("tor")).then(pl.col("tor_subject")).otherwise(
        pl.format("CN={},{}O=Example Hosting,C=US", pl.col("site"),
                  pl.when(pl.Series(hash_unit)).then(pl.lit("OU=Web #2,")).otherwise(pl.lit(""))))
    issuer = pl.when(pl.col("tor")).then(pl.col("tor_issuer")).otherwise(pick(CA_SUBJECTS, df["ca"].to_numpy()))
    day = 86_400_000_000
    before = start_us - rng.integers(10, 300, size=m) * day
    # Weak servers often keep certificates past their expiry as well.
    expired = df["weak"].to_numpy() & (rng.random(m) < 0.3)
    after = np.where(expired, start_us - rng.integers(1, 100, size=m) * day,
                     start_us + rng.integers(30, 365, size=m) * day)
    key_len = np.where(df["weak"].to_numpy(), rng.choice([512, 1024], size=m, p=[0.1, 0.9]), 2048)
    key_len = np.where(df["tor"].to_numpy(), 1024, key_len)
    sig = np.where(df["weak"].to_numpy(), rng.integers(0, 2, size=m), 2)
    return df.select(
        "ts", pl.col("fp").alias("fingerprint"), pl.lit(3).alias("certificate.version"),
        pl.col("fp").str.slice(0, 32).str.to_uppercase().alias("certificate.serial"),
        subject.alias("certificate.subject"), issuer.alias("certificate.issuer"),
        fixed6(pl.Series(before)).alias("certificate.not_valid_before"),
        fixed6(pl.Series(after)).alias("certificate.not_valid_after"),
        pl.lit("rsaEncryption").alias("certificate.key_alg"),
        pick(("md5WithRSAEncryption", "sha1WithRSAEncryption", "sha256WithRSAEncryption"), sig)
        .alias("certificate.sig_alg"),
        pl.lit("rsa").alias("certificate.key_type"), pl.Series("certificate.key_length", key_len),
        pl.lit("65537").alias("certificate.exponent"), pl.lit(None, pl.String).alias("certificate.curve"),
        pl.when(pl.col("tor")).then(None).otherwise(pl.col("site")).alias("san.dns"),
        pl.lit(None, pl.String).alias("san.uri"), pl.lit(None, pl.String).alias("san.email"),
        pl.lit(None, pl.String).alias("san.ip"), pl.lit("F").alias("basic_constraints.ca"),
        pl.lit(None, pl.String).alias("basic_constraints.path_len"), pl.lit("T").alias("host_cert"),
        pl.lit("F").alias("client_cert"),
    ).with_columns(pl.col("certificate.key_length").cast(pl.String))


def _ca_certs(ca_fp: pl.Series, ts: str) -> pl.DataFrame:
    k = ca_fp.len()
    return pl.DataFrame({
        "ts": [ts] * k, "fingerprint": ca_fp, "certificate.version": [3] * k,
        "certificate.serial": ca_fp.str.slice(0, 32).str.to_uppercase(),
        "certificate.subject": list(CA_SUBJECTS), "certificate.issuer": list(CA_SUBJECTS),
        "certificate.not_valid_before": ["1577836800.000000"] * k,
        "certificate.not_valid_after": ["1893456000.000000"] * k,
        "certificate.key_alg": ["rsaEncryption"] * k, "certificate.sig_alg": ["sha256WithRSAEncryption"] * k,
        "certificate.key_type": ["rsa"] * k, "certificate.key_length": ["4096"] * k,
        "certificate.exponent": ["65537"] * k, "certificate.curve": [None] * k, "san.dns": [None] * k,
        "san.uri": [None] * k, "san.email": [None] * k, "san.ip": [None] * k,
        "basic_constraints.ca": ["T"] * k, "basic_constraints.path_len": ["0"] * k,
        "host_cert": ["T"] * k, "client_cert": ["F"] * k,
    }, schema_overrides={"certificate.curve": pl.String, "san.dns": pl.String, "san.uri": pl.String,
                         "san.email": pl.String, "san.ip": pl.String})


def header(path: str, fields: Sequence[tuple[str, str]], opened: str) -> bytes:
    lines = [
        "#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
        f"#path\t{path}", f"#open\t{opened}",
        "#fields\t" + "\t".join(f for f, _ in fields), "#types\t" + "\t".join(t for _, t in fields),
    ]
    return ("\n".join(lines) + "\n").encode()


def zeek_stamp(micros: int) -> str:
    return dt.datetime.fromtimestamp(micros / 1e6, dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")


def write_logs(rows: int, out: Path, seed: int, date: dt.date, inputs: Inputs, catalogue_ranges: int,
               days: int = 1, catalogue_share: float = CATALOGUE_SHARE) -> Manifest:
    if rows < 1:
        raise MakeLogsError(f"--rows must be at least 1, got {rows}")
    if not 0 <= catalogue_share <= 1:
        raise MakeLogsError(f"--catalogue-share must be between 0 and 1, got {catalogue_share}")
    if not 1 <= days <= 3660:
        raise MakeLogsError(f"--days must be between 1 and 3660, got {days}")
    span_us = days * 86_400_000_000
    out.mkdir(parents=True, exist_ok=True)
    start_us = int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    manifest = Manifest(rows=rows, seed=seed, date=date.isoformat(), days=days, catalogue_ranges=catalogue_ranges,
                        tor_addresses=int(inputs.tor_v4.size) + len(inputs.tor_v6), catalogue_share=catalogue_share)
    temps: dict[str, Path] = {}
    handles: dict[str, IO[bytes]] = {}
    try:
        for name, fields in LOG_FIELDS.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.log.", suffix=".tmp", dir=out)
            temps[name] = Path(tmp)
            handles[name] = os.fdopen(fd, "wb", buffering=1 << 20)
            handles[name].write(header(name, fields, zeek_stamp(start_us)))
            manifest.logs[name] = 0
        first = 0
        for index in range((rows + CHUNK_ROWS - 1) // CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - first)
            chunk = make_chunk(index, first, n, rows, seed, start_us, span_us, inputs, catalogue_share)
            for name in LOG_FIELDS:
                frame: pl.DataFrame = getattr(chunk, name)
                frame.write_csv(handles[name], separator="\t", include_header=False, quote_style="never",
                                null_value="-")
                manifest.logs[name] += frame.height
            for key, value in chunk.counts.items():
                if key.startswith("kind:"):
                    manifest.kinds[key[5:]] = manifest.kinds.get(key[5:], 0) + value
                else:
                    setattr(manifest, key, getattr(manifest, key) + value)
            first += n
        closed = zeek_stamp(start_us + span_us)
        for handle in handles.values():
            handle.write(f"#close\t{closed}\n".encode())
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for name, tmp in temps.items():
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / f"{name}.log")
    except BaseException:
        for handle in handles.values():
            handle.close()
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    from sensor_plugins.atomic import write_text_atomic

    write_text_atomic(out / "manifest.json", json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def default_date(tor_paths: Sequence[str] | None, days: int) -> dt.date:
    """The logs end on the last day the Tor lists vouch for, so a date-aware analysis counts Tor rows."""
    tor = load_tor_list(tor_paths)
    seen = [e.last_seen for e in tor.entries.values() if e.last_seen]
    last = max(seen) if seen else dt.date(2024, 2, 27)
    return last - dt.timedelta(days=days - 1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make_logs.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="conn.log rows to write")
    parser.add_argument("--out", type=Path, required=True, help="directory for the logs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=1, help="days the logs span (default 1)")
    parser.add_argument("--date", type=dt.date.fromisoformat,
                        help="first day covered (default: the logs end on the Tor lists' date)")
    parser.add_argument("--catalogue-share", type=float, default=CATALOGUE_SHARE,
                        help=f"share of conn rows to or from the catalogue (default {CATALOGUE_SHARE})")
    parser.add_argument("--catalogue", help="catalogue YAML (default: the bundled one)")
    parser.add_argument("--tor-feed", action="append", help="Tor feed file (repeatable; default: bundled lists)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        inputs = build_inputs(args.catalogue, args.tor_feed)
        date = args.date or default_date(args.tor_feed, max(1, args.days))
        n_ranges = len(load_catalogue(args.catalogue).ranges)
        manifest = write_logs(args.rows, args.out, args.seed, date, inputs, n_ranges, args.days,
                              args.catalogue_share)
    except SensorPluginsError as exc:
        print(f"make_logs: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), **manifest.logs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
