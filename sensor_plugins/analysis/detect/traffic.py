"""nk-traffic: one finding per NK host, peer, service and UTC day, with counts and bytes."""

from __future__ import annotations

import polars as pl

from sensor_plugins.analysis.detect.frames import finding, iso
from sensor_plugins.analysis.detect.nk import range_of
from sensor_plugins.inputs.catalogue import Catalogue

# nk_range depends on nk_host alone, so it is looked up again after the group-by rather
# than carried through it: every key or aggregate costs the streaming group-by about
# 50 MB a million groups.
NK_GROUP_KEYS = ("nk_host", "peer_h", "service", "_day")
# The order nk-traffic findings are written in, batch or follow: the same input gives the
# same output (a group-by alone leaves the order to chance).
NK_TRAFFIC_ORDER = ["ts", "nk_host", "peer_h", "service"]
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


