"""Suricata the way a tap runs it: workers runmode, two af-packet threads, cluster_flow.

The sensor is the one test_tap_deploy builds (the generated rules installed by `deploy`,
thresholds lifted so that every match alerts). Live alerts are attributed to the flow
they belong to, by addresses and ports, so each scenario's live sids can be held to its
own offline `suricata -r` sids, and each flow of a steady replay to the rules that were
live when it started.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import test_tap_deploy
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import PcapReader
from tap_harness import (
    CAPTURE_IFACE,
    CAPTURE_THREADS,
    INJECT_IFACE,
    LiveSuricata,
    Namespace,
    ensure_debian_tool,
    live_suricata,
    replay,
    tap_namespace,
    terminate,
    wait_for_alerts,
    wait_until,
)
from test_tap_deploy import BUNDLED_TOR_LISTS, Baseline, Sensor, lift_thresholds, regenerate_with_added_range, rule_sids

from sensor_plugins.atomic import write_bytes_atomic
from sensor_plugins.generate.command import generate
from sensor_plugins.generate.suricata import MAIN_RULES
from sensor_plugins.runners.suricata import replay as offline_replay
from sensor_plugins.scenarios import pcaps
from sensor_plugins.scenarios.bittorrent import wire as btwire
from sensor_plugins.scenarios.flows import Capture, TcpFlow
from sensor_plugins.sensors.deploy import DeployOptions, deploy
from sensor_plugins.sensors.suricata_socket import SuricataSocket

# The marks and the sensor of test_tap_deploy: root, namespaces, the suricata binary, and
# generated content deployed into a sensor's directories.
pytestmark = test_tap_deploy.pytestmark
baseline = test_tap_deploy.baseline
sensor = test_tap_deploy.sensor

Endpoint = tuple[str, int]
FlowKey = frozenset[Endpoint]


def flow_key(a: Endpoint, b: Endpoint) -> FlowKey:
    return frozenset((a, b))


def packet_flow_key(packet) -> FlowKey | None:
    ip = packet.getlayer(IP) or packet.getlayer(IPv6)
    transport = packet.getlayer(TCP) or packet.getlayer(UDP)
    if ip is None or transport is None:
        return None
    return flow_key((ip.src, transport.sport), (ip.dst, transport.dport))


def flows_of(pcap: Path) -> set[FlowKey]:
    with PcapReader(str(pcap)) as reader:
        return {key for key in map(packet_flow_key, reader) if key is not None}


def alerts_by_flow(eve: Path) -> dict[FlowKey, set[int]]:
    """Sids of eve.json's alerts, per flow (a torn last line is skipped)."""
    found: dict[FlowKey, set[int]] = defaultdict(set)
    for line in eve.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
            if event.get("event_type") != "alert":
                continue
            key = flow_key((event["src_ip"], int(event["src_port"])), (event["dest_ip"], int(event["dest_port"])))
            found[key].add(int(event["alert"]["signature_id"]))
        except (ValueError, KeyError):
            continue
    return found


def runs_as_a_tap_sensor(engine: LiveSuricata) -> tuple[bool, bool]:
    """(workers runmode with CAPTURE_THREADS workers, as many af-packet threads on the capture end)."""
    output = engine.output()
    return (f"Threads created -> W: {CAPTURE_THREADS} " in output,
            f"{CAPTURE_IFACE}: creating {CAPTURE_THREADS} threads" in output)


def sid_of(rules_dir: Path, key: str) -> int:
    return json.loads((rules_dir / "sid-map.json").read_text(encoding="utf-8"))["rules"][key]["sid"]


# -- every scenario, live in workers mode and offline -----------------------------------------


def expired_by_now(name: str) -> bool:
    """Whether a catalogued host's session shows a certificate that was valid at capture time and is not today.

    Suricata judges tls.cert_expired by the packet's time: the scenario's own 2017 time
    offline, the replay's wall-clock time live. Every leaf of the scenarios expired by
    2018, so live the expired-certificate rule fires on each session that shows one.
    """
    scenario = pcaps.SCENARIOS[name]
    leaf = scenario.tls.certificate if scenario.tls else None
    return bool(scenario.nk_hosts and leaf and leaf.not_after < dt.datetime.now(dt.UTC))


def by_scenario(found: dict[FlowKey, set[int]], scenario_of: dict[FlowKey, str],
                names: list[str]) -> dict[str, set[int]]:
    sids: dict[str, set[int]] = {name: set() for name in names}
    for key, alerted in found.items():
        sids.setdefault(scenario_of.get(key, f"unattributed {sorted(key)}"), set()).update(alerted)
    return sids


def live_alerts(sensor: Sensor, captures: list[Path], expected: dict[str, set[int]],
                scenario_of: dict[FlowKey, str]) -> tuple[tuple[bool, bool], dict[str, set[int]]]:
    """A fresh live sensor on a fresh tap, the captures replayed into it: (mode, sids per scenario)."""
    names = [pcap.stem for pcap in captures]
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine:
        mode = runs_as_a_tap_sensor(engine)
        replay(engine, captures)
        # Settled: every packet captured and each scenario's expected alerts in (or the
        # deadline passed), then a quiet spell for late or surplus alerts.
        wait_until(lambda: engine.captured_packets() >= engine.sent and all(
            expected[n] <= got for n, got in by_scenario(alerts_by_flow(engine.eve), scenario_of, names).items()
            if n in expected), timeout=60)
        wait_for_alerts(engine, 0, set())
        live = by_scenario(alerts_by_flow(engine.eve), scenario_of, names)
    (sensor.root / "log" / "eve.json").unlink()
    return mode, live


def test_workers_with_two_af_packet_threads_raise_for_each_scenario_the_sids_of_the_offline_replay(
        baseline: Baseline, sensor: Sensor):
    scenario_of: dict[FlowKey, str] = {}
    for pcap in baseline.pcaps:
        for key in flows_of(pcap):
            assert scenario_of.setdefault(key, pcap.stem) == pcap.stem, f"{key} is in two scenarios"
    names = [pcap.stem for pcap in baseline.pcaps]
    offline: dict[str, set[int]] = {name: set() for name in names}
    for alert in offline_replay(baseline.pcaps, sensor.rules, baseline.work / "offline-per-scenario"):
        offline[Path(alert.pcap).stem].add(alert.sid)
    expired = sid_of(sensor.rules, "tls:cert-expired")
    expected = {name: offline[name] | ({expired} if expired_by_now(name) else set()) for name in names}
    # The connections open before the sensor went live meet a sensor that just started,
    # as they do on a tap; the others go through one engine in scenario order.
    opened_before = [p for p in baseline.pcaps if pcaps.SCENARIOS[p.stem].midstream]
    modes, live = zip(*(live_alerts(sensor, group, expected, scenario_of)
                        for group in ([p for p in baseline.pcaps if p not in opened_before], opened_before)),
                      strict=True)
    merged = {name: sids for per_engine in live for name, sids in per_engine.items()}
    differing = {name: {"live only": sorted(merged.get(name, set()) - expected.get(name, set())),
                        "offline only": sorted(expected.get(name, set()) - merged.get(name, set()))}
                 for name in set(merged) | set(expected) if merged.get(name) != expected.get(name)}
    assert (modes, differing) == (((True, True), (True, True)), {})


# -- a rule reload and a dataset-add while packets flow ---------------------------------------

# A steady replay of short BitTorrent connections to one outside address, alternating
# between kp-star-jv clients and a TEST-NET-1 client (a range only the reload adds). Each
# kp-star-jv connection comes from a host of its own, so its handshake alert owes
# nothing to the lifted per-host limit.
LOAD_FLOWS = 1200
LOAD_PPS = 400
LOAD_EXIT = "198.51.100.99"  # listed as a Tor exit by the dataset-add, mid-replay
NEW_RANGE_CLIENT = pcaps.NEGATIVE_CLIENT
FIRST_PORT = 20000
RELOAD_AFTER_S = 8.0
DATASET_AFTER_S = 13.0
# How long a finished flow can stay in Suricata's flow table (the tap's 2 s established
# timeout, the flow manager's pass, slack for a loaded machine). A flow still there when
# new rules go live meets them at its timeout, as it should; flows older than this cannot.
FLOW_LINGER_S = 6.0


def star_host(n: int) -> str:
    """The n-th host of kp-star-jv (175.45.176.0/22), counting from 175.45.176.1."""
    return str(ipaddress.ip_network(f"{pcaps.KP_STAR_JV_HOST}/22", strict=False)[1 + n])


def load_capture() -> bytes:
    rng = random.Random("sensor-plugins:reload-under-load")
    info = pcaps.torrent()
    capture = Capture()
    for i in range(LOAD_FLOWS):
        client = star_host(i // 2) if i % 2 == 0 else NEW_RANGE_CLIENT
        flow = TcpFlow(capture, (client, FIRST_PORT + i), (LOAD_EXIT, pcaps.BT_PORT), rng).open()
        flow.send(btwire.handshake(info.info_hash, btwire.peer_id(rng)))
        flow.close()
    return pcaps.pcap_bytes(capture.packets)


@contextmanager
def syn_witness(ns: Namespace, out: Path) -> Iterator[None]:
    """tcpdump on the capture end, writing every SYN with the kernel's receive time."""
    ensure_debian_tool("tcpdump", "tcpdump")
    cmd = ns.exec_cmd("tcpdump", "-i", CAPTURE_IFACE, "-n", "-U", "-w", str(out), "--time-stamp-precision=micro",
                      "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0")
    log = out.with_suffix(".log")
    with open(log, "wb") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        yield
    finally:
        terminate(process, grace=10)


def flow_starts(witness: Path) -> dict[Endpoint, float]:
    """Client (address, port) -> when its SYN reached the tap, in wall-clock seconds."""
    with PcapReader(str(witness)) as reader:
        return {(p[IP].src, p[TCP].sport): float(p.time) for p in reader}


@dataclass
class LoadRun:
    starts: dict[Endpoint, float]
    alerts: dict[FlowKey, set[int]]
    reload_took: float
    reload_returned: float
    dataset_took: float
    dataset_returned: float
    sent: int
    kernel_drops: int


def replay_under_load(sensor: Sensor, new_rules: Path, with_exit: Path) -> LoadRun:
    load = sensor.root / "load.pcap"
    write_bytes_atomic(load, load_capture())
    witness = sensor.root / "syns.pcap"
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine, syn_witness(ns, witness):
        sender = subprocess.Popen(ns.exec_cmd("tcpreplay", "-i", INJECT_IFACE, f"--pps={LOAD_PPS}", str(load)),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(RELOAD_AFTER_S)
            reload_called = time.time()
            deploy(DeployOptions(suricata_source=new_rules, suricata_config=sensor.config,
                                 suricata_socket=sensor.socket))
            reload_returned = time.time()
            time.sleep(max(0.0, DATASET_AFTER_S - RELOAD_AFTER_S))
            dataset_called = time.time()
            deploy(DeployOptions(suricata_source=with_exit, suricata_config=sensor.config,
                                 suricata_socket=sensor.socket))
            dataset_returned = time.time()
            output, _ = sender.communicate(timeout=LOAD_FLOWS * 8 / LOAD_PPS * 4 + 60)
        finally:
            terminate(sender, grace=5)
        sent = next(int(line.split(":")[1]) for line in output.splitlines()
                    if line.strip().startswith("Successful packets:"))
        engine.sent += sent
        wait_for_alerts(engine, 0, set(), timeout=60, quiet=3)
        with SuricataSocket(sensor.socket, timeout=10) as sock:
            drops = int(sock.checked("iface-stat", {"iface": CAPTURE_IFACE})["drop"])
        reloaded = "rule reload" in engine.output()
    assert reloaded, "deploy of the new range did not reload the rules"
    return LoadRun(flow_starts(witness), alerts_by_flow(engine.eve), reload_returned - reload_called,
                   reload_returned, dataset_returned - dataset_called, dataset_returned, sent, drops)


def test_no_alert_is_lost_for_flows_that_start_after_a_reload_and_a_dataset_add_under_steady_load(
        baseline: Baseline, sensor: Sensor, capsys):
    new_rules = regenerate_with_added_range(baseline, sensor.root / "gen-range")
    extra = sensor.root / "load-exit.lst"
    extra.write_text(f"# role: exit\n# fetched: 2024-02-27\n{LOAD_EXIT}\n", encoding="utf-8")
    with_exit = sensor.root / "gen-exit"
    shutil.copytree(new_rules, with_exit / "suricata")
    generate(new_rules.parent / "catalogue.yaml", [*BUNDLED_TOR_LISTS, extra], with_exit / "zeek",
             with_exit / "suricata")
    # Every match alerts, the added range's rules too: the test counts flows, not the limiter.
    lift_thresholds(sensor.config.parent / "conf" / "threshold.config", rule_sids(new_rules / MAIN_RULES))
    handshake, to_exit = sid_of(new_rules, "bittorrent:handshake"), sid_of(new_rules, "tor:exit:to-tor")
    star = {sid_of(new_rules, f"range:kp-star-jv:{d}") for d in ("to-range", "from-range")}
    added = {sid_of(new_rules, f"range:test-net-one:{d}") for d in ("to-range", "from-range")}

    run = replay_under_load(sensor, new_rules, with_exit / "suricata")

    def required(client: Endpoint, start: float) -> set[int]:
        if client[0] != NEW_RANGE_CLIENT:
            return star | {handshake} | ({to_exit} if start > run.dataset_returned else set())
        return added

    after = {c: s for c, s in run.starts.items() if s > run.reload_returned}
    missing = {c: sorted(required(c, s) - run.alerts.get(flow_key(c, (LOAD_EXIT, pcaps.BT_PORT)), set()))
               for c, s in after.items()}
    missing = {c: m for c, m in missing.items() if m}
    # Before a deploy was called, not merely before it returned: the engine takes the change
    # at some moment inside the call (after deploy's own suricata -T). The Tor rule reads
    # the SYN alone; the range rules also meet a lingering flow at its timeout.
    reload_called = run.reload_returned - run.reload_took
    before_reload_new_range = [c for c, s in run.starts.items() if s < reload_called - FLOW_LINGER_S
                               and c[0] == NEW_RANGE_CLIENT]
    before_dataset_exit = [c for c, s in run.starts.items() if s < run.dataset_returned - run.dataset_took
                           and to_exit in run.alerts.get(flow_key(c, (LOAD_EXIT, pcaps.BT_PORT)), set())]
    after_dataset = sum(s > run.dataset_returned for s in run.starts.values())
    with capsys.disabled():
        print(f"\nreload under load: {LOAD_PPS} pps, {len(run.starts)} of {LOAD_FLOWS} flows witnessed, "
              f"{run.sent} packets sent, reload-rules deploy {run.reload_took:.2f} s, dataset-add deploy "
              f"{run.dataset_took:.2f} s, {len(after)} flows after the reload returned, "
              f"{after_dataset} after the dataset-add returned, {len(after) - len(missing)} of them alerted "
              f"as required, kernel drops {run.kernel_drops}")
    assert (len(run.starts), run.kernel_drops) == (LOAD_FLOWS, 0)
    # The reload and the dataset-add changed something mid-replay: flows before them lack
    # the new alerts, and there are flows on both sides of each.
    assert before_reload_new_range and after_dataset and before_dataset_exit == []
    assert not any(added & run.alerts.get(flow_key(c, (LOAD_EXIT, pcaps.BT_PORT)), set())
                   for c in before_reload_new_range)
    assert missing == {}
