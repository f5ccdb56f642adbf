"""Detections as polars expressions over lazy frames: weak TLS, Tor, BitTorrent, NK traffic.

Public interface:

- ``tag_nk(conn, catalogue) -> LazyFrame`` adds ``nk_range`` (catalogue name or null),
  ``nk_side`` (``orig`` | ``resp`` | ``both`` | null), ``nk_host`` and ``peer_h``. When the
  log already has ``nk_range``/``nk_side`` (a sensor running our Zeek package) their
  values are used; rows they leave unset fall back to the catalogue.
- ``detect(logset, catalogue, tor, scope="nk") -> pl.DataFrame``: the findings, with the
  schema ``sensor_plugins.findings.FINDING_SCHEMA`` (``evidence`` as JSON text), sorted by
  ts, category, reason. ``findings.iter_findings`` turns it into ``Finding`` objects.
- ``detection_plan(logset, catalogue, tor, scope)`` -> the same as one LazyFrame, uncollected.

Every detection is a small function from lazy frames to a lazy frame of findings, and
only polars expressions are used, so that a Spark backend built on zat's
``LogToSparkDF`` can mirror each one. Address membership is vectorised: IPv4 text is
turned into an integer and looked up with ``search_sorted`` in the catalogue's disjoint
segments, so a 10M-row conn.log never becomes Python objects.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import polars as pl

from sensor_plugins.catalogue import NAME_RE, Catalogue
from sensor_plugins.feeds import TorList
from sensor_plugins.findings import FIELDS, FINDING_SCHEMA, UTC_US
from sensor_plugins.logs import LogSet

SCOPES = ("nk", "all")
SPILL_MAX_BYTES = 512 * 1024 * 1024
LIST_UTF8 = pl.List(pl.Utf8)

# (severity, confidence) per reason.
REASONS: dict[str, tuple[str, str, str]] = {
    "old-version": ("weak-tls", "medium", "high"),
    "weak-cipher": ("weak-tls", "medium", "high"),
    "weak-key": ("weak-tls", "medium", "high"),
    "weak-signature": ("weak-tls", "medium", "high"),
    "invalid-cert": ("weak-tls", "medium", "high"),
    "expired-cert": ("weak-tls", "medium", "high"),
    "self-signed": ("weak-tls", "medium", "high"),
    "sni-mismatch": ("weak-tls", "low", "medium"),
    "no-sni": ("weak-tls", "low", "high"),
    "tor-exit": ("tor", "high", "high"),
    "tor-relay": ("tor", "medium", "high"),
    "tor-cert": ("tor", "medium", "medium"),
    "tor-notice": ("tor", "high", "high"),
    "tor-repeat": ("tor", "high", "high"),
    "bittorrent-handshake": ("torrent", "medium", "high"),
    "dht": ("torrent", "medium", "medium"),
    "tracker-announce": ("torrent", "medium", "high"),
    "torrent-file": ("torrent", "medium", "high"),
    "bittorrent-port": ("torrent", "low", "low"),
    "nk-traffic": ("nk-traffic", "medium", "medium"),
}

OLD_VERSIONS = ("SSLv2", "SSLv3", "TLSv10", "TLSv11", "DTLSv10")
# Cipher suite names as Zeek logs them (IANA names, and SSLv20_CK_* for SSLv2).
WEAK_CIPHER_RE = r"(^|_)(EXPORT[0-9]*|RC4|NULL|anon|DES|DES40|3DES|MD5)(_|$)"
WEAK_SIG_RE = r"(?i)md2|md4|md5|sha1"
# Tor's link certificates come from crypto_random_hostname(8, 20, "www.", ".net"/".com"):
# 8 to 20 base32 characters (a-z, 2-7) between "www." and the suffix.
TOR_SUBJECT_RE = r"^CN=www\.[a-z2-7]{8,20}\.net$"
TOR_ISSUER_RE = r"^CN=www\.[a-z2-7]{8,20}\.com$"
TRACKER_RE = r"(?i)/announce(\.php)?(\?|$)"
TORRENT_MIME = "application/x-bittorrent"
BT_PORTS = (6881, 6889)
TOR_NOTICE = "NKSensor::Tor_Traffic"
BT_NOTICE = "NKSensor::BitTorrent"
# A DHT node sends queries from one UDP port to many peers, one short exchange each.
# KRPC queries are bencoded dicts of about 50 to 300 bytes, and DHT peers listen on
# random ports; the port spread tells DHT apart from botnet P2P on one fixed port
# (zat's conn.log holds ZeroAccess on UDP 16464, which must not count).
DHT_MIN_PEERS = 10
DHT_MAX_PKTS = 2
DHT_QUERY_BYTES = (40, 400)
# A plain Tor list says an address was listed on the day it was fetched; relays stay up
# for days, so a connection a few days either side still counts, but not years away.
TOR_LIST_GRACE = dt.timedelta(days=7)
MAX_EVIDENCE_TEXT = 300


# ---------------------------------------------------------------- helpers


def ensure(lf: pl.LazyFrame, columns: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Add the columns ``lf`` lacks as typed nulls, so a detection survives schema drift."""
    have = lf.collect_schema()
    missing = [pl.lit(None, dtype=t).alias(n) for n, t in columns.items() if n not in have]
    fixes = [
        pl.col(n).cast(t, strict=False)
        for n, t in columns.items()
        if n in have and have[n] != t and not (isinstance(t, pl.Datetime) and isinstance(have[n], pl.Datetime))
    ]
    return lf.with_columns(missing + fixes) if missing or fixes else lf


CONN_KEYS = {
    "ts": UTC_US, "uid": pl.Utf8(), "id.orig_h": pl.Utf8(), "id.orig_p": pl.Int64(),
    "id.resp_h": pl.Utf8(), "id.resp_p": pl.Int64(),
}


def clip(expr: pl.Expr) -> pl.Expr:
    """Evidence text cut to a bounded length: a hostile 1 MB URI must not flood the output."""
    return expr.str.slice(0, MAX_EVIDENCE_TEXT)


def iso(expr: pl.Expr) -> pl.Expr:
    return expr.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")


def finding(
    lf: pl.LazyFrame, log: str, reason: str, evidence: dict[str, pl.Expr],
    severity: pl.Expr | None = None, confidence: pl.Expr | None = None,
) -> pl.LazyFrame:
    """Project a frame that has the connection keys and ``nk_range`` onto the findings schema."""
    category, sev, conf = REASONS[reason]
    return lf.select(
        pl.col("ts").cast(UTC_US),
        pl.col("uid"),
        pl.lit(log).alias("log"),
        pl.lit(category).alias("category"),
        pl.lit(reason).alias("reason"),
        pl.col("id.orig_h").alias("orig_h"),
        pl.col("id.orig_p").alias("orig_p"),
        pl.col("id.resp_h").alias("resp_h"),
        pl.col("id.resp_p").alias("resp_p"),
        pl.col("nk_range").alias("range"),
        (severity if severity is not None else pl.lit(sev)).alias("severity"),
        (confidence if confidence is not None else pl.lit(conf)).alias("confidence"),
        pl.struct(**evidence).struct.json_encode().alias("evidence"),
    )


def empty() -> pl.LazyFrame:
    return pl.LazyFrame(schema=FINDING_SCHEMA)


# ---------------------------------------------------------------- NK ranges


def _ipv4_segments(catalogue: Catalogue) -> list[tuple[int, int, str]]:
    """Disjoint (first, last, name) IPv4 segments; where CIDRs nest, the most specific wins."""
    nets = sorted(
        ((int(r.cidr.network_address), int(r.cidr.broadcast_address), r.name)
         for r in catalogue.ranges if r.cidr.version == 4),
        key=lambda t: (t[0], -(t[1] - t[0])),
    )
    out: list[tuple[int, int, str]] = []
    stack: list[tuple[int, int, str]] = []
    pos = 0
    for start, end, name in nets:
        while stack and stack[-1][1] < start:
            top = stack.pop()
            if pos <= top[1]:
                out.append((pos, top[1], top[2]))
            pos = top[1] + 1
        if stack and pos < start:
            out.append((pos, start - 1, stack[-1][2]))
        stack.append((start, end, name))
        pos = start
    while stack:
        top = stack.pop()
        if pos <= top[1]:
            out.append((pos, top[1], top[2]))
        pos = top[1] + 1
    return out


def ipv4_int(col: pl.Expr) -> pl.Expr:
    """Dotted-quad text -> integer; null for anything that is not an IPv4 address.

    For a frame, ``with_ipv4_ints`` is cheaper: it splits each address once, where this
    expression splits it once per octet.
    """
    parts = col.str.splitn(".", 5)
    return _octets_to_int(col, [parts.struct.field(f"field_{i}") for i in range(5)])


def _octets_to_int(text: pl.Expr, fields: list[pl.Expr]) -> pl.Expr:
    # splitn(".", 5) leaves a fifth part only when there are more than four octets.
    octets = [f.cast(pl.Int64, strict=False) for f in fields[:4]]
    ok = (text.str.len_bytes() <= 15) & fields[4].is_null()
    for octet in octets:
        ok = ok & octet.is_between(0, 255)
    value = octets[0] * 16_777_216 + octets[1] * 65_536 + octets[2] * 256 + octets[3]
    return pl.when(ok).then(value)


def with_ipv4_ints(lf: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """Add an integer column for each text address column ({text column: int column})."""
    split = {f"{out}__parts": pl.col(src).str.splitn(".", 5) for src, out in columns.items()}
    lf = lf.with_columns(**split)
    ints = {
        out: _octets_to_int(pl.col(src), [pl.col(f"{out}__parts").struct.field(f"field_{i}") for i in range(5)])
        for src, out in columns.items()
    }
    return lf.with_columns(**ints).drop(list(split))


def range_of_int(ip: pl.Expr, text: pl.Expr, catalogue: Catalogue) -> pl.Expr:
    """The catalogue range name for each address (``ip`` its IPv4 integer, ``text`` its text)."""
    parts: list[pl.Expr] = []
    segments = _ipv4_segments(catalogue)
    if segments:
        starts = pl.Series([s for s, _, _ in segments], dtype=pl.Int64)
        ends = pl.Series([e for _, e, _ in segments], dtype=pl.Int64)
        names = pl.Series([n for _, _, n in segments], dtype=pl.Utf8)
        idx = (pl.lit(starts).search_sorted(ip, side="right").cast(pl.Int64) - 1).clip(0, len(segments) - 1)
        hit = ip.is_not_null() & (ip >= pl.lit(starts).gather(idx)) & (ip <= pl.lit(ends).gather(idx))
        parts.append(pl.when(hit).then(pl.lit(names).gather(idx)))
    if any(r.cidr.version == 6 for r in catalogue.ranges):
        parts.append(text.map_batches(_ipv6_lookup(catalogue), return_dtype=pl.Utf8))
    if not parts:
        return pl.lit(None, dtype=pl.Utf8)
    return pl.coalesce(parts) if len(parts) > 1 else parts[0]


def range_of(col: pl.Expr, catalogue: Catalogue) -> pl.Expr:
    """The catalogue range name holding each address in ``col``, or null."""
    rules = prefix_rules(catalogue)
    if rules is None:
        return range_of_int(ipv4_int(col), col, catalogue)
    by_prefix = _range_by_prefix(col, rules)
    if any(r.cidr.version == 6 for r in catalogue.ranges):
        return pl.coalesce(by_prefix, col.map_batches(_ipv6_lookup(catalogue), return_dtype=pl.Utf8))
    return by_prefix


MAX_PREFIX_RULES = 64


def prefix_rules(catalogue: Catalogue) -> list[tuple[str, int | None, int | None, str]] | None:
    """The IPv4 ranges as "a.b.c." text prefixes (plus a last-octet span below /24).

    Matching a few text prefixes costs a quarter of turning every address into an
    integer, which matters on a 10M-row conn.log; a catalogue that needs more than
    MAX_PREFIX_RULES prefixes uses the integer lookup instead. Most specific first,
    so a nested range wins over the range around it.
    """
    rules: list[tuple[str, int | None, int | None, str]] = []
    v4 = sorted((r for r in catalogue.ranges if r.cidr.version == 4), key=lambda r: -r.cidr.prefixlen)
    for r in v4:
        net = r.cidr
        if net.prefixlen < 24 and len(rules) + 2 ** (24 - net.prefixlen) > MAX_PREFIX_RULES:
            return None
        if net.prefixlen >= 24:
            octets = str(net.network_address).split(".")
            prefix = ".".join(octets[:3]) + "."
            if net.prefixlen == 24:
                rules.append((prefix, None, None, r.name))
            else:
                first = int(octets[3])
                rules.append((prefix, first, first + net.num_addresses - 1, r.name))
        else:
            for sub in net.subnets(new_prefix=24):
                rules.append((".".join(str(sub.network_address).split(".")[:3]) + ".", None, None, r.name))
    return rules if len(rules) <= MAX_PREFIX_RULES else None


def _range_by_prefix(col: pl.Expr, rules: list[tuple[str, int | None, int | None, str]]) -> pl.Expr:
    if not rules:
        return pl.lit(None, dtype=pl.Utf8)
    valid = (col.str.len_bytes() <= 15) & (col.str.count_matches(".", literal=True) == 3)
    chain: Any = pl
    for prefix, low, high, name in rules:
        cond = col.str.starts_with(prefix)
        if low is not None:
            cond = cond & col.str.slice(len(prefix)).cast(pl.Int64, strict=False).is_between(low, high)
        chain = chain.when(cond).then(pl.lit(name))
    return pl.when(valid).then(chain.otherwise(pl.lit(None, dtype=pl.Utf8)))


def nk_prefilter(col: pl.Expr, catalogue: Catalogue) -> pl.Expr | None:
    """A cheap test that is true for every address the catalogue may hold (and a few more).

    Text prefixes ("175.45.") cost a fraction of the integer lookup, so on a 10M-row
    conn.log the exact lookup runs only on the rows that pass. None when the catalogue
    is too spread out for prefixes to help.
    """
    prefixes: set[str] = set()
    for start, end, _ in _ipv4_segments(catalogue):
        blocks16 = range(start >> 16, (end >> 16) + 1)
        if len(blocks16) <= 256:
            prefixes.update(f"{b >> 8}.{b & 255}." for b in blocks16)
        else:
            prefixes.update(f"{b}." for b in range(start >> 24, (end >> 24) + 1))
    if len(prefixes) > 4096:
        return None
    tests = [col.str.starts_with(p) for p in sorted(prefixes)] if len(prefixes) <= 16 else [
        col.str.contains("^(?:" + "|".join(p.replace(".", r"\.") for p in sorted(prefixes)) + ")")
    ]
    if any(r.cidr.version == 6 for r in catalogue.ranges):
        tests.append(col.str.contains(":", literal=True))
    if not tests:
        return pl.lit(False)
    out = tests[0]
    for test in tests[1:]:
        out = out | test
    return out.fill_null(False)


def _ipv6_lookup(catalogue: Catalogue) -> Callable[[pl.Series], pl.Series]:
    # IPv6 has no cheap integer form in polars; the distinct IPv6 addresses of a batch are
    # few, so each is looked up once in Python and the answers mapped back in bulk.
    def lookup(series: pl.Series) -> pl.Series:
        series = series.cast(pl.Utf8)
        distinct = series.filter(series.str.contains(":", literal=True)).unique().drop_nulls()
        mapping = {}
        for text in distinct.to_list():
            found = catalogue.lookup(text)
            if found is not None and found.cidr.version == 6:
                mapping[text] = found.name
        if not mapping:
            return pl.Series(series.name, [None] * len(series), dtype=pl.Utf8)
        return series.replace_strict(mapping, default=None, return_dtype=pl.Utf8)

    return lookup


def _side_from_log(col: pl.Expr) -> pl.Expr:
    text = col.str.to_lowercase()
    return (
        pl.when(text.is_in(["orig", "originator", "o", "src"])).then(pl.lit("orig"))
        .when(text.is_in(["resp", "responder", "r", "dst"])).then(pl.lit("resp"))
        .when(text.is_in(["both", "b"])).then(pl.lit("both"))
    )


def tag_nk(conn: pl.LazyFrame, catalogue: Catalogue) -> pl.LazyFrame:
    """Add nk_range, nk_side, nk_host and peer_h to any frame with ``id.orig_h``/``id.resp_h``."""
    have = conn.collect_schema()
    lf = ensure(conn, {"id.orig_h": pl.Utf8(), "id.resp_h": pl.Utf8()})
    if prefix_rules(catalogue) is not None:
        lf = lf.with_columns(
            range_of(pl.col("id.orig_h"), catalogue).alias("_orig_r"),
            range_of(pl.col("id.resp_h"), catalogue).alias("_resp_r"),
            pl.lit(None, dtype=pl.Int64).alias("_orig_i"), pl.lit(None, dtype=pl.Int64).alias("_resp_i"),
        )
    else:
        lf = with_ipv4_ints(lf, {"id.orig_h": "_orig_i", "id.resp_h": "_resp_i"})
        lf = lf.with_columns(
            range_of_int(pl.col("_orig_i"), pl.col("id.orig_h"), catalogue).alias("_orig_r"),
            range_of_int(pl.col("_resp_i"), pl.col("id.resp_h"), catalogue).alias("_resp_r"),
        )
    computed_side = (
        pl.when(pl.col("_orig_r").is_not_null() & pl.col("_resp_r").is_not_null()).then(pl.lit("both"))
        .when(pl.col("_orig_r").is_not_null()).then(pl.lit("orig"))
        .when(pl.col("_resp_r").is_not_null()).then(pl.lit("resp"))
    )
    computed_range = pl.coalesce(pl.col("_orig_r"), pl.col("_resp_r"))
    if "nk_range" in have and "nk_side" in have:
        # A range name from a log reaches HTML and TSV output, so only a catalogue-style
        # slug is taken; anything else falls back to the catalogue lookup.
        logged = pl.col("nk_range").cast(pl.Utf8)
        valid = logged.str.contains(f"^{NAME_RE.pattern}$")
        logged_side = _side_from_log(pl.col("nk_side").cast(pl.Utf8))
        use_log = valid.fill_null(False) & logged_side.is_not_null()
        side = pl.when(use_log).then(logged_side).otherwise(computed_side)
        rng = pl.when(use_log).then(logged).otherwise(computed_range)
    else:
        side, rng = computed_side, computed_range
    lf = lf.with_columns(rng.alias("_nk_range"), side.alias("_nk_side"))
    lf = lf.drop([c for c in ("nk_range", "nk_side") if c in have])
    lf = lf.rename({"_nk_range": "nk_range", "_nk_side": "nk_side"})
    return lf.drop("_orig_r", "_resp_r", "_orig_i", "_resp_i").with_columns(
        pl.when(pl.col("nk_side") == "resp").then(pl.col("id.resp_h"))
        .when(pl.col("nk_side").is_not_null()).then(pl.col("id.orig_h")).alias("nk_host"),
        pl.when(pl.col("nk_side") == "resp").then(pl.col("id.orig_h"))
        .when(pl.col("nk_side").is_not_null()).then(pl.col("id.resp_h")).alias("peer_h"),
    )


def scoped(lf: pl.LazyFrame, catalogue: Catalogue, scope: str) -> pl.LazyFrame:
    """Tag a log with NK columns and, for scope ``nk``, keep only rows with an NK endpoint."""
    lf = ensure(lf, CONN_KEYS)
    if scope == "all":
        return tag_nk(lf, catalogue)
    orig_pre = nk_prefilter(pl.col("id.orig_h"), catalogue)
    if orig_pre is not None:
        keep = orig_pre | nk_prefilter(pl.col("id.resp_h"), catalogue)
        if "nk_range" in lf.collect_schema():
            keep = keep | pl.col("nk_range").is_not_null()
        lf = lf.filter(keep)
    return tag_nk(lf, catalogue).filter(pl.col("nk_range").is_not_null())


# ---------------------------------------------------------------- weak TLS

SSL_COLUMNS = {
    "version": pl.Utf8(), "cipher": pl.Utf8(), "server_name": pl.Utf8(),
    "validation_status": pl.Utf8(), "sni_matches_cert": pl.Boolean(),
    "cert_chain_fps": LIST_UTF8, "cert_chain_fuids": LIST_UTF8, "subject": pl.Utf8(),
    "issuer": pl.Utf8(), "issuer_subject": pl.Utf8(), "not_valid_before": UTC_US,
    "not_valid_after": UTC_US, "dh_param_size": pl.Int64(), "established": pl.Boolean(),
}
CERT_COLUMNS = {
    "certificate.subject": "c_subject", "certificate.issuer": "c_issuer",
    "certificate.not_valid_before": "c_nvb", "certificate.not_valid_after": "c_nva",
    "certificate.key_alg": "c_key_alg", "certificate.key_type": "c_key_type",
    "certificate.key_length": "c_key_len", "certificate.sig_alg": "c_sig_alg", "san.dns": "c_san",
}
X509_TYPES = {
    "fingerprint": pl.Utf8(), "id": pl.Utf8(), "certificate.subject": pl.Utf8(),
    "certificate.issuer": pl.Utf8(), "certificate.not_valid_before": UTC_US,
    "certificate.not_valid_after": UTC_US, "certificate.key_alg": pl.Utf8(),
    "certificate.key_type": pl.Utf8(), "certificate.key_length": pl.Int64(),
    "certificate.sig_alg": pl.Utf8(), "san.dns": LIST_UTF8,
}


def _x509_keys(x509: pl.LazyFrame) -> list[tuple[str, str]]:
    """(x509 key column, ssl leaf column) pairs this x509.log can be joined on."""
    have = x509.collect_schema()
    return [(k, leaf) for k, leaf in (("fingerprint", "_leaf_fp"), ("id", "_leaf_fuid")) if k in have]


def _with_leaf(ssl: pl.LazyFrame) -> pl.LazyFrame:
    """ssl rows with ``_leaf_fp``/``_leaf_fuid``: the first certificate of the server's chain."""
    if "_leaf_fp" in ssl.collect_schema():
        return ensure(ssl, SSL_COLUMNS)
    return ensure(ssl, SSL_COLUMNS).with_columns(
        pl.col("cert_chain_fps").list.first().alias("_leaf_fp"),
        pl.col("cert_chain_fuids").list.first().alias("_leaf_fuid"),
    )


def join_certs(ssl: pl.LazyFrame, x509: pl.LazyFrame | None, columns: dict[str, str],
               dtypes: dict[str, pl.DataType]) -> tuple[pl.LazyFrame, dict[str, list[pl.Expr]]]:
    """Left-join each ssl row with its leaf certificate's ``columns`` (x509 name -> alias).

    Returns the joined frame and, per alias, the joined columns to coalesce (one for
    each key the x509.log has: a log written by Zeek >= 4 has fingerprints, older ones
    file ids).
    """
    sources: dict[str, list[pl.Expr]] = {alias: [] for alias in columns.values()}
    lf = _with_leaf(ssl)
    if x509 is None:
        return lf, sources
    x = ensure(x509, {**X509_TYPES, **{c: t for c, t in dtypes.items() if c in X509_TYPES}})
    for key, leaf in _x509_keys(x509):
        suffix = f"_{key}"
        certs = (
            x.filter(pl.col(key).is_not_null())
            .select([key, *columns])
            .unique(subset=[key], keep="first")
            .rename({c: f"{alias}{suffix}" for c, alias in columns.items()})
        )
        lf = lf.join(certs, left_on=leaf, right_on=key, how="left")
        for alias in columns.values():
            sources[alias].append(pl.col(f"{alias}{suffix}"))
    return lf, sources


def _coalesced(alias: str, sources: list[pl.Expr], dtype: pl.DataType) -> pl.Expr:
    if not sources:
        return pl.lit(None, dtype=dtype).alias(alias)
    return (pl.coalesce(sources) if len(sources) > 1 else sources[0]).alias(alias)


CERT_DTYPES = {
    "c_subject": pl.Utf8(), "c_issuer": pl.Utf8(), "c_nvb": UTC_US, "c_nva": UTC_US, "c_key_alg": pl.Utf8(),
    "c_key_type": pl.Utf8(), "c_key_len": pl.Int64(), "c_sig_alg": pl.Utf8(), "c_san": LIST_UTF8,
}


def tls_sessions(ssl: pl.LazyFrame, x509: pl.LazyFrame | None) -> pl.LazyFrame:
    """ssl.log rows with their leaf certificate's fields (``c_*``) from x509.log.

    Zeek >= 4 links the chain by fingerprint (``cert_chain_fps`` -> x509 ``fingerprint``),
    older Zeek by file id (``cert_chain_fuids`` -> x509 ``id``). Before Zeek 2.4 ssl.log
    held the leaf's subject, issuer and dates itself; those fill in.
    """
    lf, sources = join_certs(ssl, x509, CERT_COLUMNS, X509_TYPES)
    own = {
        "c_subject": pl.col("subject"),
        "c_issuer": pl.coalesce(pl.col("issuer"), pl.col("issuer_subject")),
        "c_nvb": pl.col("not_valid_before"), "c_nva": pl.col("not_valid_after"),
    }
    merged = []
    for alias in CERT_COLUMNS.values():
        extra = [own[alias]] if alias in own else []
        merged.append(_coalesced(alias, sources[alias] + extra, CERT_DTYPES[alias]))
    return lf.with_columns(merged)


def cert_flag() -> pl.Expr:
    """On x509.log rows: the certificate alone makes a finding (weak key or signature,
    self-signed, Tor's link certificate)."""
    rsa_dsa = (
        pl.col("certificate.key_type").str.to_lowercase().is_in(["rsa", "dsa"])
        | pl.col("certificate.key_alg").is_in(["rsaEncryption", "dsaEncryption"])
    ).fill_null(False)
    subject, issuer = pl.col("certificate.subject"), pl.col("certificate.issuer")
    return (
        (rsa_dsa & (pl.col("certificate.key_length") < 2048)).fill_null(False)
        | pl.col("certificate.sig_alg").str.contains(WEAK_SIG_RE).fill_null(False)
        | (subject == issuer).fill_null(False)
        | (subject.str.contains(TOR_SUBJECT_RE) & issuer.str.contains(TOR_ISSUER_RE)).fill_null(False)
    )


def risky_certs(ssl: pl.LazyFrame, x509: pl.LazyFrame | None) -> tuple[list[str], list[str]]:
    """(fingerprints, file ids) of the certificates that can make a finding in ``ssl``.

    Those that make one alone (``cert_flag``), and those whose validity does not cover
    the whole time span of ``ssl`` (only they can be expired for some session in it). Both
    lists are short; checking membership in them streams, where a join of a 10M-row
    ssl.log with x509.log would hold one side in memory.
    """
    if x509 is None:
        return [], []
    span = ssl.select(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")).collect(
        engine="streaming")
    first, last = span["first"][0], span["last"][0]
    x = ensure(x509, X509_TYPES)
    risky = cert_flag()
    if first is not None and last is not None:
        risky = risky | (pl.col("certificate.not_valid_before") > first).fill_null(False) | (
            pl.col("certificate.not_valid_after") < last).fill_null(False)
    keys = dict(_x509_keys(x509))
    found = detached(x.filter(risky).select(["fingerprint", "id"])).collect(engine="streaming")
    fps = found["fingerprint"].drop_nulls().unique().to_list() if "fingerprint" in keys else []
    ids = found["id"].drop_nulls().unique().to_list() if "id" in keys else []
    return fps, ids


def ssl_candidates(ssl: pl.LazyFrame, risky: tuple[list[str], list[str]], tor_addrs: list[str]) -> pl.LazyFrame:
    """The ssl.log rows that may make a finding; certificate fields are joined later."""
    fps, ids = risky
    lf = _with_leaf(ssl)
    version, status, sni = pl.col("version"), pl.col("validation_status"), pl.col("server_name")
    subject, issuer = pl.col("subject"), pl.coalesce(pl.col("issuer"), pl.col("issuer_subject"))
    keep = (
        pl.col("_leaf_fp").is_in(fps) | pl.col("_leaf_fuid").is_in(ids)
        | version.is_in(OLD_VERSIONS)
        | pl.col("cipher").str.contains(WEAK_CIPHER_RE)
        | (pl.col("dh_param_size") < 2048)
        | (status.is_not_null() & (status != "ok") & (status != ""))
        | (version.is_not_null() & sni.is_null())
        # Without Zeek's sni_matches_cert the names are compared later, on these rows.
        | (sni.is_not_null() & pl.col("sni_matches_cert").is_null())
        | (pl.col("sni_matches_cert") == False)  # noqa: E712
        # ssl.log before Zeek 2.4 carries the leaf's subject, issuer and dates itself.
        | (subject.is_not_null() & (subject == issuer))
        | (subject.str.contains(TOR_SUBJECT_RE) & issuer.str.contains(TOR_ISSUER_RE))
        | (pl.col("ts") < pl.col("not_valid_before")) | (pl.col("ts") > pl.col("not_valid_after"))
        | pl.col("id.resp_h").is_in(tor_addrs) | pl.col("id.orig_h").is_in(tor_addrs)
    )
    # Only the leaf of each chain is used later; the whole chains would triple the size.
    return lf.filter(keep.fill_null(False)).drop("cert_chain_fps", "cert_chain_fuids")


def certs_for(ssl: pl.DataFrame, x509: pl.LazyFrame) -> pl.LazyFrame:
    """The x509.log rows of the leaf certificates of ``ssl`` (a small frame)."""
    fps = ssl["_leaf_fp"].drop_nulls().unique().to_list()
    fuids = ssl["_leaf_fuid"].drop_nulls().unique().to_list()
    keys = dict(_x509_keys(x509))
    cond = pl.lit(False)
    if "fingerprint" in keys:
        cond = cond | pl.col("fingerprint").is_in(fps)
    if "id" in keys:
        cond = cond | pl.col("id").is_in(fuids)
    return detached(ensure(x509, X509_TYPES).filter(cond).select(list(X509_TYPES)))


def _tls_evidence(*names: str) -> dict[str, pl.Expr]:
    base = {"version": pl.col("version"), "cipher": pl.col("cipher"), "server_name": clip(pl.col("server_name"))}
    return {**base, **{n: EVIDENCE_COLUMNS[n] for n in names}}


EVIDENCE_COLUMNS: dict[str, pl.Expr] = {
    "subject": clip(pl.col("c_subject")),
    "issuer": clip(pl.col("c_issuer")),
    "key_type": pl.col("c_key_type"),
    "key_length": pl.col("c_key_len"),
    "dh_param_size": pl.col("dh_param_size"),
    "sig_alg": pl.col("c_sig_alg"),
    "validation_status": clip(pl.col("validation_status")),
    "not_valid_before": iso(pl.col("c_nvb")),
    "not_valid_after": iso(pl.col("c_nva")),
    "san_dns": pl.col("c_san").list.head(20),
}


def tls_conditions() -> dict[str, pl.Expr]:
    """reason -> the condition on a ``tls_sessions`` row (never null)."""
    version = pl.col("version")
    rsa_dsa = (
        pl.col("c_key_type").str.to_lowercase().is_in(["rsa", "dsa"])
        | pl.col("c_key_alg").is_in(["rsaEncryption", "dsaEncryption"])
    ).fill_null(False)
    weak_key = (rsa_dsa & (pl.col("c_key_len") < 2048)).fill_null(False) | (
        pl.col("dh_param_size") < 2048
    ).fill_null(False)
    status = pl.col("validation_status")
    conditions = {
        "old-version": version.is_in(OLD_VERSIONS),
        "weak-cipher": pl.col("cipher").str.contains(WEAK_CIPHER_RE),
        "weak-key": weak_key,
        "weak-signature": pl.col("c_sig_alg").str.contains(WEAK_SIG_RE),
        "invalid-cert": status.is_not_null() & (status != "ok") & (status != ""),
        "expired-cert": (pl.col("ts") < pl.col("c_nvb")) | (pl.col("ts") > pl.col("c_nva")),
        "self-signed": (pl.col("c_subject").is_not_null() & (pl.col("c_subject") == pl.col("c_issuer")))
        | (status == "self signed certificate"),
        "sni-mismatch": _sni_mismatch_condition(),
        "no-sni": version.is_not_null() & pl.col("server_name").is_null(),
        "tor-cert": pl.col("c_subject").str.contains(TOR_SUBJECT_RE) & pl.col("c_issuer").str.contains(TOR_ISSUER_RE),
    }
    return {reason: cond.fill_null(False) for reason, cond in conditions.items()}


def weak_tls(tls: pl.LazyFrame) -> list[pl.LazyFrame]:
    """One finding per (session, reason) for every weak-tls reason."""
    cond = tls_conditions()
    very_old = pl.col("version").is_in(["SSLv2", "SSLv3"])
    return [
        finding(tls.filter(cond["old-version"]), "ssl", "old-version", _tls_evidence(),
                severity=pl.when(very_old).then(pl.lit("high")).otherwise(pl.lit("medium"))),
        finding(tls.filter(cond["weak-cipher"]), "ssl", "weak-cipher", _tls_evidence(),
                severity=pl.when(pl.col("cipher").str.contains("EXPORT|NULL|anon"))
                .then(pl.lit("high")).otherwise(pl.lit("medium"))),
        finding(tls.filter(cond["weak-key"]), "ssl", "weak-key",
                _tls_evidence("key_type", "key_length", "dh_param_size", "subject")),
        finding(tls.filter(cond["weak-signature"]), "ssl", "weak-signature", _tls_evidence("sig_alg", "subject")),
        finding(tls.filter(cond["invalid-cert"]), "ssl", "invalid-cert",
                _tls_evidence("validation_status", "subject", "issuer")),
        finding(tls.filter(cond["expired-cert"]), "ssl", "expired-cert",
                _tls_evidence("not_valid_before", "not_valid_after", "subject")),
        finding(tls.filter(cond["self-signed"]), "ssl", "self-signed",
                _tls_evidence("subject", "issuer", "validation_status")),
        finding(tls.filter(cond["sni-mismatch"]), "ssl", "sni-mismatch", _tls_evidence("subject", "san_dns"),
                confidence=pl.when(pl.col("sni_matches_cert").is_not_null()).then(pl.lit("high"))
                .otherwise(pl.lit("medium"))),
        finding(tls.filter(cond["no-sni"]), "ssl", "no-sni", _tls_evidence("subject")),
    ]


def _sni_mismatch_condition() -> pl.Expr:
    """The SNI is not among the certificate's names (SAN DNS entries or subject CN).

    Zeek's own ``sni_matches_cert`` wins when logged; otherwise the names are compared
    here, a ``*.`` wildcard standing for exactly one leftmost label (RFC 6125).
    """
    sni = pl.col("server_name").str.to_lowercase()
    cn = pl.col("c_subject").str.extract(r"(?:^|,)CN=([^,]+)", 1).str.to_lowercase()
    san = pl.col("c_san").fill_null(pl.lit([], dtype=LIST_UTF8)).list.eval(pl.element().str.to_lowercase())
    names = pl.concat_list(san, cn).list.drop_nulls()
    wildcard = sni.str.replace(r"^[^.]+\.", "*.")
    matches = names.list.contains(sni) | names.list.contains(wildcard)
    has_cert = pl.col("c_subject").is_not_null() | (pl.col("c_san").list.len() > 0).fill_null(False)
    computed = sni.is_not_null() & has_cert & ~matches.fill_null(False)
    logged = pl.col("sni_matches_cert")
    return pl.when(logged.is_not_null()).then(~logged & sni.is_not_null()).otherwise(computed)


# ---------------------------------------------------------------- Tor


def tor_table(tor: TorList) -> pl.LazyFrame:
    """The merged Tor list as a frame: address, role, feed, and the days it counts as Tor."""
    rows = []
    for entry in tor.entries.values():
        last = entry.last_seen
        first = entry.first_seen or last
        rows.append({
            "_tor_addr": entry.address, "_tor_role": entry.role, "_tor_feed": entry.feed,
            "_listed_first": entry.first_seen or last, "_listed_last": last,
            "_valid_from": first - TOR_LIST_GRACE if first else None,
            "_valid_to": last + TOR_LIST_GRACE if last else None,
        })
    schema = {
        "_tor_addr": pl.Utf8, "_tor_role": pl.Utf8, "_tor_feed": pl.Utf8, "_listed_first": pl.Date,
        "_listed_last": pl.Date, "_valid_from": pl.Date, "_valid_to": pl.Date,
    }
    return pl.LazyFrame(rows, schema=schema)


def tor_matches(conns: pl.LazyFrame, tor: TorList) -> pl.LazyFrame:
    """Connections whose peer (either side) was on a Tor list on that day; one row a match."""
    table = tor_table(tor)
    day = pl.col("ts").dt.date()
    out = []
    for side, other in (("id.resp_h", "id.orig_h"), ("id.orig_h", "id.resp_h")):
        joined = conns.join(table, left_on=side, right_on="_tor_addr", how="inner").with_columns(
            pl.col(side).alias("_tor_addr"), pl.col(other).alias("_host"),
        )
        in_window = (
            (pl.col("_valid_from").is_null() | (day >= pl.col("_valid_from")))
            & (pl.col("_valid_to").is_null() | (day <= pl.col("_valid_to")))
        )
        out.append(joined.filter(in_window.fill_null(False)))
    return pl.concat(out, how="diagonal_relaxed")


def tor_list_findings(matches: pl.LazyFrame, log: str) -> list[pl.LazyFrame]:
    evidence = {
        "tor_addr": pl.col("_tor_addr"), "list": pl.col("_tor_feed"),
        "listed_first": pl.col("_listed_first").cast(pl.Utf8),
        "listed_last": pl.col("_listed_last").cast(pl.Utf8),
    }
    return [
        finding(matches.filter(pl.col("_tor_role") == role), log, f"tor-{role}", evidence)
        for role in ("exit", "relay")
    ]


def tor_repeat(matches: pl.LazyFrame) -> pl.LazyFrame:
    """The article's pattern: one host using the same exit or relay on several UTC days."""
    per_pair = (
        matches.unique(subset=["uid", "_tor_addr"], keep="first")
        .group_by("_host", "_tor_addr")
        .agg(
            pl.col("ts").min().alias("ts"),
            pl.col("ts").dt.date().n_unique().alias("_days_n"),
            pl.col("ts").dt.date().unique().sort().cast(pl.Utf8).alias("_days"),
            pl.len().alias("_connections"),
            pl.col("_tor_role").first(),
            pl.col("_tor_feed").first(),
            pl.col("nk_range").drop_nulls().first(),
        )
        .filter(pl.col("_days_n") >= 2)
    )
    rows = per_pair.with_columns(
        pl.lit(None, dtype=pl.Utf8).alias("uid"),
        pl.col("_host").alias("id.orig_h"), pl.lit(None, dtype=pl.Int64).alias("id.orig_p"),
        pl.col("_tor_addr").alias("id.resp_h"), pl.lit(None, dtype=pl.Int64).alias("id.resp_p"),
    )
    return finding(rows, "conn", "tor-repeat", {
        "tor_addr": pl.col("_tor_addr"), "role": pl.col("_tor_role"), "list": pl.col("_tor_feed"),
        "days": pl.col("_days").list.head(60), "day_count": pl.col("_days_n"),
        "connections": pl.col("_connections"),
    })


def tor_cert(tls: pl.LazyFrame) -> pl.LazyFrame:
    return finding(tls.filter(tls_conditions()["tor-cert"]), "ssl", "tor-cert", {
        "subject": clip(pl.col("c_subject")), "issuer": clip(pl.col("c_issuer")),
        "server_name": clip(pl.col("server_name")),
    })


NOTICE_COLUMNS = {
    "note": pl.Utf8(), "msg": pl.Utf8(), "sub": pl.Utf8(), "src": pl.Utf8(), "dst": pl.Utf8(),
    "p": pl.Int64(),
}


def notices(notice: pl.LazyFrame) -> pl.LazyFrame:
    """notice.log with the connection keys filled from src/dst/p where id.* is unset."""
    lf = ensure(ensure(notice, NOTICE_COLUMNS), CONN_KEYS)
    return lf.with_columns(
        pl.coalesce(pl.col("id.orig_h"), pl.col("src")).alias("id.orig_h"),
        pl.coalesce(pl.col("id.resp_h"), pl.col("dst")).alias("id.resp_h"),
        pl.coalesce(pl.col("id.resp_p"), pl.col("p")).alias("id.resp_p"),
    )


def _notice_evidence() -> dict[str, pl.Expr]:
    return {"note": pl.col("note"), "msg": clip(pl.col("msg")), "sub": clip(pl.col("sub"))}


def tor_notice(notice: pl.LazyFrame) -> pl.LazyFrame:
    return finding(notice.filter(pl.col("note") == TOR_NOTICE), "notice", "tor-notice", _notice_evidence())


# ---------------------------------------------------------------- BitTorrent


def _bt_notice_kind(kind: str) -> pl.Expr:
    """Our NKSensor::BitTorrent notices, split by ``sub``, which names what was seen.

    The Zeek package (bittorrent.zeek) puts "peer-wire handshake", "BitTorrent DHT
    query"/"response", "BitTorrent handshake over uTP", "BitTorrent UDP tracker connect"
    or "HTTP tracker announce" in ``sub``.
    """
    sub = pl.col("sub").fill_null("").str.to_lowercase()
    ours = pl.col("note") == BT_NOTICE
    if kind == "dht":
        return ours & sub.str.contains("dht")
    if kind == "tracker":
        return ours & sub.str.contains("tracker")
    return ours & ~sub.str.contains("dht") & ~sub.str.contains("tracker")


def bt_handshake(conn: pl.LazyFrame | None, notice: pl.LazyFrame | None) -> list[pl.LazyFrame]:
    out = []
    if notice is not None:
        out.append(finding(notice.filter(_bt_notice_kind("handshake").fill_null(False)), "notice",
                           "bittorrent-handshake", _notice_evidence()))
    if conn is not None:
        has_service = pl.col("service").str.to_lowercase().str.contains("bittorrent").fill_null(False)
        out.append(finding(conn.filter(has_service), "conn", "bittorrent-handshake",
                           {"service": pl.col("service"), "proto": pl.col("proto")}))
    return out


def dht(conn: pl.LazyFrame | None, notice: pl.LazyFrame | None) -> list[pl.LazyFrame]:
    """DHT from our notices (or a stock signature notice naming DHT), or a DHT-shaped UDP port.

    The conn heuristic: one host's UDP port exchanging at most DHT_MAX_PKTS packets each
    way, with KRPC-sized queries, with at least DHT_MIN_PEERS peers on varied ports, on
    flows no Zeek analyzer claimed.
    """
    out = []
    if notice is not None:
        note = pl.col("note")
        text = pl.concat_str(pl.col("msg").fill_null(""), pl.col("sub").fill_null("")).str.to_lowercase()
        signature = note.str.starts_with("Signatures::") & text.str.contains("dht")
        out.append(finding(notice.filter((_bt_notice_kind("dht") | signature).fill_null(False)), "notice",
                           "dht", _notice_evidence(), confidence=pl.lit("high")))
    if conn is not None:
        small = (
            (pl.col("proto") == "udp") & pl.col("service").is_null()
            & (pl.col("orig_pkts").fill_null(0) <= DHT_MAX_PKTS)
            & (pl.col("resp_pkts").fill_null(0) <= DHT_MAX_PKTS)
            & pl.col("orig_bytes").is_between(*DHT_QUERY_BYTES)
        )
        groups = (
            conn.filter(small.fill_null(False))
            .group_by("id.orig_h", "id.orig_p")
            .agg(
                pl.col("ts").min(), pl.col("id.resp_h").n_unique().alias("_peers"), pl.len().alias("_flows"),
                pl.col("id.resp_p").n_unique().alias("_ports"),
                pl.col("id.resp_h").first().alias("_first_peer"), pl.col("nk_range").drop_nulls().first(),
            )
            .filter((pl.col("_peers") >= DHT_MIN_PEERS) & (pl.col("_ports") * 2 >= pl.col("_peers")))
            .with_columns(
                pl.lit(None, dtype=pl.Utf8).alias("uid"), pl.lit(None, dtype=pl.Utf8).alias("id.resp_h"),
                pl.lit(None, dtype=pl.Int64).alias("id.resp_p"),
            )
        )
        out.append(finding(groups, "conn", "dht", {"udp_port": pl.col("id.orig_p"), "peers": pl.col("_peers"),
                                                   "flows": pl.col("_flows")}))
    return out


def tracker_announce(http: pl.LazyFrame | None, notice: pl.LazyFrame | None) -> list[pl.LazyFrame]:
    """An HTTP ``/announce`` carrying ``info_hash=``, or our notice for an HTTP/UDP tracker."""
    out = []
    if http is not None:
        uri = pl.col("uri")
        cond = (uri.str.contains(TRACKER_RE) & uri.str.contains("info_hash=", literal=True)).fill_null(False)
        out.append(finding(http.filter(cond), "http", "tracker-announce", {
            "host": clip(pl.col("host")), "uri": clip(uri), "user_agent": clip(pl.col("user_agent")),
            "method": pl.col("method"),
        }))
    if notice is not None:
        out.append(finding(notice.filter(_bt_notice_kind("tracker").fill_null(False)), "notice",
                           "tracker-announce", _notice_evidence()))
    return out


def torrent_file(http: pl.LazyFrame | None, files: pl.LazyFrame | None) -> list[pl.LazyFrame]:
    out = []
    if http is not None:
        mimes = pl.concat_list(
            pl.col("orig_mime_types").fill_null(pl.lit([], dtype=LIST_UTF8)),
            pl.col("resp_mime_types").fill_null(pl.lit([], dtype=LIST_UTF8)),
        )
        out.append(finding(http.filter(mimes.list.contains(TORRENT_MIME).fill_null(False)), "http",
                           "torrent-file", {"host": clip(pl.col("host")), "uri": clip(pl.col("uri")),
                                            "mime_type": pl.lit(TORRENT_MIME)}))
    if files is not None:
        out.append(finding(files.filter(pl.col("mime_type") == TORRENT_MIME), "files", "torrent-file", {
            "fuid": pl.col("fuid"), "filename": clip(pl.col("filename")), "source": pl.col("source"),
            "mime_type": pl.col("mime_type"),
        }))
    return out


FILES_COLUMNS = {"fuid": pl.Utf8(), "mime_type": pl.Utf8(), "filename": pl.Utf8(), "source": pl.Utf8()}


def files_with_keys(files: pl.LazyFrame) -> pl.LazyFrame:
    """files.log with connection keys: Zeek >= 5 logs uid/id.*, older files.log only lists."""
    lf = ensure(files, {"tx_hosts": LIST_UTF8, "rx_hosts": LIST_UTF8, "conn_uids": LIST_UTF8, **FILES_COLUMNS})
    lf = ensure(lf, CONN_KEYS)
    return lf.with_columns(
        pl.coalesce(pl.col("uid"), pl.col("conn_uids").list.first()).alias("uid"),
        # The receiver of a downloaded file is the connection's originator.
        pl.coalesce(pl.col("id.orig_h"), pl.col("rx_hosts").list.first()).alias("id.orig_h"),
        pl.coalesce(pl.col("id.resp_h"), pl.col("tx_hosts").list.first()).alias("id.resp_h"),
    )


def bittorrent_port(conn: pl.LazyFrame, other_torrent: list[pl.LazyFrame]) -> pl.LazyFrame:
    lo, hi = BT_PORTS
    on_port = (pl.col("id.resp_p").is_between(lo, hi) | pl.col("id.orig_p").is_between(lo, hi)).fill_null(False)
    candidates = conn.filter(on_port)
    if other_torrent:
        seen = pl.concat([f.select("uid") for f in other_torrent]).filter(pl.col("uid").is_not_null())
        candidates = candidates.join(seen.unique(), on="uid", how="anti")
    return finding(candidates, "conn", "bittorrent-port", {
        "proto": pl.col("proto"), "service": pl.col("service"),
        "port": pl.when(pl.col("id.resp_p").is_between(lo, hi)).then(pl.col("id.resp_p"))
        .otherwise(pl.col("id.orig_p")),
    })


# ---------------------------------------------------------------- NK traffic


# nk_range depends on nk_host alone, so it is looked up again after the group-by rather
# than carried through it: every key or aggregate costs the streaming group-by about
# 50 MB a million groups.
NK_GROUP_KEYS = ("nk_host", "peer_h", "service", "_day")
PROTO_CODES = {"tcp": 1, "udp": 2, "icmp": 3}


def _proto_code() -> pl.Expr:
    return pl.col("proto").replace_strict(PROTO_CODES, default=0, return_dtype=pl.Int8)


def nk_groups(conn: pl.LazyFrame, carry_range: bool = True) -> pl.LazyFrame:
    """Per (NK host, peer, service, UTC day): first/last time, connections, bytes, direction.

    Only constant-size aggregates, so the streaming engine holds one small state a
    group: the responder ports are summed up as their lowest and highest. Without
    ``carry_range`` the range name is left out, to be looked up from nk_host afterwards
    (right unless the sensor's conn.log named a range the catalogue lacks).
    """
    keys = [*NK_GROUP_KEYS, "nk_range"] if carry_range else list(NK_GROUP_KEYS)
    # Per-row values are computed before the group-by: an expression such as
    # replace_strict inside an aggregation runs per group and costs 600 MB on 10M rows.
    return (
        conn.filter(pl.col("nk_range").is_not_null())
        .with_columns(
            pl.col("ts").dt.date().alias("_day"),
            _proto_code().alias("_proto_n"),
            pl.col("nk_side").is_in(["orig", "both"]).cast(pl.Int64).alias("_out"),
        )
        .group_by(keys)
        .agg(
            pl.col("ts").min().alias("ts"),
            pl.col("ts").max().alias("_last"),
            pl.len().cast(pl.Int64).alias("_connections"),
            pl.col("orig_bytes").fill_null(0).sum().cast(pl.Int64).alias("_orig_bytes"),
            pl.col("resp_bytes").fill_null(0).sum().cast(pl.Int64).alias("_resp_bytes"),
            pl.col("_out").sum().alias("_outbound"),
            pl.col("_proto_n").max().alias("_proto"),
            pl.col("id.resp_p").min().alias("_port_min"),
            pl.col("id.resp_p").max().alias("_port_max"),
        )
    )


def merge_nk_groups(groups: pl.LazyFrame) -> pl.LazyFrame:
    """Fold several ``nk_groups`` results (e.g. one a batch) into one row per key."""
    return groups.group_by([*NK_GROUP_KEYS, "nk_range"]).agg(
        pl.col("ts").min(), pl.col("_last").max(),
        pl.col("_connections").sum(), pl.col("_orig_bytes").sum(), pl.col("_resp_bytes").sum(),
        pl.col("_outbound").sum(), pl.col("_proto").max(), pl.col("_port_min").min(), pl.col("_port_max").max(),
    )


def nk_traffic_findings(groups: pl.LazyFrame, catalogue: Catalogue) -> pl.LazyFrame:
    confidence = {r.name: r.confidence for r in catalogue.ranges}
    if "nk_range" not in groups.collect_schema():
        groups = groups.with_columns(range_of(pl.col("nk_host"), catalogue).alias("nk_range"))
    rows = groups.with_columns(
        pl.lit(None, dtype=pl.Utf8).alias("uid"),
        pl.col("nk_host").alias("id.orig_h"), pl.lit(None, dtype=pl.Int64).alias("id.orig_p"),
        pl.col("peer_h").alias("id.resp_h"), pl.lit(None, dtype=pl.Int64).alias("id.resp_p"),
    )
    return finding(rows, "conn", "nk-traffic", {
        "service": pl.col("service"),
        "proto": pl.col("_proto").replace_strict({v: k for k, v in PROTO_CODES.items()}, default=None,
                                                 return_dtype=pl.Utf8),
        "day": pl.col("_day").cast(pl.Utf8),
        "connections": pl.col("_connections"),
        "bytes": pl.col("_orig_bytes") + pl.col("_resp_bytes"),
        "orig_bytes": pl.col("_orig_bytes"), "resp_bytes": pl.col("_resp_bytes"),
        "outbound": pl.col("_outbound"), "inbound": pl.col("_connections") - pl.col("_outbound"),
        "last_ts": iso(pl.col("_last")), "resp_port_min": pl.col("_port_min"),
        "resp_port_max": pl.col("_port_max"),
    }, confidence=pl.col("nk_range").replace_strict(confidence, default="medium", return_dtype=pl.Utf8))


def nk_traffic(conn: pl.LazyFrame, catalogue: Catalogue) -> pl.LazyFrame:
    """One finding per (NK host, peer, service, UTC day): counts and bytes, not connections.

    ``orig_h`` holds the NK host and ``resp_h`` the peer whatever the direction;
    ``evidence.outbound``/``inbound`` count the connections the NK host opened / received.
    """
    return nk_traffic_findings(nk_groups(conn), catalogue)


# ---------------------------------------------------------------- all together

CONN_COLUMNS = {
    "proto": pl.Utf8(), "service": pl.Utf8(), "orig_bytes": pl.Int64(), "resp_bytes": pl.Int64(),
    "orig_pkts": pl.Int64(), "resp_pkts": pl.Int64(),
}
HTTP_COLUMNS = {
    "host": pl.Utf8(), "uri": pl.Utf8(), "user_agent": pl.Utf8(), "method": pl.Utf8(),
    "orig_mime_types": LIST_UTF8, "resp_mime_types": LIST_UTF8,
}
NK_COLUMNS = ("nk_range", "nk_side", "nk_host", "peer_h")


@dataclass
class Prepared:
    """Each log scoped, tagged and cut to the rows and columns some detection may report.

    ``conn`` holds only conn rows a per-connection detection can use (Tor-listed peers,
    BitTorrent ports or service, DHT-sized UDP); ``nk`` is the whole scoped conn.log,
    left lazy so nk-traffic aggregates it in one streaming pass; ``tls`` is ssl.log
    joined with x509.log, kept only where some TLS or Tor condition holds.
    """

    conn: pl.LazyFrame | None
    nk: pl.LazyFrame | None
    ssl: pl.LazyFrame | None
    x509: pl.LazyFrame | None
    http: pl.LazyFrame | None
    notice: pl.LazyFrame | None
    files: pl.LazyFrame | None
    tls: pl.LazyFrame | None = None

    # Only these are collected by materialise(); nk stays a streaming query.
    SMALL = ("conn", "ssl", "http", "notice", "files")


def detached(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Copy every text value, so a few kept rows do not pin the reader's whole buffers.

    polars strings are views into the buffers the CSV reader filled; a filtered result
    of 100k rows out of 10M otherwise keeps every buffer alive (500 MB for conn.log's
    uid and addresses), because the kept rows are spread over all of them.
    """
    exprs = []
    for name, dtype in lf.collect_schema().items():
        if dtype == pl.Utf8:
            exprs.append(pl.concat_str(pl.col(name), pl.lit("")).alias(name))
        elif dtype == LIST_UTF8:
            exprs.append(pl.col(name).list.eval(pl.concat_str(pl.element(), pl.lit(""))).alias(name))
    return lf.with_columns(exprs) if exprs else lf


def http_candidates() -> pl.Expr:
    uri = pl.col("uri")
    mimes = pl.concat_list(
        pl.col("orig_mime_types").fill_null(pl.lit([], dtype=LIST_UTF8)),
        pl.col("resp_mime_types").fill_null(pl.lit([], dtype=LIST_UTF8)),
    )
    return ((uri.str.contains(TRACKER_RE) & uri.str.contains("info_hash=", literal=True)).fill_null(False)
            | mimes.list.contains(TORRENT_MIME).fill_null(False))


def notice_candidates() -> pl.Expr:
    note = pl.col("note")
    return (note.str.starts_with("NKSensor::") | note.str.starts_with("Signatures::")).fill_null(False)


def conn_candidates(tor_addrs: list[str]) -> pl.Expr:
    """conn rows some per-connection detection may report; the rest can go early."""
    lo, hi = BT_PORTS
    return (
        pl.col("id.resp_h").is_in(tor_addrs) | pl.col("id.orig_h").is_in(tor_addrs)
        | pl.col("service").str.to_lowercase().str.contains("bittorrent").fill_null(False)
        | pl.col("id.resp_p").is_between(lo, hi).fill_null(False)
        | pl.col("id.orig_p").is_between(lo, hi).fill_null(False)
        | ((pl.col("proto") == "udp") & pl.col("service").is_null()
           & pl.col("orig_bytes").is_between(*DHT_QUERY_BYTES)).fill_null(False)
    )


def tls_candidates(tor_addrs: list[str]) -> pl.Expr:
    reasons = tls_conditions()
    out = pl.col("id.resp_h").is_in(tor_addrs) | pl.col("id.orig_h").is_in(tor_addrs)
    for cond in reasons.values():
        out = out | cond
    return out.fill_null(False)


NK_SLIM = ("ts", "id.resp_p", "proto", "service", "orig_bytes", "resp_bytes", "nk_range", "nk_side", "nk_host",
           "peer_h")


def spill(directory: Path, **frames: pl.LazyFrame | None) -> list[pl.LazyFrame | None]:
    """Write each frame to ``directory`` as Arrow IPC, all in one concurrent run, and scan them."""
    names = [n for n, lf in frames.items() if lf is not None]
    sinks = [frames[n].sink_ipc(directory / f"{n}.arrow", lazy=True) for n in names]
    if sinks:
        pl.collect_all(sinks, engine="streaming")
    return [pl.scan_ipc(directory / f"{n}.arrow") if lf is not None else None for n, lf in frames.items()]


def prepare(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str,
            spill_dir: Path | None = None) -> Prepared:
    """Scope and tag every log, keeping only the rows and columns detections read.

    With ``spill_dir``, the scoped conn.log and ssl.log are written there once as Arrow
    IPC; the several queries over each (nk-traffic and conn candidates; the time span,
    then the candidates of ssl.log) read that file, so each log is parsed from text once.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    keys = [*CONN_KEYS, *NK_COLUMNS]
    tor_addrs = list(tor.entries)

    def tagged(lf: pl.LazyFrame | None, columns: dict[str, pl.DataType]) -> pl.LazyFrame | None:
        if lf is None:
            return None
        return scoped(ensure(lf, columns), catalogue, scope).select(keys + list(columns))

    tagged_conn = tagged(logs.conn, CONN_COLUMNS)
    tagged_ssl = tagged(logs.ssl, SSL_COLUMNS)
    if spill_dir is not None:
        tagged_conn, tagged_ssl = spill(spill_dir, conn=tagged_conn, ssl=tagged_ssl)
    conn = nk = None
    if tagged_conn is not None:
        conn = tagged_conn.filter(conn_candidates(tor_addrs))
        nk = tagged_conn.filter(pl.col("nk_range").is_not_null()).select(NK_SLIM)
    ssl = x509 = None
    if tagged_ssl is not None:
        x509 = logs.x509
        ssl = ssl_candidates(tagged_ssl, risky_certs(tagged_ssl, x509), tor_addrs)
    http = tagged(logs.http, HTTP_COLUMNS)
    if http is not None:
        http = http.filter(http_candidates())
    notice = tagged(notices(logs.notice), NOTICE_COLUMNS) if logs.notice is not None else None
    if notice is not None:
        notice = notice.filter(notice_candidates())
    files = tagged(files_with_keys(logs.files), FILES_COLUMNS) if logs.files is not None else None
    if files is not None:
        files = files.filter(pl.col("mime_type") == TORRENT_MIME)
    small = {name: None if lf is None else detached(lf)
             for name, lf in (("conn", conn), ("ssl", ssl), ("http", http), ("notice", notice), ("files", files))}
    return Prepared(nk=nk, x509=x509, **small)


def materialise(prepared: Prepared) -> Prepared:
    """Collect the small prepared frames, each log in one streaming pass, one at a time.

    Several detections read the same rows; polars would scan and tag the log again for
    each of them, so the (scoped, cut down) frames are collected first.
    """
    # One log after the other: run together, their streaming buffers add up at the peak.
    frames = {n: getattr(prepared, n).collect(engine="streaming")
              for n in Prepared.SMALL if getattr(prepared, n) is not None}
    values = {f.name: getattr(prepared, f.name) for f in fields(prepared)}
    values.update({n: df.lazy() for n, df in frames.items()})
    if "ssl" in frames:
        x509 = None
        if prepared.x509 is not None:
            x509 = certs_for(frames["ssl"], prepared.x509).collect(engine="streaming").lazy()
        keep = [*CONN_KEYS, *NK_COLUMNS, *(c for c in SSL_COLUMNS if not c.startswith("cert_chain")),
                *CERT_COLUMNS.values()]
        tls = tls_sessions(frames.pop("ssl").lazy(), x509)
        values["tls"] = tls.select([c for c in keep if c in tls.collect_schema()]).collect().lazy()
        values["ssl"] = None
    return Prepared(**values)


TOR_MATCH_COLUMNS = ["ts", "uid", "_host", "_tor_addr", "_tor_role", "_tor_feed", "nk_range"]


def all_tor_matches(p: Prepared, tor: TorList, from_ssl: bool = True) -> list[tuple[pl.LazyFrame, str]]:
    matches = []
    if p.conn is not None:
        matches.append((tor_matches(p.conn, tor), "conn"))
    if p.tls is not None and from_ssl:
        # A sensor may ship ssl.log alone; finalise() keeps the conn finding when both match.
        matches.append((tor_matches(p.tls, tor), "ssl"))
    return matches


def detection_plan(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str = "nk",
                   prepared: Prepared | None = None, summaries: bool = True,
                   tor_from_ssl: bool = True) -> pl.LazyFrame:
    """Every per-connection detection (and tor-repeat) as one lazy frame of findings.

    nk-traffic is apart (``nk_traffic_plan``): it is the one detection whose output grows
    with the input, so it is streamed rather than collected with the rest.
    ``summaries=False`` leaves out tor-repeat, which needs whole days of logs; follow
    mode keeps that state itself. ``tor_from_ssl=False`` matches Tor lists on conn.log
    only (follow mode, where conn.log rows come later than the ssl.log row of the same
    connection and would otherwise repeat the finding).
    """
    p = prepared or materialise(prepare(logs, catalogue, tor, scope))
    parts: list[pl.LazyFrame] = []
    if p.tls is not None:
        parts += weak_tls(p.tls)
        parts.append(tor_cert(p.tls))
    matches = all_tor_matches(p, tor, from_ssl=tor_from_ssl)
    for m, log in matches:
        parts += tor_list_findings(m, log)
    if matches and summaries:
        parts.append(tor_repeat(pl.concat([m.select(TOR_MATCH_COLUMNS) for m, _ in matches])))
    if p.notice is not None:
        parts.append(tor_notice(p.notice))

    torrent: list[pl.LazyFrame] = []
    torrent += bt_handshake(p.conn, p.notice)
    torrent += dht(p.conn, p.notice)
    torrent += tracker_announce(p.http, p.notice)
    torrent += torrent_file(p.http, p.files)
    parts += torrent
    if p.conn is not None:
        parts.append(bittorrent_port(p.conn, torrent))
    if not parts:
        return empty()
    return pl.concat([part.select(FIELDS) for part in parts], how="vertical_relaxed")


def nk_traffic_plan(prepared: Prepared, catalogue: Catalogue, groups: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """nk-traffic findings, sorted by first time then hosts, as a lazy (streamable) frame."""
    if groups is None:
        if prepared.nk is None:
            return empty()
        groups = nk_groups(prepared.nk)
    groups = groups.sort(["ts", "nk_host", "peer_h", "service"], nulls_last=True)
    return nk_traffic_findings(groups, catalogue).select(FIELDS)


def finalise(findings: pl.DataFrame) -> pl.DataFrame:
    """One finding per (uid, category, reason), keeping the first, then sorted by time."""
    with_uid = findings.filter(pl.col("uid").is_not_null()).unique(
        subset=["uid", "category", "reason"], keep="first", maintain_order=True
    )
    summaries = findings.filter(pl.col("uid").is_null())
    out = pl.concat([with_uid, summaries])
    return out.sort(["ts", "category", "reason", "uid", "orig_h", "resp_h"], nulls_last=True)


@contextlib.contextmanager
def analysis(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str = "nk",
             spill: bool = True) -> Iterator[tuple[pl.DataFrame, pl.LazyFrame]]:
    """(per-connection findings, collected; nk-traffic findings, still lazy).

    The command streams the second straight to its output, so a day with millions of
    NK host/peer pairs never sits in memory as one frame. The lazy frame may read a
    scratch file that exists only inside the ``with`` block.

    ``spill`` trades memory for time: reading the scratch Arrow file back is memory-
    mapped, and on a 10M-row conn.log those pages alone add 400 MB to the peak, so
    the command spills only inputs below ``SPILL_MAX_BYTES``.
    """
    with tempfile.TemporaryDirectory(prefix="sensor-plugins-analyze-") as work:
        spill_dir = Path(work) if spill else None
        prepared = prepare(logs, catalogue, tor, scope, spill_dir=spill_dir)
        # The nk-traffic group-by is the memory peak; it runs first, while nothing else is
        # held, and leaves one small row per group.
        groups = None
        if prepared.nk is not None:
            logged = logs.conn is not None and "nk_range" in logs.conn.collect_schema()
            groups = nk_groups(prepared.nk, carry_range=logged).collect(engine="streaming").lazy()
        prepared = materialise(prepared)
        small = finalise(detection_plan(logs, catalogue, tor, scope, prepared=prepared).collect())
        yield small, nk_traffic_plan(prepared, catalogue, groups)


def detect(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str = "nk") -> pl.DataFrame:
    """All findings over ``logs`` as a DataFrame with ``FINDING_SCHEMA`` (evidence as JSON text)."""
    with analysis(logs, catalogue, tor, scope) as (small, nk):
        both = pl.concat([small, nk.collect(engine="streaming")], how="vertical_relaxed")
    return both.sort(["ts", "category", "reason", "uid", "orig_h", "resp_h"], nulls_last=True, maintain_order=True)
