"""A real zeekctl cluster on the virtual tap: logger, manager, proxy and two AF_PACKET workers.

zeekctl from the machine's Zeek runs every node on localhost. It is pointed at a
zeekctl.cfg of the test's own (config, spool, logs and site policy under the test's
directory), so the machine's /opt/zeek/etc and site directory are never read for
configuration or written. zeekctl has no option for another config file, so a small
launcher sets ``ZeekControl.version.CFGFILE`` before running the installed zeekctl
script unchanged. Every zeekctl call runs under ``ip netns exec`` in the test's
namespace: the nodes it starts inherit it, so the workers open the veth end there and
the nodes talk Broker over that namespace's own loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tap_harness import CAPTURE_IFACE, ZEEK_FAST_LOGS, Namespace

from sensor_plugins.runners.zeek import read_zeek_log

WORKERS = ("worker-1-1", "worker-1-2")
NODES = ("logger-1", "manager", "proxy-1", *WORKERS)
# What a site with one capture interface and two worker processes writes; the test's
# only departures are the interface name and the loopback-only host.
NODE_CFG = f"""\
[logger-1]
type=logger
host=localhost

[manager]
type=manager
host=localhost

[proxy-1]
type=proxy
host=localhost

[worker-1]
type=worker
host=localhost
interface={CAPTURE_IFACE}
lb_method=af_packet
lb_procs=2
af_packet_fanout_id=23
"""

# Test-only site script, loaded after local.zeek: the fast log settings of the live tests,
# and each log row stamped with the node that wrote it (``_node_name``), so a test can
# tell which worker saw a connection.
CLUSTER_TEST_ZEEK = ZEEK_FAST_LOGS + """
# With no close delay the last ACK after the FINs opens a connection of its own ("^a");
# zeek -r with the default delay does not log that, and the tests compare flow for flow.
redef tcp_close_delay = 1 sec;

type NodeNameExt: record {
	node_name: string &log;
};

function node_name_ext(path: string): NodeNameExt
	{
	return NodeNameExt($node_name=Cluster::node);
	}

redef Log::default_ext_func = node_name_ext;
"""

LAUNCHER = """\
import os, runpy, sys
zeekctl = sys.argv[1]
sys.argv = [zeekctl] + sys.argv[2:]
base = os.path.dirname(os.path.dirname(os.path.realpath(zeekctl)))
for path in (base + "/lib/zeekctl", base + "/lib/zeek/python", base + "/lib/zeek/python/zeekctl"):
    if os.path.isdir(path):
        sys.path.insert(0, path)
from ZeekControl import version
version.CFGFILE = os.environ["SENSOR_PLUGINS_ZEEKCTL_CFG"]
runpy.run_path(zeekctl, run_name="__main__")
"""


def find_zeekctl() -> Path:
    binary = shutil.which("zeekctl")
    if binary is None:
        pytest.skip("zeekctl is not installed (make setup installs Zeek with zeekctl)")
    return Path(binary).resolve()


def interpreter(script: Path) -> str:
    """The python that the installed zeekctl names in its #! line (Debian's python3 here)."""
    first = script.read_text(errors="replace").splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else "python3"


@dataclass
class ZeekCluster:
    """A zeekctl cluster whose every file lives under ``root``."""

    ns: Namespace
    root: Path
    zeekctl_script: Path = field(init=False)
    pids_seen: set[int] = field(default_factory=set)
    machine_state: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.zeekctl_script = self.root / "zeekctl"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def prepare(self, local_zeek: Path) -> None:
        """Config, node.cfg and a site directory holding a copy of the machine's local.zeek."""
        self.machine_state = machine_zeekctl_state()
        for directory in (self.root / "etc", self.spool, self.log_dir, self.site):
            directory.mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "node.cfg").write_text(NODE_CFG)
        (self.root / "etc" / "networks.cfg").write_text("10.0.0.0/8 test sensor's own networks\n")
        # `zeekctl install` points ScriptsDir/zeekctl-config.sh at the spool's copy; with the
        # machine's ScriptsDir that would repoint the machine's zeekctl helpers at this test.
        scripts = self.root / "scripts"
        shutil.copytree(find_zeekctl().parents[1] / "share" / "zeekctl" / "scripts", scripts, symlinks=True)
        (scripts / "zeekctl-config.sh").unlink(missing_ok=True)
        (self.root / "etc" / "zeekctl.cfg").write_text(
            f"CfgDir = {self.root / 'etc'}\n"
            f"ScriptsDir = {scripts}\n"
            f"HelperDir = {scripts / 'helpers'}\n"
            f"PostProcDir = {scripts / 'postprocessors'}\n"
            f"MakeArchiveName = {scripts / 'make-archive-name'}\n"
            f"SpoolDir = {self.spool}\n"
            f"LogDir = {self.log_dir}\n"
            f"BrokerDBDir = {self.spool / 'brokerstore'}\n"
            f"FileExtractDir = {self.spool / 'extract_files'}\n"
            f"SitePolicyPath = {self.site}\n"
            "SitePolicyScripts = local.zeek cluster-test.zeek\n"
            "CompressLogs = 0\n"
            "LogRotationInterval = 3600\n"
            "StatsLogEnable = 0\n"
            "MailConnectionSummary = 0\n"
            "MailHostUpDown = 0\n"
            "SendMail =\n"
            "MinDiskSpace = 0\n"
        )
        shutil.copy(local_zeek, self.site / "local.zeek")
        (self.site / "cluster-test.zeek").write_text(CLUSTER_TEST_ZEEK)
        launcher = self.root / "zeekctl-launcher.py"
        launcher.write_text(LAUNCHER)
        zeekctl = find_zeekctl()
        # The executable that `sensor-plugins deploy --zeekctl` is given: zeekctl in the
        # namespace, on this cluster's config.
        self.zeekctl_script.write_text(
            "#!/bin/sh\n"
            f"exec ip netns exec {self.ns.name} env SENSOR_PLUGINS_ZEEKCTL_CFG={self.root / 'etc' / 'zeekctl.cfg'} "
            f"{interpreter(zeekctl)} {launcher} {zeekctl} \"$@\"\n"
        )
        self.zeekctl_script.chmod(0o755)
        # Broker between the nodes runs over the namespace's loopback.
        self.ns.run("ip", "link", "set", "lo", "up")

    def zeekctl(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.zeekctl_script), *args], capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"zeekctl {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}\n{self.diagnostics()}")
        return result

    def status(self) -> dict[str, tuple[str, int | None]]:
        """node -> (status, pid) as `zeekctl status` reports them."""
        out = self.zeekctl("status", check=False).stdout
        nodes: dict[str, tuple[str, int | None]] = {}
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] in NODES and len(parts) >= 4:
                pid = int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else None
                nodes[parts[0]] = (parts[3], pid)
                if pid is not None:
                    self.pids_seen.add(pid)
        return nodes

    def pids(self) -> dict[str, int | None]:
        return {node: pid for node, (_status, pid) in self.status().items()}

    def running(self) -> bool:
        status = self.status()
        return set(status) == set(NODES) and all(s == "running" for s, _pid in status.values())

    def rows(self, log: str) -> list[dict[str, str]]:
        """Every row of ``log``: the archived files of earlier runs, then the logger's current file."""
        archived = sorted(self.log_dir.glob(f"*/{log}.*.log"))
        rows: list[dict[str, str]] = []
        for path in [*archived, self.spool / "logger-1" / f"{log}.log"]:
            # A row being written as we read has fewer fields than the header: skipped.
            rows += [r for r in read_zeek_log(path) if None not in r.values() and len(r) > 1]
        return rows

    def diagnostics(self) -> str:
        """The nodes' stderr and reporter output, for an assertion message."""
        parts = []
        for node in NODES:
            for name in ("stderr.log", "reporter.log"):
                path = self.spool / node / name
                if path.exists() and path.stat().st_size:
                    parts.append(f"--- {node}/{name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """`zeekctl stop`, then SIGKILL any node process of ours that outlived it."""
        if not self.pids_seen:
            self.status()
        self.zeekctl("stop", check=False, timeout=120)
        for pid in self.pids_seen:
            if _is_zeek_of(pid, self.spool):
                os.kill(pid, signal.SIGKILL)
        # zeekctl archives the logger's logs in a post-terminate script it leaves running
        # in the background; removing the directory under it would race its writes.
        wait_until(lambda: not processes_using(self.root), 60)


def machine_zeekctl_state() -> dict[str, str | None]:
    """What the machine's zeekctl installation holds that a zeekctl run could rewrite:
    its config files' text and the link its helper scripts source their settings through."""
    base = find_zeekctl().parents[1]
    link = base / "share" / "zeekctl" / "scripts" / "zeekctl-config.sh"
    state: dict[str, str | None] = {str(link): os.readlink(link) if link.is_symlink() else None}
    for name in ("zeekctl.cfg", "node.cfg", "networks.cfg"):
        path = base / "etc" / name
        state[str(path)] = path.read_text(errors="replace") if path.exists() else None
    return state


def processes_using(root: Path) -> list[int]:
    """Pids whose command line names a path under ``root`` (this test's own directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmdline:
            found.append(int(entry.name))
    return found


def _is_zeek_of(pid: int, spool: Path) -> bool:
    """Whether ``pid`` is still a Zeek node working in this cluster's spool (pids get reused)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(spool))
    except OSError:
        return False


def wait_until(predicate, timeout: float = 30.0, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


@contextmanager
def zeek_cluster(ns: Namespace, root: Path, local_zeek: Path) -> Iterator[ZeekCluster]:
    """A prepared cluster; the caller deploys the package into ``cluster.site`` and starts it."""
    cluster = ZeekCluster(ns, root)
    cluster.prepare(local_zeek)
    try:
        yield cluster
    finally:
        cluster.stop()
    assert machine_zeekctl_state() == cluster.machine_state, "the test's zeekctl changed the machine's zeekctl"
