"""A real Spark standalone cluster on loopback: one master and two workers started from the
pyspark package's own launch classes (``spark-class org.apache.spark.deploy.master.Master``
and ``...worker.Worker``), ``analyze --master spark://...`` run against it, and its findings
held to the local engine's. Only the processes this test started are stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from spark_trees import make_logs

from sensor_plugins.analysis.engines.standalone import Cluster, standalone_cluster

pytestmark = pytest.mark.spark

BIN = Path(sys.executable).parent
# Six short-lived JVMs (master, two workers, driver, two executors) share 2 cores for one
# small job: C2's compiling costs them more than it gives back (this file: 37-50 s against
# 50-74 s, alternating runs). The JIT tier changes no result.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with pytest.MonkeyPatch.context() as env:
        # The master's and workers' JVMs.
        env.setenv("SPARK_DAEMON_JAVA_OPTS", TEST_JVM_OPTIONS)
        with standalone_cluster(tmp_path_factory.mktemp("cluster-logs"), workers=2) as running:
            yield running
    # Stopped: the master and workers this fixture started are gone, executors included.
    assert all(proc.poll() is not None for proc in running.procs)


def findings(path: Path) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines())


def test_analyze_on_a_two_worker_standalone_cluster_finds_what_one_machine_finds(cluster, tmp_path) -> None:
    logs = make_logs(tmp_path / "logs", rows=8000, days=2, seed=7)
    local = subprocess.run([str(BIN / "sensor-plugins"), "analyze", str(logs), "--format", "jsonl",
                            "--out", str(tmp_path / "local.jsonl")], capture_output=True, text=True)
    assert local.returncode == 1, local.stderr
    # The driver's and executors' JVMs.
    jvm = f"--driver-java-options {TEST_JVM_OPTIONS} --conf spark.executor.extraJavaOptions={TEST_JVM_OPTIONS}"
    done = subprocess.run([str(BIN / "sensor-plugins"), "analyze", str(logs), "--engine", "spark",
                           "--master", cluster.url, "--format", "jsonl", "--out", str(tmp_path / "spark.jsonl")],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYSPARK_SUBMIT_ARGS": f"{jvm} pyspark-shell"})
    assert done.returncode == 1, done.stderr[-3000:]
    # The application ran on the cluster: both workers launched an executor for it.
    for i in range(2):
        assert "Asked to launch executor" in cluster.worker_log(i).read_text()
    spark_found = findings(tmp_path / "spark.jsonl")
    assert len(spark_found) > 1000
    assert spark_found == findings(tmp_path / "local.jsonl")
