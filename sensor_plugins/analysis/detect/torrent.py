"""BitTorrent: peer handshakes, DHT, tracker announces, .torrent files, and the bare port heuristic."""

from __future__ import annotations

import polars as pl

from sensor_plugins.analysis.detect.frames import CONN_KEYS, LIST_UTF8, clip, ensure, finding
from sensor_plugins.analysis.detect.notices import notice_evidence

TRACKER_RE = r"(?i)/announce(\.php)?(\?|$)"
TORRENT_MIME = "application/x-bittorrent"

BT_PORTS = (6881, 6889)
BT_NOTICE = "NKSensor::BitTorrent"

# A DHT node sends queries from one UDP port to many peers, one short exchange each.
# KRPC queries are bencoded dicts of about 50 to 300 bytes, and DHT peers listen on
# random ports; the port spread tells DHT apart from botnet P2P on one fixed port
# (zat's conn.log holds ZeroAccess on UDP 16464, which must not count).
DHT_MIN_PEERS = 10
DHT_MAX_PKTS = 2

DHT_QUERY_BYTES = (40, 400)


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
                           "bittorrent-handshake", notice_evidence()))
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
                           "dht", notice_evidence(), confidence=pl.lit("high")))
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
                           "tracker-announce", notice_evidence()))
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


