"""Both engines on the same logs give the same findings, row for row, evidence included.

The Spark engine runs the local detections on rows that Spark groups; these tests are what
holds it to "the same findings as on one machine": zat's sample logs with Zeek 7's, and a
two-sensor, three-day zeekctl archive tree (rotated, gzipped, with ':' in the names) whose
tor-repeat, DHT and nk-traffic findings need rows from several files, and, where Zeek is
installed, real Zeek's logs of every scenario pcap with our package's notices.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from spark_trees import add_cross_day_rows, comparable, make_logs, zeekctl_tree

from sensor_plugins.analysis.detect import detect
from sensor_plugins.analysis.engines.spark import bucket_count, collect_sorted, read_logs, spark_findings
from sensor_plugins.analysis.engines.zat_spark import LinkDir, find_sources
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.scenarios import pcaps

pytestmark = pytest.mark.spark

FIXTURES = Path(__file__).parent / "fixtures" / "logs"


@pytest.fixture(scope="module")
def inputs():
    return load_catalogue(), load_tor_list(None)


def both(spark, paths: list[Path], inputs, scope: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    catalogue, tor = inputs
    local = detect(load_logset(paths), catalogue, tor, scope=scope)
    with LinkDir() as links:
        found = collect_sorted(spark_findings(spark, [str(p) for p in paths], catalogue, tor, links, scope=scope))
    return local, found


def test_zat_and_zeek7_logs_give_identical_findings(spark, inputs) -> None:
    # zat ships http.log.gz as a gzipped copy of http.log, which analyze refuses beside it
    # (every count would double), and http.log.corrupt.gz truncated on purpose, which named
    # as a file is an error; both are read alone in their own tests.
    skip = {"http.log.gz", "http.log.corrupt.gz"}
    zat = [p for p in sorted((FIXTURES / "zat").rglob("*")) if p.is_file() and ".log" in p.name and p.name not in skip]
    local, found = both(spark, [*zat, FIXTURES / "zeek7"], inputs, scope="all")
    # 757 findings over 11 reasons: every weak-TLS reason, tor-cert and tracker-announce.
    assert local.height > 700
    assert set(local["category"]) >= {"weak-tls", "tor", "torrent"}
    assert comparable(found) == comparable(local)


@pytest.fixture(scope="module")
def archive_tree(tmp_path_factory, inputs) -> Path:
    catalogue, tor = inputs
    flat = make_logs(tmp_path_factory.mktemp("flat"), rows=6000, days=3, seed=11)
    seen = detect(load_logset([flat]), catalogue, tor, scope="nk")
    tor_uids = seen.filter(pl.col("reason").is_in(["tor-exit", "tor-relay"]) & (pl.col("log") == "conn"))["uid"]
    nk_host = seen.filter(pl.col("reason") == "nk-traffic")["orig_h"][0]
    add_cross_day_rows(flat, tor_uids.head(4).to_list(), nk_host)
    return zeekctl_tree(flat, tmp_path_factory.mktemp("archive"))


def test_multi_sensor_multi_day_archive_gives_identical_findings(spark, inputs, archive_tree: Path) -> None:
    files = sorted(p for p in archive_tree.rglob("*") if p.is_file())
    assert {p.parts[-3] for p in files} == {"tap-a", "tap-b"}
    assert any(p.name.endswith(".log.gz") and ":" in p.name for p in files)
    local, found = both(spark, [archive_tree], inputs, scope="nk")
    reasons = set(local["reason"])
    # The cross-file detections are there, so agreement on them means something.
    assert {"tor-repeat", "dht", "nk-traffic"} <= reasons
    repeat = local.filter(pl.col("reason") == "tor-repeat")
    assert repeat["evidence"].str.json_path_match("$.day_count").cast(pl.Int64).min() >= 2
    assert comparable(found) == comparable(local)


@pytest.mark.zeek
def test_real_zeek_logs_of_every_scenario_give_identical_findings_including_our_notices(spark, inputs,
                                                                                       scenario_runs):
    # Only these logs carry NKSensor notices and the BitTorrent service our DPD signature
    # sets: the notice-based reasons (tor-notice, bittorrent-handshake, dht) are compared here.
    # The runs of every scenario (tests/conftest.py) lie under one root: <root>/<name>/logs.
    (root,) = {run.log_dir.parent.parent for run in scenario_runs.values()}
    assert sorted(p.name for p in root.iterdir()) == sorted(pcaps.SCENARIOS)
    local, found = both(spark, [root], inputs, scope="nk")
    assert set(local["reason"]) >= {"tor-notice", "bittorrent-handshake", "dht", "tor-cert", "nk-traffic"}
    assert comparable(found) == comparable(local)


def test_buckets_grow_with_the_input_and_the_findings_stay_the_same(spark, inputs, archive_tree: Path) -> None:
    # Small splits stand for a big input: each bucket reaches one Python call whole, so
    # their number must follow the input's splits, not stay at the shuffle partitions.
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(32 * 1024))
    spark.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        with LinkDir() as links:
            logs = read_logs(spark, find_sources(spark, [str(archive_tree)], links))
            buckets = bucket_count(spark, logs)
        local, found = both(spark, [archive_tree], inputs, scope="nk")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert buckets > int(spark.conf.get("spark.sql.shuffle.partitions")) * 4
    assert comparable(found) == comparable(local)
