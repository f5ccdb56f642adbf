"""The virtual tap itself: a trivial rule proves packets reach live Suricata, and clean-up is total."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap
from tap_harness import ensure_tcpreplay, live_suricata, replay, short_tempdir, tap_namespace, wait_for_alerts

pytestmark = [
    pytest.mark.netns,
    pytest.mark.suricata,
    pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary"),
]

TRIVIAL_SID = 9100001


@pytest.fixture
def trivial_sensor() -> Iterator[Path]:
    """One rule, one pcap, a config of the smallest kind."""
    ensure_tcpreplay()
    work = short_tempdir()
    try:
        (work / "trivial.rules").write_text(
            f'alert udp any any -> 175.45.176.0/22 53 (msg:"tap check"; sid:{TRIVIAL_SID}; rev:1;)\n')
        (work / "suricata.yaml").write_text(
            f"%YAML 1.1\n---\ndefault-rule-path: {work}\nrule-files:\n  - trivial.rules\n"
            "outputs:\n  - eve-log:\n      enabled: yes\n      filename: eve.json\n      types:\n        - alert\n")
        packet = Ether() / IP(src="192.0.2.7", dst="175.45.176.10") / UDP(sport=40000, dport=53) / b"probe"
        wrpcap(str(work / "one.pcap"), [packet])
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_packet_replayed_into_the_tap_is_seen_by_live_suricata(trivial_sensor):
    with tap_namespace() as ns, live_suricata(ns, trivial_sensor / "suricata.yaml", trivial_sensor) as engine:
        replay(engine, [trivial_sensor / "one.pcap"])
        assert wait_for_alerts(engine, 0, {TRIVIAL_SID}) == {TRIVIAL_SID}


def test_clean_up_removes_the_namespace_and_ends_the_suricata_it_started(trivial_sensor):
    with tap_namespace() as ns, live_suricata(ns, trivial_sensor / "suricata.yaml", trivial_sensor) as engine:
        name, pid = ns.name, engine.pid
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert (name in namespaces.split(), engine.process.returncode is None, os.path.exists(f"/proc/{pid}")) == (
        False, False, False)
