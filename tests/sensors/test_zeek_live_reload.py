"""Live reload in real Zeek: deploy new ranges and Tor exits to a running sensor, no restart.

Zeek captures on one end of the test namespace's veth pair with the package deployed into
a site directory of its own; tcpreplay sends crafted conversations into the other end.
Then `deploy` installs a package generated from a catalogue with one range added and one
removed, and a Tor list with one exit added. The Input framework's REREAD mode must pick
up the replaced files: the new range is tagged and raises its notice, the removed one is
no longer tagged, the new exit raises Tor_Traffic, and Zeek's pid never changes.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from tap_harness import ensure_tcpreplay, live_zeek, send, short_tempdir, tap_namespace, wait_until
from zeek_harness import NEW_EXIT, NEW_HOST, changed_inputs

from sensor_plugins.atomic import write_bytes_atomic
from sensor_plugins.generate.command import generate
from sensor_plugins.scenarios import pcaps
from sensor_plugins.scenarios.httpwire import HttpExchange, html_page
from sensor_plugins.sensors.deploy import DeployOptions, deploy

pytestmark = [pytest.mark.netns, pytest.mark.zeek]



def conversation(tag: str, client: str, server: str, out: Path) -> Path:
    """One HTTP conversation; ``tag`` seeds the ports, so each call is a connection of its own."""
    exchange = HttpExchange("www.example.com", f"/{tag}.html", html_page(tag))
    path = out / f"{tag}.pcap"
    write_bytes_atomic(path, pcaps.pcap_bytes(pcaps.build_http(f"live-{tag}", client, server, exchange)))
    return path


def tagged(engine, host: str, since: float = 0.0) -> list[str]:
    """nk_range of each conn.log row with ``host`` that started at or after ``since`` (epoch seconds)."""
    return [r.get("nk_range", "-") for r in engine.rows("conn.log")
            if host in (r["id.orig_h"], r["id.resp_h"]) and float(r["ts"]) >= since]


def notices(engine, note: str, host: str) -> list[dict[str, str]]:
    return [r for r in engine.rows("notice.log") if r["note"] == note and host in (r.get("src"), r.get("dst"))]


def test_deploy_changes_ranges_and_tor_exits_in_running_zeek_without_a_restart():
    ensure_tcpreplay()
    work = short_tempdir()
    try:
        site = work / "site"
        site.mkdir()
        (site / "local.zeek").write_text("# the test sensor's site policy\n")
        before = work / "gen-before"
        generate(zeek_out=before / "zeek", suricata_out=before / "suricata")
        deploy(DeployOptions(zeek_source=before / "zeek", zeek_site=site, add_load=True))
        out = work / "pcaps"
        out.mkdir()
        star, satgate = pcaps.KP_STAR_JV_HOST, pcaps.KP_SATGATE_HOST
        with tap_namespace() as ns, live_zeek(ns, site, work) as engine:
            pid = engine.pid
            send(ns, [conversation("warm-up", star, pcaps.WEB_SERVER, out)])
            assert wait_until(lambda: tagged(engine, star) == ["kp-star-jv"]), engine.output()
            send(ns, [conversation("new-before", NEW_HOST, pcaps.WEB_SERVER, out),
                      conversation("satgate-before", satgate, pcaps.WEB_SERVER, out),
                      conversation("exit-before", NEW_EXIT, star, out)])
            assert wait_until(lambda: len(tagged(engine, NEW_HOST)) == 1 and len(tagged(engine, satgate)) == 1)
            tor_before = notices(engine, "NKSensor::Tor_Traffic", NEW_EXIT)
            assert (tagged(engine, NEW_HOST), tagged(engine, satgate), tor_before) == (["-"], ["kp-satgate"], [])

            after = work / "gen-after"
            catalogue, exits, relays = changed_inputs(work)
            generate(catalogue, [exits, relays], zeek_out=after / "zeek", suricata_out=after / "suricata")
            started, deployed_at = time.monotonic(), time.time()
            result = deploy(DeployOptions(zeek_source=after / "zeek", zeek_site=site))
            assert result.plan.changes, "deploy changed nothing"

            attempt = 0

            def new_range_tagged() -> bool:
                nonlocal attempt
                attempt += 1
                send(ns, [conversation(f"new-after-{attempt}", NEW_HOST, pcaps.WEB_SERVER, out)])
                return "kp-live-test" in tagged(engine, NEW_HOST)

            assert wait_until(new_range_tagged, timeout=60, step=1.0), engine.output()
            first_tag_seconds = time.monotonic() - started
            send(ns, [conversation("satgate-after", satgate, pcaps.WEB_SERVER, out),
                      conversation("exit-after", NEW_EXIT, star, out)])
            assert wait_until(lambda: tagged(engine, satgate, deployed_at)
                              and notices(engine, "NKSensor::Tor_Traffic", NEW_EXIT)), engine.output()
            range_notices = [r for r in notices(engine, "NKSensor::Range_Traffic", NEW_HOST)
                             if "kp-live-test" in r["sub"]]
            assert (set(tagged(engine, satgate, deployed_at)), bool(range_notices), engine.pid,
                    engine.process.poll()) == ({"-"}, True, pid, None)
            (work / "reload-seconds.txt").write_text(f"{first_tag_seconds:.1f}\n")
            print(f"zeek live reload: first new tag {first_tag_seconds:.1f} s after deploy, pid {pid} unchanged")
    finally:
        shutil.rmtree(work, ignore_errors=True)
