"""Deploy onto a live sensor on a virtual tap: real packets, live capture, live reload.

Suricata captures in af-packet mode on one end of a veth pair inside a namespace made
for the test; tcpreplay sends the scenario pcaps into the other end. What the live
engine alerts on is compared with the offline `suricata -r` replay of the same pcaps.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tap_harness import (
    alert_lines,
    ensure_tcpreplay,
    live_suricata,
    replay,
    short_tempdir,
    tap_namespace,
    wait_for_alerts,
)

from sensor_plugins.generate.command import generate
from sensor_plugins.generate.suricata import MAIN_RULES, SID_MAP
from sensor_plugins.runners.suricata import data_dir, render_config
from sensor_plugins.runners.suricata import replay as offline_replay
from sensor_plugins.scenarios.pcaps import WEB_SERVER, write_pcaps
from sensor_plugins.sensors.deploy import DeployError, DeployOptions, deploy

pytestmark = [
    pytest.mark.netns,
    pytest.mark.suricata,
    pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary"),
]

DATA = Path(__file__).resolve().parents[2] / "sensor_plugins" / "data"
BUNDLED_CATALOGUE = DATA / "catalogue.yaml"
BUNDLED_TOR_LISTS = [DATA / "tor" / "secops-tor-exit-nodes.lst", DATA / "tor" / "secops-tor-nodes.lst"]
# TEST-NET-1 holds the hosts of the negative scenarios (pcaps.NEGATIVE_CLIENT/PEER), so
# no rule alerts on them until this range is added to the catalogue.
ADDED_RANGE = """\
  - name: test-net-one
    cidr: 192.0.2.0/24
    country: KP
    owner: Documentation network standing in for a newly found range
    source: RFC 5737
    confidence: low
"""


@dataclass
class Baseline:
    work: Path
    generated: Path
    pcaps: list[Path]
    offline_sids: set[int]


@pytest.fixture(scope="module")
def baseline() -> Iterator[Baseline]:
    """Generated content, the scenario pcaps and the sids the offline replay raises, made once."""
    ensure_tcpreplay()
    work = short_tempdir()
    try:
        generated = work / "gen"
        generate(None, None, generated / "zeek", generated / "suricata")
        pcaps = write_pcaps(work / "pcaps")
        sids = {alert.sid for alert in offline_replay(pcaps, generated / "suricata", work / "offline")}
        yield Baseline(work, generated, pcaps, sids)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Sensor:
    root: Path
    config: Path
    rules: Path
    socket: Path


@pytest.fixture
def sensor(baseline: Baseline) -> Iterator[Sensor]:
    """A sensor's directories, with the generated rules deployed the way a user would."""
    root = short_tempdir()
    try:
        rules, conf = root / "rules", root / "conf"
        rules.mkdir()
        conf.mkdir()
        for name in ("classification.config", "reference.config"):
            shutil.copy(data_dir() / name, conf / name)
        lift_thresholds(conf / "threshold.config", rule_sids(baseline.generated / "suricata" / MAIN_RULES))
        config = root / "suricata.yaml"
        config.write_text(render_config(rules, root / "log", config_dir=conf), encoding="utf-8")
        deploy(DeployOptions(suricata_source=baseline.generated / "suricata", suricata_config=config))
        yield Sensor(root, config, rules, root / "cmd.sock")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def rule_sids(rules_file: Path) -> set[int]:
    return {int(m) for m in re.findall(r"\bsid:\s*(\d+);", rules_file.read_text(encoding="utf-8"))}


def lift_thresholds(path: Path, sids: set[int]) -> None:
    """Let every rule alert on each replay.

    The rules hold a host to one alert per 300 s, and the engine keeps that state across
    a reload, as it should on a sensor. Replaying the same hosts twice would then test
    the limiter, not the rules; a threshold.config entry for a sid replaces the rule's own.
    """
    path.write_text("".join(f"threshold gen_id 1, sig_id {sid}, type threshold, track by_src, count 1, "
                            "seconds 1\n" for sid in sorted(sids)), encoding="utf-8")


def regenerate_with_added_range(baseline: Baseline, out: Path) -> Path:
    catalogue = out / "catalogue.yaml"
    out.mkdir(parents=True)
    catalogue.write_text(BUNDLED_CATALOGUE.read_text(encoding="utf-8") + ADDED_RANGE, encoding="utf-8")
    # Start from the previous output so the sid registry keeps every existing sid.
    shutil.copytree(baseline.generated / "suricata", out / "suricata")
    generate(catalogue, None, out / "zeek", out / "suricata")
    return out / "suricata"


def test_live_capture_on_the_tap_raises_the_same_sids_as_the_offline_replay(baseline, sensor):
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine:
        replay(engine, baseline.pcaps)
        live = wait_for_alerts(engine, 0, baseline.offline_sids)
    assert live == baseline.offline_sids


def test_a_range_added_while_suricata_runs_alerts_after_deploy_without_a_restart(baseline, sensor):
    new_rules = regenerate_with_added_range(baseline, sensor.root / "gen2")
    added = rule_sids(new_rules / MAIN_RULES) - rule_sids(sensor.rules / MAIN_RULES)
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine:
        pid = engine.pid
        replay(engine, baseline.pcaps)
        before = wait_for_alerts(engine, 0, baseline.offline_sids)
        seen = len(alert_lines(engine.eve))
        deploy(DeployOptions(suricata_source=new_rules, suricata_config=sensor.config,
                             suricata_socket=sensor.socket))
        replay(engine, baseline.pcaps)
        after = wait_for_alerts(engine, seen, baseline.offline_sids | added)
        same_process = engine.process.poll() is None and engine.pid == pid
    assert (before & added, added <= after, baseline.offline_sids <= after, same_process) == (
        set(), True, True, True)


def nk_alerts_on_test_net(alerts: Iterable[tuple[int, str, str]], rules: Path) -> set[tuple[str, str, str]]:
    """(rule key, src, dst) of the (sid, src, dst) alerts of rules other than the range rules with a TEST-NET-1 end."""
    keys = {entry["sid"]: key for key, entry in json.loads((rules / SID_MAP).read_text())["rules"].items()}
    # tls_cert_expired compares with the packet's time: live, that is today, when the
    # scenarios' certificates have expired; replayed offline, it is the capture's own date.
    return {(keys[sid], src, dst) for sid, src, dst in alerts
            if not keys[sid].startswith(("range:", "tls:cert-expired")) and "192.0.2." in f"{src} {dst}"}


def eve_alerts(lines: list[str]) -> list[tuple[int, str, str]]:
    events = [json.loads(line) for line in lines]
    return [(e["alert"]["signature_id"], e["src_ip"], e["dest_ip"]) for e in events]


def test_a_range_added_while_suricata_runs_brings_its_hosts_under_the_tls_tor_and_bittorrent_rules(
        baseline, sensor):
    # The catalogue's networks are written into those rules' headers: the reload that
    # deploy triggers must carry the new list, as the vars file once did.
    new_rules = regenerate_with_added_range(baseline, sensor.root / "gen2")
    outside = [p for p in baseline.pcaps if "outside" in p.stem]
    offline_alerts = offline_replay(outside, new_rules, sensor.root / "offline2")
    offline = nk_alerts_on_test_net([(a.sid, a.src, a.dst) for a in offline_alerts], new_rules)
    keys = {key for key, _src, _dst in offline}
    sids = {entry["sid"] for key, entry in json.loads((new_rules / SID_MAP).read_text())["rules"].items()
            if key in keys}
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine:
        replay(engine, outside)
        wait_for_alerts(engine, 0, set())
        seen = len(alert_lines(engine.eve))
        before = nk_alerts_on_test_net(eve_alerts(alert_lines(engine.eve)), new_rules)
        deploy(DeployOptions(suricata_source=new_rules, suricata_config=sensor.config,
                             suricata_socket=sensor.socket))
        replay(engine, outside)
        wait_for_alerts(engine, seen, sids)
        after = nk_alerts_on_test_net(eve_alerts(alert_lines(engine.eve)[seen:]), new_rules)
    families = {key.split(":")[0] for key in keys}
    assert (before, families, after - offline, offline - after) == (set(), {"tls", "tor", "bittorrent"}, set(), set())


def test_a_deploy_that_fails_validation_leaves_the_running_sensor_alerting_as_before(baseline, sensor):
    bad = sensor.root / "bad"
    shutil.copytree(baseline.generated / "suricata", bad)
    with (bad / MAIN_RULES).open("a", encoding="utf-8") as handle:
        handle.write('alert ip any any -> any any (msg:"planted"; no_such_keyword; sid:1659990; rev:1;)\n')
    installed = {p.name: p.read_bytes() for p in sensor.rules.iterdir()}
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine:
        with pytest.raises(DeployError, match="suricata -T rejected"):
            deploy(DeployOptions(suricata_source=bad, suricata_config=sensor.config, suricata_socket=sensor.socket))
        replay(engine, baseline.pcaps)
        live = wait_for_alerts(engine, 0, baseline.offline_sids)
    unchanged = {p.name: p.read_bytes() for p in sensor.rules.iterdir()} == installed
    assert (unchanged, live) == (True, baseline.offline_sids)


def test_a_tor_exit_added_to_the_lists_alerts_through_dataset_add_without_a_rule_reload(baseline, sensor):
    extra = sensor.root / "extra-exit.lst"
    # The web server of the http-*-out scenarios, listed as a Tor exit from now on.
    extra.write_text(f"# role: exit\n# fetched: 2024-02-27\n{WEB_SERVER}\n", encoding="utf-8")
    out = sensor.root / "gen-tor"
    shutil.copytree(baseline.generated / "suricata", out / "suricata")
    generate(None, [*BUNDLED_TOR_LISTS, extra], out / "zeek", out / "suricata")
    with tap_namespace() as ns, live_suricata(ns, sensor.config, sensor.root) as engine:
        deploy(DeployOptions(suricata_source=out / "suricata", suricata_config=sensor.config,
                             suricata_socket=sensor.socket))
        replay(engine, [p for p in baseline.pcaps if p.stem == "http-kp-star-jv-out"])
        wait_for_alerts(engine, 0, set())
        to_new_exit = [line for line in alert_lines(engine.eve) if f'"dest_ip":"{WEB_SERVER}"' in line
                       and '"NKSENSOR TOR' in line]
        reloaded = "rule reload" in engine.output()
    assert (bool(to_new_exit), reloaded) == (True, False)
