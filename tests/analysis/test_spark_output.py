"""``analyze --engine spark``'s outputs: Parquet partitioned by date and category, written
under a temporary name and renamed; a one-line answer when pyspark is missing."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from sensor_plugins.analysis.detect import detect
from sensor_plugins.analysis.engines import INSTALL_HINT
from sensor_plugins.analysis.engines.spark import (
    collect_sorted,
    empty_of,
    progress_line,
    spark_findings,
    spark_types,
    stream_sorted,
    write_parquet,
)
from sensor_plugins.analysis.engines.zat_spark import LinkDir
from sensor_plugins.analysis.findings import FINDING_SCHEMA
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.analysis.output import write_rows
from sensor_plugins.cli import main
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

pytestmark = pytest.mark.spark

ZEEK7 = Path(__file__).parent / "fixtures" / "logs" / "zeek7"


def test_without_pyspark_the_spark_engine_says_how_to_install_it(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    assert main(["analyze", str(ZEEK7), "--engine", "spark"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert INSTALL_HINT in err


def test_parquet_needs_the_spark_engine(capsys, tmp_path) -> None:
    assert main(["analyze", str(ZEEK7), "--format", "parquet", "--out", str(tmp_path / "p")]) == 2
    assert "--engine spark" in capsys.readouterr().err


@pytest.fixture(scope="module")
def zeek7_findings(spark) -> Iterator[DataFrame]:
    """The Spark engine's findings over the Zeek 7 logs, computed once for the module.

    The very DataFrame ``spark_findings`` builds, persisted: the Parquet test writes it and
    every streamed case streams and collects it as it is, so the detections behind it run
    once, not once per Parquet write and twice per format.
    """
    with LinkDir() as links:
        findings = spark_findings(spark, [str(ZEEK7)], load_catalogue(), load_tor_list(None), links,
                                  scope="all").persist()
        findings.count()
        yield findings
        findings.unpersist()


def test_parquet_is_partitioned_by_date_and_category_and_holds_every_finding(spark, zeek7_findings,
                                                                             tmp_path) -> None:
    out = tmp_path / "findings.parquet"
    count = write_parquet(spark, zeek7_findings, str(out))
    local = detect(load_logset([ZEEK7]), load_catalogue(), load_tor_list(None), scope="all")
    assert count == local.height
    parts = {p.relative_to(out).parts[:2] for p in out.rglob("*.parquet")}
    assert {d for d, _ in parts} == {f"date={d}" for d in local["ts"].dt.date().cast(pl.Utf8).unique()}
    assert {c for _, c in parts} == {f"category={c}" for c in local["category"].unique()}
    back = pl.read_parquet(out / "**" / "*.parquet", hive_partitioning=True)
    assert sorted(back["uid"].drop_nulls().to_list()) == sorted(local["uid"].drop_nulls().to_list())
    assert [p.name for p in tmp_path.iterdir()] == ["findings.parquet"]
    # A second run never writes over what is there.
    before = sorted(out.rglob("*"))
    with pytest.raises(SensorPluginsError, match="already exists"):
        write_parquet(spark, few_findings(spark), str(out))
    assert sorted(out.rglob("*")) == before


def few_findings(spark):
    rows = [(dt.datetime(2024, 3, 12, 1, 2, 3, tzinfo=dt.UTC), f"C{i}", "conn", "tor", "tor-exit", "10.0.0.1", 1,
             "192.0.2.1", 443, None, "high", "high", "{}") for i in range(3)]
    return spark.createDataFrame(rows, spark_types(empty_of(FINDING_SCHEMA)))


def test_a_failed_parquet_job_leaves_nothing_behind(spark, tmp_path) -> None:
    def fail(_: str) -> str:
        raise RuntimeError("worker lost")

    out = tmp_path / "findings.parquet"
    broken = few_findings(spark).withColumn("evidence", F.udf(fail, StringType())(F.col("evidence")))
    with pytest.raises(Exception, match="worker lost"):
        write_parquet(spark, broken, str(out))
    assert list(tmp_path.iterdir()) == []


def test_the_progress_line_shows_spark_stages_and_tasks(spark, capsys) -> None:
    def slow(batches):
        for batch in batches:
            time.sleep(1.5)
            yield batch

    with progress_line(spark, True):
        spark.range(4, numPartitions=2).mapInArrow(slow, "id long").collect()
    err = capsys.readouterr().err
    assert re.search(r"spark: stage \d+ [0-2]/2 tasks", err)
    assert err.endswith("\r\x1b[K")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "zeek"])
def test_streamed_rows_are_the_collected_rows_byte_for_byte_in_the_same_order(zeek7_findings, fmt) -> None:
    # The driver gets one partition's text at a time; spread over many partitions of a few
    # rows each, in cells of fewer, they must still come out in the order, and the bytes,
    # of the collected output.
    findings = zeek7_findings.repartition(7)
    collected = io.BytesIO()
    write_rows(collect_sorted(findings), fmt, collected)
    streamed = io.BytesIO()
    count = stream_sorted(findings, fmt, streamed, partition_rows=5, chunk_rows=2)
    assert count == collected.getvalue().count(b"\n") > 20
    assert streamed.getvalue() == collected.getvalue()
