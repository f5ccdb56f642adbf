"""A virtual tap for tests: a network namespace holding a veth pair, live Suricata on one end,
tcpreplay on the other.

Both veth ends live inside a namespace the test made, with IPv6 off and no addresses or
routes, so nothing replayed can reach a host interface or leave the machine. Clean-up
kills only the processes started here, by pid, and deletes the namespace.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from sensor_plugins.sensors.suricata_socket import SuricataSocket, SuricataSocketError

CAPTURE_IFACE = "tapcap"
INJECT_IFACE = "tapinj"
_counter = itertools.count()


# Capture threads on the tap: two, so flows are split across workers as on a real sensor.
CAPTURE_THREADS = 2


def tap_settings(socket_path: Path, threshold_file: Path | None = None) -> str:
    """The live-capture settings that a sensor on a tap has, passed to Suricata with --include.

    The workers runmode with CAPTURE_THREADS af-packet threads in one fanout group,
    balanced by cluster_flow, so both directions of a flow reach the same worker
    (docs/DEPLOY.md). Flow timeouts are short so that flows, and the stream inspection
    done at flow end, finish within seconds of a replay instead of minutes.
    """
    timeouts = "".join(
        f"  {proto}:\n"
        "    new: 1\n    established: 2\n    closed: 0\n    bypassed: 1\n"
        "    emergency-new: 1\n    emergency-established: 1\n    emergency-closed: 0\n"
        "    emergency-bypassed: 1\n"
        for proto in ("default", "tcp", "udp", "icmp")
    )
    return (
        "%YAML 1.1\n---\n"
        "runmode: workers\n"
        # As the shipped yaml (suricata.yaml.j2), stated here too: a sensor that starts or
        # restarts on a busy tap inspects the connections already open.
        "stream:\n"
        "  midstream: true\n"
        "af-packet:\n"
        f"  - interface: {CAPTURE_IFACE}\n"
        f"    threads: {CAPTURE_THREADS}\n"
        "    cluster-id: 98\n"
        "    cluster-type: cluster_flow\n"
        "    defrag: yes\n"
        "    tpacket-v3: yes\n"
        "    checksum-checks: no\n"
        "unix-command:\n"
        "  enabled: yes\n"
        f"  filename: {socket_path}\n"
        "flow-timeouts:\n" + timeouts
        + (f"threshold-file: {threshold_file}\n" if threshold_file else "")
    )


def run(cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kwargs)


def ensure_debian_tool(binary: str, package: str) -> None:
    """Install a Debian package when its binary is missing (CI runs as root on a fresh Debian)."""
    if shutil.which(binary):
        return
    if os.geteuid() != 0:
        pytest.fail(f"{binary} is missing and the tests are not root: run scripts/install-system-deps.sh")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        run(["apt-get", "update", "-qq"], env=env)
        run(install, env=env)


def ensure_tcpreplay() -> None:
    ensure_debian_tool("tcpreplay", "tcpreplay")


@dataclass
class Namespace:
    name: str

    def exec_cmd(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        return run(self.exec_cmd(*cmd))


@contextmanager
def tap_namespace() -> Iterator[Namespace]:
    """A fresh namespace with the veth pair CAPTURE_IFACE <-> INJECT_IFACE, both inside it."""
    name = f"sp-tap-{os.getpid()}-{next(_counter)}"
    created = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if created.returncode != 0:
        pytest.skip(f"the kernel refused a network namespace ({created.stderr.strip()}); "
                    "the virtual-tap tests need root and CAP_SYS_ADMIN")
    ns = Namespace(name)
    try:
        # Without IPv6 the kernel sends nothing of its own (no DAD, no router solicitations)
        # on the tap, so the capture holds only what the test replays.
        ns.run("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        ns.run("sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
        ns.run("ip", "link", "add", CAPTURE_IFACE, "type", "veth", "peer", "name", INJECT_IFACE)
        for iface in (CAPTURE_IFACE, INJECT_IFACE):
            # Big enough for captured frames that a NIC had coalesced (GRO/TSO) before capture.
            ns.run("ip", "link", "set", iface, "mtu", "9000", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class LiveSuricata:
    """Suricata capturing on the tap with its unix socket on."""

    ns: Namespace
    config: Path
    log_dir: Path
    socket_path: Path
    threshold_file: Path | None = None
    process: subprocess.Popen | None = None
    sent: int = 0
    stdout_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout_path = self.log_dir / "suricata.stdout"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def include(self) -> Path:
        return self.log_dir / "tap.yaml"

    @property
    def eve(self) -> Path:
        return self.log_dir / "eve.json"

    def start(self, timeout: float = 60.0) -> None:
        cmd = self.ns.exec_cmd(
            "suricata", "-c", str(self.config), "-l", str(self.log_dir),
            "--include", str(self.include), f"--af-packet={CAPTURE_IFACE}", "-k", "none", "-v",
        )
        self.include.write_text(tap_settings(self.socket_path, self.threshold_file))
        with open(self.stdout_path, "wb") as out:
            # `ip netns exec` execs Suricata in place, so this pid is Suricata's own.
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Ready means: the engine started, the socket answers and a probe frame was captured."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"Suricata exited with {self.process.returncode}:\n{self.output()}")
            if "Engine started" in self.output() and self.socket_answers():
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"Suricata was not ready after {timeout:.0f}s:\n{self.output()}")
        # Capture threads open their sockets after "Engine started"; a frame that is seen
        # proves the tap is live before the test's own packets go out.
        probe = self.log_dir / "probe.pcap"
        wrpcap(str(probe), [Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP()])
        while time.monotonic() < deadline:
            replay(self, [probe])
            if self.captured_packets() >= self.sent:
                return
            time.sleep(0.2)
        raise AssertionError(f"Suricata was not ready after {timeout:.0f}s:\n{self.output()}")

    def socket_answers(self) -> bool:
        try:
            with SuricataSocket(self.socket_path, timeout=5) as sock:
                return sock.command("uptime").ok
        except SuricataSocketError:
            return False

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def captured_packets(self) -> int:
        with SuricataSocket(self.socket_path, timeout=10) as sock:
            return int(sock.checked("iface-stat", {"iface": CAPTURE_IFACE})["pkts"])

    def stop(self) -> None:
        terminate(self.process, grace=20)


def terminate(process: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM an engine this harness started, then SIGKILL it if it is still there after ``grace`` s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def short_tempdir() -> Path:
    """A private directory with a short path: unix socket paths must fit in 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="sp-tap-"))


@contextmanager
def live_suricata(ns: Namespace, config: Path, workdir: Path,
                  threshold_file: Path | None = None) -> Iterator[LiveSuricata]:
    log_dir = workdir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    engine = LiveSuricata(ns, config, log_dir, workdir / "cmd.sock", threshold_file)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


def replay(engine: LiveSuricata, pcaps: Sequence[Path]) -> None:
    """Send the pcaps into the tap's far end, counting the packets sent for wait_for_alerts."""
    for pcap in pcaps:
        result = engine.ns.run("tcpreplay", "-i", INJECT_IFACE, "--topspeed", str(pcap))
        for line in result.stdout.splitlines():
            if line.strip().startswith("Successful packets:"):
                engine.sent += int(line.split(":")[1])


def alert_lines(eve: Path) -> list[str]:
    if not eve.exists():
        return []
    return [line for line in eve.read_text(errors="replace").splitlines() if '"event_type":"alert"' in line]


def sids_after(eve: Path, baseline: int = 0) -> set[int]:
    """Sids of the alerts after the first ``baseline`` alerts in eve.json (a torn last line is skipped)."""
    sids = set()
    for line in alert_lines(eve)[baseline:]:
        try:
            sids.add(int(json.loads(line)["alert"]["signature_id"]))
        except (ValueError, KeyError):
            continue
    return sids


def wait_for_alerts(engine: LiveSuricata, baseline: int, expected: set[int],
                    timeout: float = 30.0, quiet: float = 1.5) -> set[int]:
    """Sids of the alerts written after ``baseline`` alerts, once the engine has settled.

    Settled means: Suricata has captured every packet sent so far, the alerts include
    ``expected``, and no new alert has arrived for ``quiet`` seconds, which gives
    flow-end stream inspection its chance after the short flow timeouts. At the
    deadline it returns what it has, and the caller's assertion shows the difference.
    """
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(alert_lines(engine.eve))
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        new = sids_after(engine.eve, baseline)
        if (engine.captured_packets() >= engine.sent and expected <= new
                and now - last_change >= quiet):
            return new
        time.sleep(0.25)
    return sids_after(engine.eve, baseline)


# -- Zeek on the tap ----------------------------------------------------------------------

# Loaded after the site's local.zeek in the live tests: connections end, and their
# conn.log rows and notices reach disk, within seconds instead of minutes.
ZEEK_FAST_LOGS = """\
redef tcp_close_delay = 0 sec;
redef tcp_inactivity_timeout = 5 sec;
redef udp_inactivity_timeout = 3 sec;
redef icmp_inactivity_timeout = 3 sec;
event zeek_init() &priority=-10
	{
	Log::set_buf(Conn::LOG, F);
	Log::set_buf(Notice::LOG, F);
	}
"""


@dataclass
class LiveZeek:
    """Zeek capturing on the tap with a site directory of its own first on ZEEKPATH."""

    ns: Namespace
    site: Path
    log_dir: Path
    process: subprocess.Popen | None = None
    sent: int = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def output_path(self) -> Path:
        return self.log_dir / "zeek.output"

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def start(self, timeout: float = 60.0) -> None:
        from sensor_plugins.runners.zeek import require_zeek

        binary = require_zeek()
        zeekpath = run([str(Path(binary).with_name("zeek-config")), "--zeekpath"]).stdout.strip()
        fast = self.log_dir / "fast-logs.zeek"
        fast.write_text(ZEEK_FAST_LOGS)
        cmd = self.ns.exec_cmd("env", f"ZEEKPATH={self.site}:{zeekpath}", binary, "-i", CAPTURE_IFACE, "-C",
                               "local", str(fast))
        with open(self.output_path, "wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.log_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"Zeek exited with {self.process.returncode}:\n{self.output()}")
            if "listening on" in self.output():
                return
            time.sleep(0.2)
        raise AssertionError(f"Zeek was not listening after {timeout:.0f}s:\n{self.output()}")

    def rows(self, log: str) -> list[dict[str, str]]:
        from sensor_plugins.runners.zeek import read_zeek_log

        return list(read_zeek_log(self.log_dir / log))

    def stop(self) -> None:
        terminate(self.process, grace=30)


@contextmanager
def live_zeek(ns: Namespace, site: Path, workdir: Path) -> Iterator[LiveZeek]:
    log_dir = workdir / "zeek-log"
    log_dir.mkdir(parents=True, exist_ok=True)
    engine = LiveZeek(ns, site, log_dir)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


def send(ns: Namespace, pcaps: Sequence[Path]) -> None:
    """tcpreplay the pcaps into the tap's far end."""
    for pcap in pcaps:
        ns.run("tcpreplay", "-i", INJECT_IFACE, "--topspeed", str(pcap))


def wait_until(predicate, timeout: float = 30.0, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
