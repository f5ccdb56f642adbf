"""A real Spark standalone cluster on loopback: one master and two workers started from the
pyspark package's own launch classes, ``analyze --master spark://...`` run against it, and
its findings held to the local engine's. Only the processes this test started are stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from spark_trees import make_logs

from sensor_plugins.analysis.engines.spark import spark_environment

pytestmark = pytest.mark.spark

BIN = Path(sys.executable).parent
SPARK_HOME = Path(pyspark.__file__).parent
START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cls: str, args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **spark_environment(), "SPARK_HOME": str(SPARK_HOME)}
    with open(log, "wb") as out:
        # A session of its own, so stopping it stops the executors it forked, and nothing else.
        return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), cls, *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(log: Path, pattern: str, count: int = 1) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if len(re.findall(pattern, log.read_text(errors="replace"))) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{log.name}: no {pattern!r} after {START_TIMEOUT}s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("cluster-logs")
    port = free_port()
    master_log = logs / "master.log"
    procs = [launch("org.apache.spark.deploy.master.Master",
                    ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())], master_log)]
    try:
        wait_for(master_log, r"Starting Spark master at spark://127\.0\.0\.1:")
        url = f"spark://127.0.0.1:{port}"
        for i in range(2):
            procs.append(launch("org.apache.spark.deploy.worker.Worker",
                                [url, "--host", "127.0.0.1", "--cores", "1", "--memory", "1536m",
                                 "--webui-port", str(free_port()), "--work-dir", str(logs / f"work{i}")],
                                logs / f"worker{i}.log"))
        wait_for(master_log, r"Registering worker 127\.0\.0\.1", count=2)
        yield url, logs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def findings(path: Path) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines())


def test_analyze_on_a_two_worker_standalone_cluster_finds_what_one_machine_finds(cluster, tmp_path) -> None:
    url, cluster_logs = cluster
    logs = make_logs(tmp_path / "logs", rows=8000, days=2, seed=7)
    local = subprocess.run([str(BIN / "sensor-plugins"), "analyze", str(logs), "--format", "jsonl",
                            "--out", str(tmp_path / "local.jsonl")], capture_output=True, text=True)
    assert local.returncode == 1, local.stderr
    done = subprocess.run([str(BIN / "sensor-plugins"), "analyze", str(logs), "--engine", "spark", "--master", url,
                           "--format", "jsonl", "--out", str(tmp_path / "spark.jsonl")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]
    # The application ran on the cluster: both workers launched an executor for it.
    for i in range(2):
        assert "Asked to launch executor" in (cluster_logs / f"worker{i}.log").read_text()
    spark_found = findings(tmp_path / "spark.jsonl")
    assert len(spark_found) > 1000
    assert spark_found == findings(tmp_path / "local.jsonl")
