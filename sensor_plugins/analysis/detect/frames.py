"""The shape every detection returns: one finding row per connection and reason, with its evidence."""

from __future__ import annotations

import polars as pl

from sensor_plugins.analysis.findings import FINDING_SCHEMA, UTC_US

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
    "weak-offer": ("client", "medium", "high"),
    "old-max-version": ("client", "medium", "high"),
    # A fingerprint names a TLS stack; programs built on one stack share it.
    "known-client": ("client", "low", "medium"),
}

MAX_EVIDENCE_TEXT = 300


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
