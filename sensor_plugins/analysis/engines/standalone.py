"""A Spark standalone cluster on loopback, from the pyspark package's own launch classes.

For the tests and the benchmark (and anyone trying the Spark engine on one machine): a
master and N workers bound to 127.0.0.1, each in a process session of its own, so that
stopping the cluster stops exactly the processes it started and the executors they forked.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sensor_plugins.analysis.engines.spark import spark_environment
from sensor_plugins.errors import SensorPluginsError

START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class Cluster:
    url: str
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def worker_log(self, i: int) -> Path:
        return self.logs / f"worker{i}.log"


def _launch(cls: str, args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **spark_environment(), "SPARK_HOME": str(spark_home())}
    with open(log, "wb") as out:
        return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), cls, *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for(log: Path, pattern: str, count: int = 1) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if len(re.findall(pattern, log.read_text(errors="replace"))) >= count:
            return
        time.sleep(0.5)
    raise SensorPluginsError(f"{log}: Spark did not log {pattern!r} within {START_TIMEOUT:.0f} s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def standalone_cluster(logs: Path, workers: int = 2, cores: int = 1, memory: str = "1536m") -> Iterator[Cluster]:
    """Start a master and ``workers`` workers on 127.0.0.1; stop them (and only them) on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", logs)
    master_log = logs / "master.log"
    try:
        cluster.procs.append(_launch("org.apache.spark.deploy.master.Master",
                                     ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())],
                                     master_log))
        _wait_for(master_log, r"Starting Spark master at spark://127\.0\.0\.1:")
        for i in range(workers):
            cluster.procs.append(_launch(
                "org.apache.spark.deploy.worker.Worker",
                [cluster.url, "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory,
                 "--webui-port", str(free_port()), "--work-dir", str(logs / f"work{i}")],
                cluster.worker_log(i)))
        _wait_for(master_log, r"Registering worker 127\.0\.0\.1", count=workers)
        yield cluster
    finally:
        _stop(cluster.procs)
