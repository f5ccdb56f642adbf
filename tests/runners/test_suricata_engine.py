"""The Suricata wrapper: finding the binary, the minimal yaml, -T errors and -r failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import MAIN_RULES, SuricataRenderer
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.runners.suricata import (
    SuricataError,
    find_suricata,
    parse_eve,
    render_config,
    replay,
)
from sensor_plugins.runners.suricata import test_rules as suricata_T
from sensor_plugins.scenarios import pcaps

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return SuricataRenderer().render(SensorContent(load_catalogue(), load_tor_list()), None).files


@pytest.fixture
def rules_dir(rendered, tmp_path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    for name, text in rendered.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def config(rules_dir: Path, **kwargs) -> dict:
    return yaml.safe_load(render_config(rules_dir, rules_dir.parent / "logs", **kwargs))


def test_a_missing_suricata_names_the_install_script(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SURICATA", raising=False)
    with pytest.raises(SuricataError, match=r"scripts/install-suricata\.sh"):
        find_suricata()


def test_the_minimal_config_loads_rules_through_rule_files_and_includes_the_vars(rules_dir):
    doc = config(rules_dir)
    assert (doc["default-rule-path"], doc["rule-files"], doc["vars"]["address-groups"]["include"]) == (
        str(rules_dir.resolve()), [MAIN_RULES], str(rules_dir.resolve() / "nksensor-vars.yaml"))


def test_the_minimal_config_turns_ja3_on_and_the_unix_socket_off(rules_dir):
    doc = config(rules_dir)
    assert (doc["app-layer"]["protocols"]["tls"]["ja3-fingerprints"], doc["unix-command"]["enabled"]) == (
        True, False)


def test_the_minimal_config_picks_up_sessions_midstream_with_no_policy_that_drops_or_passes_them(rules_dir):
    # Connections open before the sensor started are inspected (docs/DEPLOY.md); the
    # midstream scenarios hold the engine to it (tests/sensors/test_scenarios_suricata.py).
    assert config(rules_dir)["stream"] == {"midstream": True}


def test_a_unix_socket_path_turns_the_command_socket_on(rules_dir, tmp_path):
    socket = tmp_path / "suricata-command.socket"
    assert config(rules_dir, unix_socket=socket)["unix-command"] == {"enabled": True, "filename": str(socket)}


def test_the_everywhere_option_adds_the_optional_bittorrent_file(rules_dir):
    assert config(rules_dir, bittorrent_everywhere=True)["rule-files"] == [
        MAIN_RULES, "nksensor-bittorrent-all.rules"]


def test_a_path_with_quotes_and_a_newline_stays_one_yaml_value(rules_dir, tmp_path):
    odd = tmp_path / 'we"ird\nname'
    assert config(rules_dir, unix_socket=odd)["unix-command"]["filename"] == str(odd)


def test_a_rule_file_outside_the_rules_directory_is_refused(rules_dir):
    with pytest.raises(SuricataError, match="plain file name"):
        render_config(rules_dir, rules_dir, rule_files=["../../etc/passwd"])


@needs_suricata
def test_the_generated_rules_vars_and_datasets_pass_suricata_T(rules_dir):
    suricata_T(rules_dir)


@needs_suricata
def test_a_broken_rule_is_reported_with_its_file_and_line(rules_dir):
    path = rules_dir / MAIN_RULES
    lines = path.read_text().count("\n")
    with path.open("a") as handle:
        handle.write('alert tcp any any -> any any (msg:"broken"; content:; sid:1659999; rev:1;)\n')
    expected = rf"{MAIN_RULES} line {lines + 1}: suricata -T refused the rule: .*content"
    with pytest.raises(SuricataError, match=expected):
        suricata_T(rules_dir)


@needs_suricata
def test_a_missing_dataset_file_is_reported_against_the_rule_that_loads_it(rules_dir):
    (rules_dir / "nksensor-tor-exit.lst").unlink()
    with pytest.raises(SuricataError, match=rf"{MAIN_RULES} line \d+: .*nksensor-tor-exit\.lst"):
        suricata_T(rules_dir)


@needs_suricata
def test_a_truncated_pcap_is_an_error_not_fewer_alerts(rules_dir, tmp_path):
    whole = pcaps.pcap_bytes(pcaps.build_packets("http-kp-star-jv-out"))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 30])
    with pytest.raises(SuricataError, match="truncated"):
        replay([cut], rules_dir, tmp_path / "logs")


def test_a_missing_pcap_is_reported_before_suricata_runs(rules_dir, tmp_path):
    with pytest.raises(SuricataError, match="no such pcap file"):
        replay([tmp_path / "absent.pcap"], rules_dir, tmp_path / "logs")


def test_an_unreadable_eve_line_is_reported_with_its_line_number(tmp_path):
    eve = tmp_path / "eve.json"
    eve.write_text('{"event_type": "flow"}\n{"event_type": "alert", "alert": {"signature_id": 1\n')
    with pytest.raises(SuricataError, match=r"eve\.json:2: unreadable eve alert"):
        parse_eve(eve, "x.pcap")


@needs_suricata
def test_an_alert_keeps_rule_metadata_and_the_tls_record_but_not_the_flow_counters(rules_dir, tmp_path):
    pcap = tmp_path / "expired.pcap"
    pcap.write_bytes(pcaps.pcap_bytes(pcaps.build_packets("tls12-expired-selfsigned-kp-star-jv-out")))
    replay([pcap], rules_dir, tmp_path / "logs")
    events = [json.loads(line) for line in next((tmp_path / "logs").glob("*/eve.json")).read_text().splitlines()]
    tls_alert = next(e for e in events if e.get("event_type") == "alert" and "tls" in e)
    assert (sorted(tls_alert["alert"]["metadata"]), "sni" in tls_alert["tls"], "flow" in tls_alert) == (
        ["affected_product", "attack_target", "created_at", "deployment", "performance_impact",
         "signature_severity", "updated_at"], True, False)
