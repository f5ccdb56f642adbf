"""Live Suricata on the virtual tap, with the yaml deploy and the tests render, writes tls.ja4.

The Chromium-like client scenario is replayed into the tap; eve.json must get a ``tls``
record carrying the same JA4 that FoxIO's reference computed for that pcap
(tests/sensors/fixtures/ja4/reference-scenarios.json).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from tap_harness import ensure_tcpreplay, live_suricata, replay, short_tempdir, tap_namespace, wait_until

from sensor_plugins.runners.suricata import render_config
from sensor_plugins.scenarios import pcaps

pytestmark = [
    pytest.mark.netns,
    pytest.mark.suricata,
    pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary"),
]

SCENARIO = "client-browser-kp-star-jv-out"
REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "ja4" / "reference-scenarios.json").read_text())


def tls_ja4(eve: Path) -> list[str]:
    if not eve.exists():
        return []
    found = []
    for line in eve.read_text(errors="replace").splitlines():
        if '"event_type":"tls"' in line:
            try:
                found.append(json.loads(line)["tls"].get("ja4"))
            except json.JSONDecodeError:  # a line still being written
                continue
    return found


def test_live_suricata_on_the_tap_logs_the_clients_ja4():
    ensure_tcpreplay()
    work = short_tempdir()
    try:
        (pcap,) = pcaps.write_pcaps(work / "pcaps", [SCENARIO])
        config = work / "suricata.yaml"
        config.write_text(render_config(REPO / "suricata_rules", work / "log"), encoding="utf-8")
        expected = REFERENCE["pcaps"][f"{SCENARIO}.pcap"][0]["ja4"][0]
        with tap_namespace() as ns, live_suricata(ns, config, work) as engine:
            replay(engine, [pcap])
            assert wait_until(lambda: tls_ja4(engine.eve), timeout=60.0), "no tls record in eve.json"
            assert tls_ja4(engine.eve) == [expected]
    finally:
        shutil.rmtree(work, ignore_errors=True)
