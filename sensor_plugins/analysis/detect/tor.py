"""Tor: listed relays and exits (while they were listed), Tor-style certificates, our Zeek notices, repeat use."""

from __future__ import annotations

import datetime as dt

import polars as pl

from sensor_plugins.analysis.detect.frames import clip, finding
from sensor_plugins.analysis.detect.notices import notice_evidence
from sensor_plugins.analysis.detect.tls import tls_conditions
from sensor_plugins.inputs.feeds import TorList

TOR_NOTICE = "NKSensor::Tor_Traffic"
# A plain Tor list says an address was listed on the day it was fetched; relays stay up
# for days, so a connection a few days either side still counts, but not years away.
TOR_LIST_GRACE = dt.timedelta(days=7)


def tor_table(tor: TorList) -> pl.LazyFrame:
    """The merged Tor list as a frame: address, role, feed, and the days it counts as Tor."""
    entries = list(tor.entries.values())
    last = pl.Series([e.last_seen for e in entries], dtype=pl.Date)
    first = pl.Series([e.first_seen for e in entries], dtype=pl.Date).fill_null(last)
    # Built column by column from the list: a dict a row cost 50 ms for 8,000 addresses.
    return pl.LazyFrame({
        "_tor_addr": pl.Series([e.address for e in entries], dtype=pl.Utf8),
        "_tor_role": pl.Series([e.role for e in entries], dtype=pl.Utf8),
        "_tor_feed": pl.Series([e.feed for e in entries], dtype=pl.Utf8),
        "_listed_first": first,
        "_listed_last": last,
        "_valid_from": first - TOR_LIST_GRACE,
        "_valid_to": last + TOR_LIST_GRACE,
    })


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


def tor_notice(notice: pl.LazyFrame) -> pl.LazyFrame:
    return finding(notice.filter(pl.col("note") == TOR_NOTICE), "notice", "tor-notice", notice_evidence())


