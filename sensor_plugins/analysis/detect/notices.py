"""Our Zeek package's notices in notice.log, shaped as evidence for Tor and BitTorrent findings."""

from __future__ import annotations

import polars as pl

from sensor_plugins.analysis.detect.frames import CONN_KEYS, clip, ensure

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


def notice_evidence() -> dict[str, pl.Expr]:
    return {"note": pl.col("note"), "msg": clip(pl.col("msg")), "sub": clip(pl.col("sub"))}
