"""Shared test helpers: where the repository is, how to write a catalogue for one test, and
the one Spark session the Spark tests share.

Each stage's tests live in ``tests/<stage>/`` with their fixtures in ``tests/<stage>/fixtures/``.
"""

from __future__ import annotations

import os
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


def is_warning(line: str) -> bool:
    """A warning line on stderr, which may come before a command's one error line."""
    return line.startswith(("warning: ", "sensor-plugins: warning: "))


@pytest.fixture
def write_catalogue(tmp_path: Path):
    def write(text: str, name: str = "catalogue.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# Markers whose tests prove a half of the product that a skip would hide: under CI=true a
# skip of one of them is a failure, so a green CI always means Zeek and the cluster ran.
MUST_RUN_IN_CI = ("zeek", "cluster")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``zeek`` or ``cluster`` run whenever a zeek binary is on PATH (or in $ZEEK), and skip otherwise."""
    from sensor_plugins.runners.zeek import find_zeek

    if find_zeek() is not None:
        return
    skip = pytest.mark.skip(reason="no zeek: `make setup` unpacks ../shared/zeek/, or put Zeek 7.0 on PATH")
    for item in items:
        if any(m in item.keywords for m in MUST_RUN_IN_CI):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true, a skipped ``zeek`` or ``cluster`` test is reported as failed, with the skip's reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and any(m in item.keywords for m in MUST_RUN_IN_CI):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a {'/'.join(MUST_RUN_IN_CI)} test must run, not skip ({reason})"


@pytest.fixture(scope="session")
def spark():
    """One Spark session for every Spark test in the run: starting a JVM costs seconds."""
    from sensor_plugins.analysis.engines.spark import session

    # Two buckets: the test logs are small, and each shuffle partition costs a task.
    spark = session("local[2]", app="sensor-plugins tests", shuffle_partitions=2)
    yield spark
    spark.stop()


@pytest.fixture(scope="session")
def scenario_runs(tmp_path_factory):
    """Real Zeek with the committed package over every scenario pcap, ``<root>/<name>/logs``,
    run once for the session: the scenario tests, the Spark differential test and the
    report's client section read these same logs, and none of them writes beside them."""
    from zeek_harness import run_scenario

    from sensor_plugins.scenarios import pcaps

    root = tmp_path_factory.mktemp("zeek-scenarios")
    return {name: run_scenario(name, REPO / "zeek_scripts", root / name) for name in pcaps.SCENARIOS}
