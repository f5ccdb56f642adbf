"""The Spark engine reads through zat's LogToSparkDF; each of zat's traps is shown on a real row,
next to the subclass' answer, which must give exactly the local reader's typed rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from zat.log_to_sparkdf import LogToSparkDF

from sensor_plugins.analysis.engines.spark import decoded
from sensor_plugins.analysis.engines.zat_spark import LinkDir, ZatSparkReader, find_sources, typed_frame
from sensor_plugins.analysis.logfiles import KNOWN_TYPES
from sensor_plugins.analysis.logs import read_log

pytestmark = pytest.mark.spark

ZAT = Path(__file__).parent / "fixtures" / "logs" / "zat"
ZEEK7 = Path(__file__).parent / "fixtures" / "logs" / "zeek7"


def spark_read(spark, path: Path) -> pl.DataFrame:
    """``path`` read by the Spark engine (zat subclass, then the local typing), as polars."""
    with LinkDir() as links:
        (source,) = find_sources(spark, [str(path)], links)
        frame, types = typed_frame(spark, source)
        return decoded(frame.toArrow(), {k.replace(".", "__"): k for k in types})


def zat_read(spark, path: Path, **kwargs) -> list:
    """Rows as zat's own loader gives them, with Spark's ANSI mode off for the read: zat casts
    the text "null" to boolean, which ANSI mode (Spark 4's default) rejects."""
    spark.conf.set("spark.sql.ansi.enabled", "false")
    try:
        return LogToSparkDF(spark).create_dataframe(str(path), **kwargs).collect()
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "true")


def zat_row(spark, path: Path, uid: str, **kwargs):
    return next(r for r in zat_read(spark, path, **kwargs) if r["uid"] == uid)


@pytest.mark.parametrize("path", [ZAT / "conn.log", ZAT / "http.log", ZAT / "x509.log", ZAT / "files.log",
                                  ZAT / "http.log.gz", ZAT / "json" / "ssl.log",
                                  ZEEK7 / "tls__tls-expired-cert" / "ssl.log"],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_spark_rows_equal_the_local_readers_rows(spark, path: Path) -> None:
    local = read_log([path]).collect()
    got = spark_read(spark, path)
    if path.parent.name == "json":
        # JSON logs in Spark carry every field a detection reads (null where the file
        # lacks it) and no other.
        extra = [c for c in got.columns if c not in local.columns]
        assert all(got[c].null_count() == got.height for c in extra)
        known = [c for c in local.columns if c in KNOWN_TYPES]
        got, local = got.select(known), local.select(known)
    assert got.columns == local.columns
    assert got.schema == local.schema
    assert got.sort("uid" if "uid" in got.columns else got.columns[0]).equals(
        local.sort("uid" if "uid" in local.columns else local.columns[0]))


def test_zat_fills_unset_bytes_with_zero_and_the_subclass_keeps_them_null(spark) -> None:
    # CQVVE916jR386FIvPe: a DNS query with no reply; Zeek left orig_bytes unset ("-").
    row = zat_row(spark, ZAT / "conn.log", "CQVVE916jR386FIvPe")
    assert row["orig_bytes"] == 0
    assert row["service"] == "-"
    ours = spark_read(spark, ZAT / "conn.log").filter(pl.col("uid") == "CQVVE916jR386FIvPe")
    assert ours["orig_bytes"].to_list() == [None]
    assert ours["service"].to_list() == [None]
    with pytest.raises(ValueError, match="fillna"):
        ZatSparkReader(spark).create_dataframe(str(ZAT / "conn.log"), fillna=True)


def test_zat_reads_durations_as_32_bit_floats(spark) -> None:
    zat_rows = zat_read(spark, ZAT / "conn.log", fillna=False)
    exact = read_log([ZAT / "conn.log"]).filter(pl.col("duration").is_not_null()).head(50).collect()
    zat_by_uid = {r["uid"]: r["duration"] for r in zat_rows}
    # 32 bits hold about 7 digits: most of Zeek's microsecond durations come back changed.
    changed = [u for u, d in zip(exact["uid"], exact["duration"], strict=True) if zat_by_uid[u] != d]
    assert len(changed) > 25
    ours = spark_read(spark, ZAT / "conn.log").filter(pl.col("uid").is_in(exact["uid"].to_list()))
    assert dict(zip(ours["uid"], ours["duration"], strict=True)) == dict(
        zip(exact["uid"], exact["duration"], strict=True))


def test_zat_quote_character_swallows_a_field_starting_with_a_quote(spark, tmp_path) -> None:
    # A real http.log row whose user agent a client sent starting with '"'.
    lines = (ZAT / "http.log").read_text().splitlines(keepends=True)
    header = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    row = next(x for x in lines if not x.startswith("#")).rstrip("\n").split("\t")
    row[names.index("user_agent")] = '"Mozilla/5.0 (quoted)'
    path = tmp_path / "http.log"
    path.write_text("".join(header) + "\t".join(row) + "\n")
    (row,) = zat_read(spark, path, fillna=False)
    assert row["user_agent"] != '"Mozilla/5.0 (quoted)'
    ours = spark_read(spark, path)
    assert ours["user_agent"].to_list() == ['"Mozilla/5.0 (quoted)']
    assert ours["uid"].to_list() == [row[names.index("uid")]]


def test_zat_keeps_sets_as_text_and_empty_as_the_word(spark) -> None:
    assert zat_row(spark, ZAT / "conn.log", "CQVVE916jR386FIvPe", fillna=False)["tunnel_parents"] == "(empty)"
    files = zat_read(spark, ZAT / "files.log", fillna=False)[0]
    assert isinstance(files["tx_hosts"], str)
    ours = spark_read(spark, ZAT / "conn.log").filter(pl.col("uid") == "CQVVE916jR386FIvPe")
    assert ours["tunnel_parents"].to_list() == [[]]
    assert isinstance(spark_read(spark, ZAT / "files.log").schema["tx_hosts"], pl.List)


def test_zat_fails_on_spark_4_at_the_first_unset_bool_and_the_subclass_reads_it(spark) -> None:
    # conn.log's local_orig is unset ("-") on every row of zat's sample.
    with pytest.raises(Exception, match="CAST_INVALID_INPUT"):
        LogToSparkDF(spark).create_dataframe(str(ZAT / "conn.log"), fillna=False).collect()
    ours = spark_read(spark, ZAT / "conn.log")
    assert ours.schema["local_orig"] == pl.Boolean
    assert ours["local_orig"].null_count() == ours.height


def test_zat_header_reader_cannot_open_gzip_and_the_subclass_can(spark, tmp_path) -> None:
    with pytest.raises((UnicodeDecodeError, OSError, ValueError)):
        LogToSparkDF(spark).create_dataframe(str(ZAT / "http.log.gz"))
    # And a rotated archive name, whose ':' Hadoop paths cannot hold.
    rotated = tmp_path / "http.00:00:00-01:00:00.log.gz"
    shutil.copy(ZAT / "http.log.gz", rotated)
    assert spark_read(spark, rotated).height == read_log([ZAT / "http.log"]).collect().height


def test_zat_renames_dotted_columns_and_the_subclass_keeps_zeek_names(spark) -> None:
    zat_cols = LogToSparkDF(spark).create_dataframe(str(ZAT / "conn.log"), fillna=False).columns
    assert "id_orig_h" in zat_cols
    assert "id.orig_h" in spark_read(spark, ZAT / "conn.log").columns
