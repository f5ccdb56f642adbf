"""The package in a real zeekctl cluster: logger, manager, proxy and two AF_PACKET workers.

One cluster serves the module (tests/zeek_cluster_harness.py): zeekctl from /opt/zeek on a
config of the test's own, run inside the test's namespace so the two workers share one
AF_PACKET fanout group on the veth end there. The package is installed the way
docs/DEPLOY.md tells a site: ``sensor-plugins deploy --zeek-site SITE --add-load``, then
``@load nk-sensor/intel-tor``, ``zeekctl install`` and ``start``. tcpreplay sends the scenario
captures that do not depend on the clock (plain HTTP, BitTorrent, Tor; the TLS ones would
fail certificate validation against today's date live but not in ``zeek -r``), plus a
dozen connections of one host pair that the fanout spreads over both workers. The tests
then hold the cluster to ``zeek -r`` over the same capture, and follow it through a live
data deploy and a script deploy. They run in the order written: the last one restarts the
cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap
from tap_harness import ensure_tcpreplay, send, short_tempdir, tap_namespace
from zeek_cluster_harness import NODES, WORKERS, ZeekCluster, wait_until, zeek_cluster
from zeek_harness import NEW_EXIT, NEW_HOST, changed_inputs, notice_key

from sensor_plugins.atomic import write_bytes_atomic
from sensor_plugins.generate.command import generate
from sensor_plugins.runners import zeek
from sensor_plugins.scenarios import pcaps
from sensor_plugins.scenarios.httpwire import HttpExchange, html_page
from sensor_plugins.sensors.deploy import DeployOptions, deploy, zeek_code_changed

pytestmark = [pytest.mark.cluster, pytest.mark.zeek, pytest.mark.netns]

PACKAGE = REPO / "zeek_scripts"
INTEL_TOR = "@load nk-sensor/intel-tor\n"
# Captures whose verdicts do not depend on the date they are replayed on.
SCENARIOS = [n for n, s in pcaps.SCENARIOS.items() if s.tls is None or n.startswith("tor-relay")]
# One host pair, many connections: the fanout hash spreads them over both workers
# (all twelve on one worker has odds of 1 in 2,048).
SPLIT_CLIENT, SPLIT_SERVER, SPLIT_CONNECTIONS = pcaps.KP_CHINA_NETCOM_HOST, "198.51.100.77", 12
WARM_CLIENT, WARM_SERVER = "175.45.176.99", "198.51.100.99"
# A listed exit (in both bundled lists) that the live deploy drops.
DROPPED_EXIT = "101.99.92.179"
# Live reload must reach every worker within this many seconds of deploy returning.
RELOAD_BUDGET_SECONDS = 30.0


def http_packets(tag: str, client: str, server: str) -> list:
    """One HTTP conversation; ``tag`` seeds the ports, so each tag is a connection of its own."""
    exchange = HttpExchange("www.example.com", f"/{tag}.html", html_page(tag))
    return pcaps.build_http(f"cluster-{tag}", client, server, exchange)


def write_pcap(path: Path, packets: list) -> Path:
    write_bytes_atomic(path, pcaps.pcap_bytes(packets))
    return path


def combined_capture(out: Path) -> Path:
    """The selected scenarios one after another (10 s apart), then the split pair's connections."""
    packets: list = []
    offset = 0.0
    for path in pcaps.write_pcaps(out, SCENARIOS):
        for packet in rdpcap(str(path)):
            packet.time = float(packet.time) + offset
            packets.append(packet)
        offset += 10.0
    # Interleaved packet by packet, so that both workers meet the pair within microseconds:
    # each raises the pair's Range_Traffic before any suppression could reach it.
    conversations = [http_packets(f"split-{i}", SPLIT_CLIENT, SPLIT_SERVER) for i in range(SPLIT_CONNECTIONS)]
    start = float(conversations[0][0].time) + offset
    for step in range(max(map(len, conversations))):
        for conversation in conversations:
            if step < len(conversation):
                packet = conversation[step]
                packet.time = start + step * 0.001
                packets.append(packet)
    return write_pcap(out / "cluster-combined.pcap", packets)


def five_tuple(row: dict[str, str]) -> tuple[str, ...]:
    return (row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"], row["proto"])


def ours(notices: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in notices if r["note"].startswith(zeek.NOTE_PREFIX)]


def notice_identity(row: dict[str, str]) -> tuple[str, str, str, str]:
    note = zeek.Notice("", row["note"], row["msg"], row["sub"], row["src"], row["dst"])
    return notice_key(note), row["msg"], row["src"], row["dst"]


class Run:
    """The module's shared state: the cluster, the standalone run, and what was sent."""

    def __init__(self, cluster: ZeekCluster, standalone: zeek.ZeekRun, combined: Path, work: Path) -> None:
        self.cluster = cluster
        self.standalone = standalone
        self.combined = combined
        self.work = work
        self.started = time.monotonic()
        self.batches = 0

    def send(self, packets: list) -> None:
        self.batches += 1
        send(self.cluster.ns, [write_pcap(self.work / f"batch-{self.batches}.pcap", packets)])

    def conn_rows(self) -> list[dict[str, str]]:
        # The AF_PACKET socket sees the namespace's loopback (Broker) for a moment before
        # it is bound to the tap; those rows are not traffic of the test.
        return [r for r in self.cluster.rows("conn") if r["id.orig_h"] != "127.0.0.1"]


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    ensure_tcpreplay()
    work = short_tempdir()
    try:
        combined = combined_capture(work)
        standalone = zeek.run_pcap(combined, PACKAGE, work / "standalone",
                                   redefs=[pcaps.trust_ca_zeek(), f"@load {PACKAGE / 'intel-tor.zeek'}"])
        with tap_namespace() as ns, zeek_cluster(ns, work / "cluster", Path(_machine_local_zeek())) as cluster:
            (cluster.site / "cluster-test.zeek").write_text(
                (cluster.site / "cluster-test.zeek").read_text() + pcaps.trust_ca_zeek() + "\n")
            deploy(DeployOptions(zeek_source=PACKAGE, zeek_site=cluster.site, add_load=True))
            with (cluster.site / "local.zeek").open("a") as local:
                local.write(INTEL_TOR)
            # Nothing runs yet, so `zeekctl deploy`'s check and stop would only cost time.
            cluster.zeekctl("install")
            cluster.zeekctl("start")
            assert wait_until(cluster.running, 60), cluster.diagnostics()
            state = Run(cluster, standalone, combined, work)
            warm_up(state)
            state.send(list(rdpcap(str(combined))))
            expected = {five_tuple(r) for r in zeek.read_zeek_log(standalone.log_dir / "conn.log")}
            assert wait_until(lambda: expected <= {five_tuple(r) for r in state.conn_rows()}, 60), \
                cluster.diagnostics()
            time.sleep(2.0)  # notices and intel hits of the last connections
            yield state
            print(f"zeek cluster tests: {time.monotonic() - state.started:.1f} s with the cluster up")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _machine_local_zeek() -> str:
    """The site policy Zeek installs (share/zeek/site/local.zeek), copied into the test's site."""
    zeek_config = Path(zeek.require_zeek()).with_name("zeek-config")
    site = subprocess.run([str(zeek_config), "--site_dir"], capture_output=True, text=True, check=True).stdout
    return str(Path(site.strip()) / "local.zeek")


def warm_up(state: Run) -> None:
    """Send connections of a pair outside the scenarios until both workers have logged one."""
    attempt = 0

    def both_workers() -> bool:
        nonlocal attempt
        attempt += 1
        state.send([p for i in range(4) for p in http_packets(f"warm-{attempt}-{i}", WARM_CLIENT, WARM_SERVER)])
        nodes = {r["_node_name"] for r in state.conn_rows() if r["id.orig_h"] == WARM_CLIENT}
        return set(WORKERS) <= nodes

    assert wait_until(both_workers, 60, step=1.0), state.cluster.diagnostics()


def test_the_cluster_tags_every_flow_as_zeek_r_does(run):
    standalone: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for r in zeek.read_zeek_log(run.standalone.log_dir / "conn.log"):
        standalone.setdefault(five_tuple(r), []).append((r.get("nk_range", "-"), r.get("nk_side", "-")))
    cluster: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for r in run.conn_rows():
        if five_tuple(r) in standalone:
            cluster.setdefault(five_tuple(r), []).append((r["nk_range"], r["nk_side"]))
    assert cluster == standalone
    assert any(tag != ("-", "-") for tags in standalone.values() for tag in tags)


def test_the_cluster_raises_the_notices_of_zeek_r_once_each(run):
    hosts = {(r["id.orig_h"], r["id.resp_h"]) for r in zeek.read_zeek_log(run.standalone.log_dir / "conn.log")}
    hosts |= {(b, a) for a, b in hosts}
    standalone = Counter(notice_identity(r) for r in ours(list(zeek.read_zeek_log(
        run.standalone.log_dir / "notice.log"))))
    cluster = Counter(notice_identity(r) for r in ours(run.cluster.rows("notice")) if (r["src"], r["dst"]) in hosts)
    print(f"notices: standalone {sum(standalone.values())}, cluster {sum(cluster.values())}")
    assert cluster == standalone
    assert max(cluster.values()) == 1


def test_two_workers_saw_one_pair_and_it_raised_one_notice(run):
    pair = [r for r in run.conn_rows() if (r["id.orig_h"], r["id.resp_h"]) == (SPLIT_CLIENT, SPLIT_SERVER)]
    by_worker = Counter(r["_node_name"] for r in pair)
    print(f"split pair: connections per worker {dict(by_worker)}")
    assert (len(pair), set(by_worker)) == (SPLIT_CONNECTIONS, set(WORKERS))
    notices = [r for r in ours(run.cluster.rows("notice"))
               if r["note"] == "NKSensor::Range_Traffic" and {r["src"], r["dst"]} == {SPLIT_CLIENT, SPLIT_SERVER}]
    assert len(notices) == 1
    assert notices[0]["peer_descr"] in WORKERS


def test_one_notice_for_a_pair_on_two_workers_even_while_the_manager_lags(run):
    # Zeek's suppression reaches the other workers only through the manager. Stopping the
    # manager (our own process, by pid) stretches that round trip from a millisecond to
    # seconds, the way a loaded manager would: both workers see the pair meanwhile.
    client, server = "210.52.109.21", "198.51.100.78"
    conversations = [http_packets(f"lag-{i}", client, server) for i in range(SPLIT_CONNECTIONS)]
    packets = [c[step] for step in range(max(map(len, conversations))) for c in conversations if step < len(c)]
    manager = run.cluster.pids()["manager"]
    assert manager is not None
    os.kill(manager, signal.SIGSTOP)
    try:
        run.send(packets)

        def workers_logged() -> set[str]:
            return {r["_node_name"] for r in run.conn_rows() if r["id.orig_h"] == client}

        assert wait_until(lambda: workers_logged() == set(WORKERS), 30), workers_logged()
    finally:
        os.kill(manager, signal.SIGCONT)

    def pair_notices() -> list[dict[str, str]]:
        return [r for r in ours(run.cluster.rows("notice"))
                if r["note"] == "NKSensor::Range_Traffic" and {r["src"], r["dst"]} == {client, server}]

    assert wait_until(lambda: len(pair_notices()) >= 1, 30)
    time.sleep(2.0)  # a second notice, if any, would have been logged by now
    assert len(pair_notices()) == 1, pair_notices()


def test_intel_hits_come_from_the_managers_store_on_both_workers(run):
    def hits(rows) -> set[tuple[str, str]]:
        return {(r["seen.indicator"], r["sources"]) for r in rows}

    standalone = hits(zeek.read_zeek_log(run.standalone.log_dir / "intel.log"))
    scenario_hosts = {h for r in zeek.read_zeek_log(run.standalone.log_dir / "conn.log")
                      for h in (r["id.orig_h"], r["id.resp_h"])}
    rows = [r for r in run.cluster.rows("intel") if r["seen.indicator"] in scenario_hosts]
    assert {(pcaps.TOR_EXIT, "sensor-plugins tor"), (pcaps.TOR_RELAY, "sensor-plugins tor"),
            (pcaps.KP_STAR_JV_HOST, "sensor-plugins catalogue")} <= standalone
    assert hits(rows) == standalone
    # Workers read no intel file and insert nothing (intel-tor inserts on the manager only):
    # a worker matches an item only after the manager has sent it. The manager logs the hit.
    assert {r["_node_name"] for r in rows} == {"manager"}
    assert {r["seen.node"] for r in rows} <= set(WORKERS)
    split = {r["seen.node"] for r in rows if r["seen.indicator"] == SPLIT_CLIENT}
    assert split == set(WORKERS)


def test_a_live_deploy_reaches_every_worker_without_a_restart(run):
    cluster = run.cluster
    pids = cluster.pids()
    assert all(pids.values())

    def tor_hits(host: str) -> list[dict[str, str]]:
        return [r for r in cluster.rows("intel")
                if r["seen.indicator"] == host and r["sources"] == "sensor-plugins tor"]

    # A listed exit that the new lists drop: in the Intel store before the deploy.
    run.send(http_packets("dropped-before", DROPPED_EXIT, "175.45.176.60"))
    assert wait_until(lambda: tor_hits(DROPPED_EXIT), 30), cluster.diagnostics()
    after = run.work / "gen-after"
    catalogue, exits, relays = changed_inputs(run.work, drop=DROPPED_EXIT)
    generate(catalogue, [exits, relays], zeek_out=after / "zeek", suricata_out=after / "suricata")
    deploy(DeployOptions(zeek_source=after / "zeek", zeek_site=cluster.site))
    deployed_at = time.time()
    kp_hosts = [f"175.45.176.{i}" for i in range(20, 60)]
    attempt = 0

    def first_seen() -> tuple[dict[str, float], dict[str, float]]:
        tagged: dict[str, float] = {}
        for r in run.conn_rows():
            if r["id.orig_h"] == NEW_HOST and r["nk_range"] == "kp-live-test" and float(r["ts"]) >= deployed_at:
                tagged.setdefault(r["_node_name"], float(r["ts"]) - deployed_at)
        exits: dict[str, float] = {}
        for r in ours(cluster.rows("notice")):
            if r["note"] == "NKSensor::Tor_Traffic" and NEW_EXIT in (r["src"], r["dst"]):
                exits.setdefault(r["peer_descr"], float(r["ts"]) - deployed_at)
        return tagged, exits

    def every_worker() -> bool:
        nonlocal attempt
        attempt += 1
        packets = [p for i in range(4) for p in http_packets(f"new-{attempt}-{i}", NEW_HOST, pcaps.WEB_SERVER)]
        # A fresh catalogued peer each time: Tor_Traffic is suppressed per pair.
        packets += [p for i in range(2)
                    for p in http_packets(f"exit-{attempt}-{i}", NEW_EXIT, kp_hosts[(2 * attempt + i) % 40])]
        run.send(packets)
        tagged, exits = first_seen()
        return set(WORKERS) <= set(tagged) and set(WORKERS) <= set(exits)

    assert wait_until(every_worker, 60, step=1.0), (first_seen(), cluster.diagnostics())
    tagged, exits = first_seen()
    print("live reload, seconds from deploy to the first tagged connection per worker: "
          + ", ".join(f"{w} {tagged[w]:.1f}" for w in WORKERS)
          + "; to the first new-exit notice: " + ", ".join(f"{w} {exits[w]:.1f}" for w in WORKERS))
    assert max(*tagged.values(), *exits.values()) <= RELOAD_BUDGET_SECONDS
    # The manager's own re-read of tor-relays.tsv put the new exit into the Intel store,
    # and its distribution brought it to the workers that saw the exit.
    new_exit_hits = tor_hits(NEW_EXIT)
    assert new_exit_hits and {r["seen.node"] for r in new_exit_hits} <= set(WORKERS)

    reloaded = time.time()
    run.send([p for i in range(6) for p in http_packets(f"satgate-{i}", pcaps.KP_SATGATE_HOST, pcaps.WEB_SERVER)])

    def satgate_rows() -> list[dict[str, str]]:
        return [r for r in run.conn_rows() if r["id.orig_h"] == pcaps.KP_SATGATE_HOST and float(r["ts"]) >= reloaded]

    assert wait_until(lambda: len(satgate_rows()) == 6, 30)
    assert {(r["nk_range"], r["nk_side"]) for r in satgate_rows()} == {("-", "-")}
    assert {r["_node_name"] for r in satgate_rows()} <= set(WORKERS)

    # The dropped exit left the manager's store and, through remove_indicator, the workers':
    # its new connections are shown to the framework (their catalogued peers match) but
    # the exit itself no longer does, nor raises Tor_Traffic.
    dropped_peers = [f"175.45.176.{i}" for i in range(61, 65)]
    run.send([p for peer in dropped_peers for p in http_packets(f"dropped-after-{peer}", DROPPED_EXIT, peer)])

    def catalogue_hits() -> set[str]:
        return {r["seen.indicator"] for r in cluster.rows("intel") if r["sources"] == "sensor-plugins catalogue"}

    def dropped_uids() -> set[str]:
        return {r["uid"] for r in run.conn_rows() if r["id.orig_h"] == DROPPED_EXIT and r["id.resp_h"] in dropped_peers}

    # conn.log rows come from the workers and intel.log rows from the manager: wait for both.
    assert wait_until(lambda: set(dropped_peers) <= catalogue_hits()
                      and len(dropped_uids()) == len(dropped_peers), 30)
    after_uids = dropped_uids()
    assert not [r for r in tor_hits(DROPPED_EXIT) if r["uid"] in after_uids]
    assert not [r for r in ours(cluster.rows("notice"))
                if r["note"] == "NKSensor::Tor_Traffic" and r["dst"] in dropped_peers]
    assert cluster.pids() == pids


def test_a_script_change_is_deployed_with_zeekctl_and_no_row_is_lost(run):
    cluster = run.cluster
    pids_before = cluster.pids()
    changed = run.work / "gen-scripts"
    shutil.copytree(run.work / "gen-after" / "zeek", changed)
    marker = "nk-sensor script change deployed"
    with (changed / "main.zeek").open("a") as main:
        main.write(f'\nevent zeek_init() &priority=0\n\t{{\n\tReporter::info("{marker}");\n\t}}\n')

    # Deploy tells a script change from a data change: without --zeekctl it says that
    # `zeekctl deploy` is needed for these files.
    result = deploy(DeployOptions(zeek_source=changed, zeek_site=cluster.site, dry_run=True))
    assert [p.name for p in zeek_code_changed(result.plan.zeek)] == ["main.zeek"]
    before = [p for i in range(5) for p in http_packets(f"before-restart-{i}", pcaps.KP_STAR_JV_HOST,
                                                           pcaps.WEB_SERVER)]
    run.send(before)
    result = deploy(DeployOptions(zeek_source=changed, zeek_site=cluster.site, zeekctl=cluster.zeekctl_script))
    assert any("the cluster runs the new scripts" in a for a in result.actions), result.actions
    assert wait_until(cluster.running, 60), cluster.diagnostics()
    pids_after = cluster.pids()
    assert not set(pids_after.values()) & set(pids_before.values())

    def marked_nodes() -> set[str]:
        # A node's zeek_init runs before it peers with the logger, so its Reporter::info
        # reaches only the node's own stderr.log.
        return {node for node in NODES
                if marker in (cluster.spool / node / "stderr.log").read_text(errors="replace")}

    assert wait_until(lambda: marked_nodes() == set(NODES), 30), marked_nodes()

    tags = [f"after-restart-{i}" for i in range(5)]
    after = [p for tag in tags for p in http_packets(tag, pcaps.KP_STAR_JV_HOST, pcaps.WEB_SERVER)]
    run.send(after)
    sent = {five_tuple_of(p) for p in before + after if p[IP].src == pcaps.KP_STAR_JV_HOST}

    def logged() -> Counter:
        return Counter(five_tuple(r) for r in run.conn_rows() if five_tuple(r) in sent)

    assert wait_until(lambda: len(logged()) == len(sent), 60), (sorted(sent - set(logged())))
    assert set(logged().values()) == {1}


def five_tuple_of(packet) -> tuple[str, ...]:
    """conn.log's id of the connection a client packet belongs to."""
    return (packet[IP].src, str(packet[TCP].sport), packet[IP].dst, str(packet[TCP].dport), "tcp")
