"""All detections together: prepare the scoped logs once, run every detection, de-duplicate and sort."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import polars as pl

from sensor_plugins.analysis.detect.client import CLIENT_COLUMNS, client_findings
from sensor_plugins.analysis.detect.frames import CONN_KEYS, LIST_UTF8, detached, empty, ensure
from sensor_plugins.analysis.detect.nk import scoped
from sensor_plugins.analysis.detect.notices import NOTICE_COLUMNS, notices
from sensor_plugins.analysis.detect.tls import (
    CERT_COLUMNS,
    SSL_COLUMNS,
    X509_TYPES,
    certs_for,
    risky_certs,
    ssl_candidates,
    tls_conditions,
    tls_sessions,
    weak_tls,
)
from sensor_plugins.analysis.detect.tor import tor_cert, tor_list_findings, tor_matches, tor_notice, tor_repeat
from sensor_plugins.analysis.detect.torrent import (
    BT_PORTS,
    DHT_QUERY_BYTES,
    FILES_COLUMNS,
    TORRENT_MIME,
    TRACKER_RE,
    bittorrent_port,
    bt_handshake,
    dht,
    files_with_keys,
    torrent_file,
    tracker_announce,
)
from sensor_plugins.analysis.detect.traffic import NK_TRAFFIC_ORDER, nk_groups, nk_traffic_findings
from sensor_plugins.analysis.findings import FIELDS
from sensor_plugins.analysis.logs import LogSet
from sensor_plugins.analysis.options import SCOPES
from sensor_plugins.inputs.catalogue import Catalogue
from sensor_plugins.inputs.clients import ClientTable, load_client_table
from sensor_plugins.inputs.feeds import TorList

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
    joined with x509.log, kept only where some TLS or Tor condition holds; ``client``
    holds the ssl.log rows that carry the package's ``ja4``.
    """

    conn: pl.LazyFrame | None
    nk: pl.LazyFrame | None
    ssl: pl.LazyFrame | None
    x509: pl.LazyFrame | None
    http: pl.LazyFrame | None
    notice: pl.LazyFrame | None
    files: pl.LazyFrame | None
    tls: pl.LazyFrame | None = None
    client: pl.LazyFrame | None = None

    # Only these are collected by materialise(); nk stays a streaming query.
    SMALL = ("conn", "ssl", "http", "notice", "files", "client")


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


def collected(**frames: pl.LazyFrame | None) -> list[pl.LazyFrame | None]:
    """Collect the frames in one concurrent run and hand them back as lazy frames over memory."""
    names = [n for n, lf in frames.items() if lf is not None]
    done = dict(zip(names, pl.collect_all([frames[n] for n in names]), strict=True)) if names else {}
    return [done[n].lazy() if n in done else None for n in frames]


def prepare(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str,
            in_memory: bool = False) -> Prepared:
    """Scope and tag every log, keeping only the rows and columns detections read.

    With ``in_memory``, the scoped logs (and the x509.log columns the detections read)
    are collected first, all parsed together; the several queries over each
    (nk-traffic and conn candidates; the time span, then the candidates of ssl.log; the
    risky certificates, then the leaf certificates) then read memory, so each log is
    parsed from text once. Without it each query scans the text again,
    which holds less at the peak on inputs too large to keep.
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
    tagged_ssl = tagged(logs.ssl, {**SSL_COLUMNS, **CLIENT_COLUMNS})
    x509 = logs.x509
    http = tagged(logs.http, HTTP_COLUMNS)
    if http is not None:
        http = http.filter(http_candidates())
    notice = tagged(notices(logs.notice), NOTICE_COLUMNS) if logs.notice is not None else None
    if notice is not None:
        notice = notice.filter(notice_candidates())
    files = tagged(files_with_keys(logs.files), FILES_COLUMNS) if logs.files is not None else None
    if files is not None:
        files = files.filter(pl.col("mime_type") == TORRENT_MIME)
    if in_memory:
        if x509 is not None:
            # Only the columns detections read; which join keys exist is decided from them.
            x509 = x509.select([c for c in X509_TYPES if c in x509.collect_schema()])
        tagged_conn, tagged_ssl, x509, http, notice, files = collected(
            conn=tagged_conn, ssl=tagged_ssl, x509=x509, http=http, notice=notice, files=files)
    conn = nk = None
    if tagged_conn is not None:
        conn = tagged_conn.filter(conn_candidates(tor_addrs))
        nk = tagged_conn.filter(pl.col("nk_range").is_not_null()).select(NK_SLIM)
    ssl = client = None
    if tagged_ssl is not None:
        ssl = ssl_candidates(tagged_ssl.drop(list(CLIENT_COLUMNS)), risky_certs(tagged_ssl, x509), tor_addrs)
        if "ja4" in logs.ssl.collect_schema():
            client = tagged_ssl.filter(pl.col("ja4").is_not_null()).select(
                [*keys, "server_name", *CLIENT_COLUMNS])
    small = {name: None if lf is None else detached(lf)
             for name, lf in (("conn", conn), ("ssl", ssl), ("http", http), ("notice", notice), ("files", files),
                              ("client", client))}
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
                   tor_from_ssl: bool = True, grouped: bool = True,
                   clients: ClientTable | None = None) -> pl.LazyFrame:
    """Every per-connection detection (and tor-repeat) as one lazy frame of findings.

    nk-traffic is apart (``nk_traffic_plan``): it is the one detection whose output grows
    with the input, so it is streamed rather than collected with the rest.
    ``summaries=False`` leaves out tor-repeat, which needs whole days of logs; follow
    mode keeps that state itself. ``tor_from_ssl=False`` matches Tor lists on conn.log
    only (follow mode, where conn.log rows come later than the ssl.log row of the same
    connection and would otherwise repeat the finding). ``grouped=False`` leaves out the
    detections keyed by something other than the connection (tor-repeat and the DHT
    fan-out over conn.log), for the Spark engine, which runs them after its own shuffle.
    ``clients`` is the known-client table (the bundled one when not given).
    """
    p = prepared or materialise(prepare(logs, catalogue, tor, scope))
    parts: list[pl.LazyFrame] = []
    if p.client is not None:
        parts += client_findings(p.client, clients if clients is not None else load_client_table())
    if p.tls is not None:
        parts += weak_tls(p.tls)
        parts.append(tor_cert(p.tls))
    matches = all_tor_matches(p, tor, from_ssl=tor_from_ssl)
    for m, log in matches:
        parts += tor_list_findings(m, log)
    if matches and summaries and grouped:
        parts.append(tor_repeat(pl.concat([m.select(TOR_MATCH_COLUMNS) for m, _ in matches])))
    if p.notice is not None:
        parts.append(tor_notice(p.notice))

    torrent: list[pl.LazyFrame] = []
    torrent += bt_handshake(p.conn, p.notice)
    torrent += dht(p.conn if grouped else None, p.notice)
    torrent += tracker_announce(p.http, p.notice)
    torrent += torrent_file(p.http, p.files)
    parts += torrent
    if p.conn is not None:
        parts.append(bittorrent_port(p.conn, torrent))
    if not parts:
        return empty()
    return pl.concat([part.select(FIELDS) for part in parts], how="vertical_relaxed")


def nk_traffic_plan(prepared: Prepared, catalogue: Catalogue, groups: pl.LazyFrame | None = None,
                    carry_range: bool = True) -> pl.LazyFrame:
    """nk-traffic findings, sorted by first time then hosts, as a lazy (streamable) frame.

    ``groups`` are ``nk_groups`` already computed; without them they are grouped here
    (``carry_range`` as in ``nk_groups``).
    """
    if groups is None:
        if prepared.nk is None:
            return empty()
        groups = nk_groups(prepared.nk, carry_range=carry_range)
    groups = groups.sort(NK_TRAFFIC_ORDER, nulls_last=True)
    return nk_traffic_findings(groups, catalogue).select(FIELDS)


def finalise(findings: pl.DataFrame) -> pl.DataFrame:
    """One finding per (uid, category, reason), keeping the first, then sorted by time."""
    with_uid = findings.filter(pl.col("uid").is_not_null()).unique(
        subset=["uid", "category", "reason"], keep="first", maintain_order=True
    )
    summaries = findings.filter(pl.col("uid").is_null())
    out = pl.concat([with_uid, summaries])
    return out.sort(["ts", "category", "reason", "uid", "orig_h", "resp_h"], nulls_last=True)


def analysis(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str = "nk",
             in_memory: bool = True, clients: ClientTable | None = None) -> tuple[pl.DataFrame, pl.LazyFrame]:
    """(per-connection findings, collected; nk-traffic findings, still lazy).

    The command streams the second straight to its output, so a day with millions of
    NK host/peer pairs never sits in memory as one frame.

    ``in_memory`` trades memory for time (see ``prepare``): the scoped conn.log of a
    10M-row day alone is about 1 GB, so the command keeps only small inputs.
    """
    prepared = prepare(logs, catalogue, tor, scope, in_memory=in_memory)
    carry_range = logs.conn is not None and "nk_range" in logs.conn.collect_schema()
    if in_memory:
        # Both halves now read only memory and share nothing, so the nk-traffic findings
        # are computed beside the per-connection ones (polars releases the GIL). On two
        # cores that polars already keeps busy it gains little: 0.03 s of 2.55 s on 1M
        # conn rows (perf stat -r 6, 2026-11-28).
        with ThreadPoolExecutor(max_workers=1) as pool:
            nk = pool.submit(lambda: nk_traffic_plan(prepared, catalogue, None, carry_range).collect())
            small = finalise(detection_plan(logs, catalogue, tor, scope, prepared=materialise(prepared),
                                            clients=clients).collect())
            return small, nk.result().lazy()
    # The nk-traffic group-by is the memory peak; it runs first, while nothing else is
    # held, and leaves one small row per group.
    groups = None
    if prepared.nk is not None:
        groups = nk_groups(prepared.nk, carry_range=carry_range).collect(engine="streaming").lazy()
    prepared = materialise(prepared)
    small = finalise(detection_plan(logs, catalogue, tor, scope, prepared=prepared, clients=clients).collect())
    return small, nk_traffic_plan(prepared, catalogue, groups)


def detect(logs: LogSet, catalogue: Catalogue, tor: TorList, scope: str = "nk",
           in_memory: bool = True, clients: ClientTable | None = None) -> pl.DataFrame:
    """All findings over ``logs`` as a DataFrame with ``FINDING_SCHEMA`` (evidence as JSON text)."""
    small, nk = analysis(logs, catalogue, tor, scope, in_memory=in_memory, clients=clients)
    both = pl.concat([small, nk.collect(engine="streaming")], how="vertical_relaxed")
    return both.sort(["ts", "category", "reason", "uid", "orig_h", "resp_h"], nulls_last=True, maintain_order=True)
