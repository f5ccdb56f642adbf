"""One Spark session for every Spark test of the analysis stage: starting a JVM costs seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from sensor_plugins.analysis.engines.spark import session

    # Two buckets: the test logs are small, and each shuffle partition costs a task.
    spark = session("local[2]", app="sensor-plugins tests", shuffle_partitions=2)
    yield spark
    spark.stop()
