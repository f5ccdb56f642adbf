"""Shared test helpers: where the repository is, how to write a catalogue for one test, and
the one Spark session the Spark tests share.

Each stage's tests live in ``tests/<stage>/`` with their fixtures in ``tests/<stage>/fixtures/``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent

RANGE_TEMPLATE = """\
  - name: {name}
    cidr: {cidr}
    country: KP
    owner: Test owner
    source: Test source
    confidence: {confidence}
"""


def catalogue_yaml(*ranges: tuple[str, str], extra: str = "", confidence: str = "high") -> str:
    """A minimal valid catalogue holding ``(name, cidr)`` ranges."""
    body = "".join(RANGE_TEMPLATE.format(name=n, cidr=c, confidence=confidence) for n, c in ranges)
    return "version: 1\n" + textwrap.dedent(extra) + "ranges:\n" + body


@pytest.fixture
def write_catalogue(tmp_path: Path):
    def write(text: str, name: str = "catalogue.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``zeek`` run whenever a zeek binary is on PATH (or in $ZEEK), and skip otherwise."""
    from sensor_plugins.runners.zeek import find_zeek

    if find_zeek() is not None:
        return
    skip = pytest.mark.skip(reason="zeek is not installed: build Zeek 7.0 LTS and put it on PATH")
    for item in items:
        if "zeek" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def spark():
    """One Spark session for every Spark test in the run: starting a JVM costs seconds."""
    from sensor_plugins.analysis.engines.spark import session

    # Two buckets: the test logs are small, and each shuffle partition costs a task.
    spark = session("local[2]", app="sensor-plugins tests", shuffle_partitions=2)
    yield spark
    spark.stop()
