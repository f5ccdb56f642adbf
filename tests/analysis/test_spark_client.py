"""The Spark engine gives the client findings the local engine gives, row for row.

Real Zeek 7.0.11 logs with the nk-sensor package's ``ja4`` and ``nk_client_ciphers``
(tests/analysis/fixtures/logs/ja4/), TSV and JSON, with a site's known-client table.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from spark_trees import comparable

from sensor_plugins.analysis.detect import detect
from sensor_plugins.analysis.engines.spark import collect_sorted, spark_findings
from sensor_plugins.analysis.engines.zat_spark import LinkDir
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.clients import load_client_table
from sensor_plugins.inputs.feeds import load_tor_list

pytestmark = pytest.mark.spark

JA4_LOGS = Path(__file__).parent / "fixtures" / "logs" / "ja4"


def test_client_findings_are_identical_on_both_engines(spark, tmp_path) -> None:
    site = tmp_path / "clients.tsv"
    site.write_text("t12i020300_ea1f27bcdcc2_15cf763851c4\tKoryo Link updater\tsite, 2026-12\n")
    clients = load_client_table([site])
    catalogue, tor = load_catalogue(), load_tor_list(None)
    paths = sorted(p for p in JA4_LOGS.iterdir() if p.is_dir())
    local = detect(load_logset(paths), catalogue, tor, scope="all", clients=clients)
    with LinkDir() as links:
        found = collect_sorted(spark_findings(spark, [str(p) for p in paths], catalogue, tor, links, scope="all",
                                              clients=clients))
    client = local.filter(pl.col("category") == "client")
    # Every client reason, the site's name included, so agreement on them means something.
    assert set(client["reason"]) == {"weak-offer", "old-max-version", "known-client"}
    assert client["evidence"].str.contains("Koryo Link updater").any()
    assert comparable(found) == comparable(local)
