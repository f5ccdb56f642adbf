"""The committed Zeek package in real Zeek 7: it loads cleanly and reports exactly what each scenario shows.

Every scenario pcap runs through ``zeek -C -r PCAP local zeek_scripts`` (plus a redef
that trusts the scenarios' test CA, as a site trusts its own). Then:
- Zeek printed no error and no warning;
- every conn.log row with a catalogued endpoint carries ``nk_range``/``nk_side``, and no
  other row does;
- the set of ``NKSensor::*`` notices equals what the scenario's hosts and labels call for
  (tests/zeek_harness.py), so negative scenarios raise nothing of ours.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO
from scapy.layers.inet import IP
from scapy.utils import rdpcap
from zeek_harness import conn_tags, expected_notices, expected_tag, notice_key, run_scenario, zeek_labels

from sensor_plugins.runners import zeek
from sensor_plugins.scenarios import pcaps

pytestmark = pytest.mark.zeek

PACKAGE = REPO / "zeek_scripts"
WIDEN = ["redef NKSensor::tor_scope = NKSensor::ALL_TRAFFIC;",
         "redef NKSensor::bittorrent_scope = NKSensor::ALL_TRAFFIC;"]


@pytest.fixture(scope="module")
def runs(scenario_runs) -> dict[str, zeek.ZeekRun]:
    # Run once per session (tests/conftest.py): other modules read the same runs' logs.
    return scenario_runs


def test_the_package_loads_in_zeek_with_no_error_or_warning():
    zeek.check_package(PACKAGE)
    zeek.check_package(PACKAGE, extra=["local"])


@pytest.mark.parametrize("name", sorted(pcaps.SCENARIOS))
def test_zeek_prints_no_error_or_warning_on_the_scenario(runs, name):
    assert runs[name].messages == ()


@pytest.mark.parametrize("name", sorted(pcaps.SCENARIOS))
def test_conn_log_tags_exactly_the_connections_with_a_catalogued_endpoint(runs, name):
    rows = conn_tags(runs[name].log_dir)
    assert rows, "conn.log is empty"
    assert {uid: (r[2], r[3]) for uid, r in rows.items()} == {
        uid: expected_tag(r[0], r[1]) for uid, r in rows.items()}


@pytest.mark.parametrize("name", sorted(pcaps.SCENARIOS))
def test_the_scenario_raises_exactly_its_nksensor_notices(runs, name):
    assert {notice_key(n) for n in runs[name].notices} == expected_notices(pcaps.SCENARIOS[name])


def test_every_negative_scenario_raises_nothing_of_ours(runs):
    loud = {n: [notice_key(x) for x in runs[n].notices] for n, s in pcaps.SCENARIOS.items()
            if not s.nk_hosts and runs[n].notices}
    assert loud == {}


@pytest.mark.parametrize("name", ["tor-relay-outside", "bittorrent-peer-outside", "bittorrent-dht-outside"])
def test_the_scope_options_widen_tor_and_bittorrent_notices_to_every_host(tmp_path, name):
    run = run_scenario(name, PACKAGE, tmp_path, redefs=WIDEN)
    scenario = pcaps.SCENARIOS[name]
    widened = expected_notices(scenario, everywhere=("tor", "bittorrent"))
    assert (run.messages, {notice_key(n) for n in run.notices}) == ((), widened)
    assert widened and not expected_notices(scenario)


@pytest.mark.parametrize("name", ["bittorrent-peer-kp-star-jv-out", "bittorrent-peer-midstream-kp-star-jv-out"])
def test_a_peer_wire_handshake_raises_one_notice_with_its_info_hash_whether_or_not_the_syn_was_seen(runs, name):
    # The analyzer reports a connection it saw open, the signature one picked up mid-stream;
    # never both, and both name the torrent.
    info_hash = pcaps.torrent().info_hash.hex()
    handshakes = [n.msg for n in runs[name].notices if notice_key(n) == "BitTorrent:peer-wire handshake"]
    opened = f"{pcaps.KP_STAR_JV_HOST} (catalogued range kp-star-jv, "
    assert [(m.split(": ", 1)[0], m.split(": ", 1)[1].startswith(opened),
             m.endswith(f" opened a connection to {pcaps.BT_PEER}")) for m in handshakes] == [
        (f"BitTorrent peer-wire handshake, info_hash {info_hash}", True, True)]


def test_the_midstream_bittorrent_connection_is_one_zeek_took_up_partial(runs):
    # The history shows no SYN or SYN-ACK: the case where Zeek's analyzer gives up.
    (row,) = zeek.read_zeek_log(runs["bittorrent-peer-midstream-kp-star-jv-out"].log_dir / "conn.log")
    assert not set(row["history"]) & set("SsHh")


def test_widening_tor_and_bittorrent_leaves_weak_tls_to_the_catalogue(tmp_path):
    run = run_scenario("tls10-rc4-outside", PACKAGE, tmp_path, redefs=WIDEN)
    assert (run.messages, run.notices) == ((), ())


def test_the_first_packet_of_a_trace_is_judged_after_the_tor_table_is_read(runs):
    # The capture opens with the listed exit's SYN: with the Input framework's asynchronous
    # read, that connection used to be processed before tor-relays.tsv was loaded.
    name = "tor-exit-http-kp-star-jv-in"
    first = rdpcap(str(Path(runs[name].pcap)))[0]
    assert first[IP].src == pcaps.TOR_EXIT
    assert "Tor_Traffic:exit" in {notice_key(n) for n in runs[name].notices}


def intel_hits(log_dir: Path) -> set[tuple[str, str]]:
    """(seen indicator, matched source) of every intel.log row."""
    return {(row["seen.indicator"], row["sources"]) for row in zeek.read_zeek_log(log_dir / "intel.log")}


def test_intel_log_shows_the_catalogue_range_and_not_the_tor_address_by_default(runs):
    hits = intel_hits(runs["tor-exit-http-kp-star-jv-in"].log_dir)
    assert hits == {(pcaps.KP_STAR_JV_HOST, "sensor-plugins catalogue")}


def intel_rows(log_dir: Path) -> list[dict[str, str]]:
    path = log_dir / "intel.log"
    return list(zeek.read_zeek_log(path)) if path.exists() else []


TOR_SCENARIOS = ("tor-exit-http-kp-star-jv-in", "tor-relay-kp-star-jv-out", "tor-relay-outside")


@pytest.mark.parametrize("name", TOR_SCENARIOS)
def test_intel_tor_hits_every_listed_tor_address_from_the_first_connection(tmp_path, name):
    # intel-tor.zeek inserts the Tor items from the table read inside the start-up gate,
    # so the first connection of the trace, whatever its Tor peer, is matched.
    load = [f"@load {PACKAGE / 'intel-tor.zeek'}"]
    run = run_scenario(name, PACKAGE, tmp_path, redefs=load)
    assert run.messages == ()
    conns = sorted(zeek.read_zeek_log(run.log_dir / "conn.log"), key=lambda r: float(r["ts"]))
    tor = {pcaps.TOR_EXIT, pcaps.TOR_RELAY}
    listed = {h for r in conns for h in (r["id.orig_h"], r["id.resp_h"]) if h in tor}
    first_uid = {h: next(r["uid"] for r in conns if h in (r["id.orig_h"], r["id.resp_h"])) for h in listed}
    hits = intel_rows(run.log_dir)
    tor_hits = {(r["seen.indicator"], r["uid"]) for r in hits if r["sources"] == "sensor-plugins tor"}
    assert listed and {(h, first_uid[h]) for h in listed} <= tor_hits
    assert {r["seen.indicator"] for r in hits} <= listed | set(pcaps.RANGE_OF_HOST)
    catalogued = {h for r in conns for h in (r["id.orig_h"], r["id.resp_h"]) if h in pcaps.RANGE_OF_HOST}
    assert {r["seen.indicator"] for r in hits if r["sources"] == "sensor-plugins catalogue"} == catalogued


# -- end to end: scenario pcaps -> real Zeek with the package -> analyze ------------------

# Traffic label -> the `analyze` reasons it must yield from Zeek's logs of the scenario.
REASONS_FOR_LABEL: dict[str, frozenset[str]] = {
    "tls:weak-cipher": frozenset({"weak-cipher"}),
    "tls:old-version": frozenset({"old-version"}),
    "tls:weak-key": frozenset({"weak-key"}),
    "tls:sha1-signature": frozenset({"weak-signature"}),
    # Both fail validation too (validate-certs, loaded by local).
    "tls:expired": frozenset({"expired-cert", "invalid-cert"}),
    "tls:self-signed": frozenset({"self-signed", "invalid-cert"}),
    # The bundled Tor lists are of 2024 and analyze matches an address only while it was
    # listed, so in the scenarios' 2017 traffic the relay and the exit show through the
    # package's notices (its tables hold the current lists) and the relay's certificate.
    "tor:relay": frozenset({"tor-cert", "tor-notice"}),
    "tor:exit": frozenset({"tor-notice"}),
    # Only the package shows these two: the handshake through our DPD signature (service
    # "bittorrent" and our notice), DHT through our signatures' notices.
    "bittorrent:peer": frozenset({"bittorrent-handshake"}),
    "bittorrent:dht": frozenset({"dht"}),
    "bittorrent:tracker": frozenset({"tracker-announce"}),
    "bittorrent:torrent-file": frozenset({"torrent-file"}),
    "client:weak-offer": frozenset({"weak-offer"}),
    "client:old-max-version": frozenset({"old-max-version"}),
    "client:known": frozenset({"known-client"}),
}


def expected_reasons(scenario: pcaps.Scenario) -> frozenset[tuple[str, str]]:
    """(reason, range) pairs: nk-traffic for each NK host, and each label's reasons on its range."""
    if not scenario.nk_hosts:
        return frozenset()
    ranges = {pcaps.RANGE_OF_HOST[h] for h in scenario.nk_hosts}
    reasons = set().union(*(REASONS_FOR_LABEL[label] for label in zeek_labels(scenario)))
    if scenario.tls is not None and scenario.tls.server_name is None and not scenario.midstream:
        reasons.add("no-sni")
    return frozenset({("nk-traffic", r) for r in ranges} | {(reason, r) for reason in reasons for r in ranges})


@pytest.fixture(scope="module")
def findings(runs, tmp_path_factory) -> dict[str, set[tuple[str, str]]]:
    import json

    from sensor_plugins.cli import main

    out = tmp_path_factory.mktemp("zeek-e2e")
    found = {}
    for name, run in runs.items():
        path = out / f"{name}.jsonl"
        code = main(["analyze", str(run.log_dir), "--format", "jsonl", "--out", str(path)])
        assert code in (0, 1), name
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        found[name] = {(row["reason"], row["range"]) for row in rows}
    return found


@pytest.mark.parametrize("name", sorted(pcaps.SCENARIOS))
def test_analyze_on_real_zeek_logs_finds_exactly_what_the_scenario_shows(findings, name):
    assert findings[name] == expected_reasons(pcaps.SCENARIOS[name])
