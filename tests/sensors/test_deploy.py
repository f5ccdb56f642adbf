"""`sensor-plugins deploy` on a sensor's directories: plan, validate, write, and put back on failure.

The live reload through Suricata's socket is covered on a real virtual tap in
tests/sensors/test_tap_deploy.py; here the engine side is `suricata -T` only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sensor_plugins import atomic
from sensor_plugins.cli import main
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.validate import check_zeek_script
from sensor_plugins.sensors.deploy import (
    MANIFEST,
    DatasetRef,
    DeployError,
    DeployOptions,
    FileChange,
    Plan,
    dataset_commands,
    deploy,
    has_load_line,
)

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary")

RULES = (
    'alert ip $SP_TEST_NETS any -> any any (msg:"SP test range"; sid:1650001; rev:1;)\n'
    'alert ip any any -> any any (msg:"SP test tor"; ip.dst; '
    "dataset:isset,sp-test-tor,type ip,load sp-test-tor.lst; sid:1650002; rev:1;)\n"
)
VARS = '%YAML 1.1\n---\nSP_TEST_NETS: "[175.45.176.0/22]"\n'
TOR = "185.220.101.1\n"
ZEEK_LOAD = "@load ./main\n"
ZEEK_MAIN = "module SPTest;\n\nexport {\n\tconst answer = 42 &redef;\n}\n"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def sensor(tmp_path: Path) -> dict[str, Path]:
    """A sensor with its own rules already in place, a suricata.yaml and a Zeek site."""
    rules_dir = write_tree(tmp_path / "sensor/rules", {"local.rules": 'alert icmp any any -> any any '
                                                      '(msg:"site rule"; sid:9000001; rev:1;)\n'})
    config = tmp_path / "sensor/suricata.yaml"
    config.write_text(
        "%YAML 1.1\n---\n"
        f"default-rule-path: {rules_dir}\n"
        "rule-files:\n  - local.rules\n  - sensor-plugins.rules\n"
        "vars:\n  address-groups:\n    HOME_NET: any\n"
        f"    include: {rules_dir}/sensor-plugins-vars.yaml\n",
        encoding="utf-8",
    )
    site = write_tree(tmp_path / "sensor/site", {"local.zeek": "@load misc/loaded-scripts\n"})
    return {"rules": rules_dir, "config": config, "site": site}


def generated(root: Path, rules: str = RULES, tor: str = TOR, extra: dict[str, str] | None = None) -> dict[str, Path]:
    suricata = write_tree(root / "suricata_rules", {
        "sensor-plugins.rules": rules, "sensor-plugins-vars.yaml": VARS, "sp-test-tor.lst": tor, **(extra or {}),
    })
    zeek = write_tree(root / "zeek_scripts", {"__load__.zeek": ZEEK_LOAD, "main.zeek": ZEEK_MAIN,
                                              "nk-ranges.tsv": "#fields\tcidr\n175.45.176.0/22\n"})
    return {"suricata": suricata, "zeek": zeek}


def options(sensor: dict[str, Path], source: dict[str, Path], **kw) -> DeployOptions:
    return DeployOptions(zeek_source=source["zeek"], suricata_source=source["suricata"], zeek_site=sensor["site"],
                         suricata_config=sensor["config"], **kw)


@needs_suricata
def test_deploy_installs_every_generated_file_next_to_the_sensors_own_rules(tmp_path, sensor):
    source = generated(tmp_path / "gen1")
    deploy(options(sensor, source))
    installed = snapshot(sensor["rules"])
    assert {k: v for k, v in installed.items() if k != MANIFEST} == {
        "local.rules": (sensor["rules"] / "local.rules").read_bytes(), **snapshot(source["suricata"])}


@needs_suricata
def test_a_config_that_does_not_wire_our_files_yet_is_validated_as_if_it_did(tmp_path, sensor):
    sensor["config"].write_text(
        f"%YAML 1.1\n---\ndefault-rule-path: {sensor['rules']}\nrule-files:\n  - local.rules\n", encoding="utf-8")
    result = deploy(options(sensor, generated(tmp_path / "gen1")))
    notes = " ".join(result.plan.notes)
    assert ("- sensor-plugins.rules" in notes, "inside vars.address-groups" in notes) == (True, True)


@needs_suricata
def test_second_deploy_of_the_same_content_changes_nothing(tmp_path, sensor):
    source = generated(tmp_path / "gen1")
    deploy(options(sensor, source))
    assert deploy(options(sensor, source)).plan.changes == []


@needs_suricata
def test_dry_run_leaves_the_sensor_untouched(tmp_path, sensor):
    before = snapshot(sensor["rules"].parent)
    deploy(options(sensor, generated(tmp_path / "gen1"), dry_run=True))
    assert snapshot(sensor["rules"].parent) == before


@needs_suricata
def test_dry_run_prints_the_diff_and_the_actions(tmp_path, sensor, capsys):
    source = generated(tmp_path / "gen1")
    code = main(["deploy", "--zeek-out", str(source["zeek"]), "--suricata-out", str(source["suricata"]),
                 "--suricata-config", str(sensor["config"]), "--dry-run"])
    out = capsys.readouterr().out
    assert (code, "+185.220.101.1" in out, f"add {sensor['rules']}/sensor-plugins.rules" in out) == (0, True, True)


@needs_suricata
def test_a_rule_that_suricata_rejects_changes_nothing(tmp_path, sensor):
    deploy(options(sensor, generated(tmp_path / "gen1")))
    before = snapshot(sensor["rules"].parent)
    broken = "alert ip any any -> any any (msg:\"broken\"; nosuchkw; sid:1650003;)\n"
    bad = generated(tmp_path / "gen2", rules=RULES + broken)
    with pytest.raises(DeployError, match="suricata -T rejected"):
        deploy(options(sensor, bad))
    assert snapshot(sensor["rules"].parent) == before


@needs_suricata
def test_failed_validation_exits_2_with_one_line_naming_the_config(tmp_path, sensor, capsys):
    bad = generated(tmp_path / "gen2", rules="alert ip $NO_SUCH_VAR any -> any any (sid:1650009;)\n")
    code = main(["deploy", "--zeek-out", str(bad["zeek"]), "--suricata-out", str(bad["suricata"]),
                 "--suricata-config", str(sensor["config"])])
    err = capsys.readouterr().err.strip()
    assert (code, len(err.splitlines()), str(sensor["config"]) in err) == (2, 1, True)


@needs_suricata
def test_files_a_later_generation_drops_are_removed_but_the_sites_own_stay(tmp_path, sensor):
    deploy(options(sensor, generated(tmp_path / "gen1", extra={"old-extra.rules": ""})))
    deploy(options(sensor, generated(tmp_path / "gen2")))
    names = set(snapshot(sensor["rules"]))
    assert ("old-extra.rules" in names, "local.rules" in names) == (False, True)


@needs_suricata
def test_a_failed_write_puts_back_every_file_already_written(tmp_path, sensor, monkeypatch):
    deploy(options(sensor, generated(tmp_path / "gen1")))
    before = snapshot(sensor["rules"].parent)
    real_write = atomic.write_bytes_atomic
    calls = []

    def failing_write(path, data, mode=0o644):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data, mode)

    monkeypatch.setattr(atomic, "write_bytes_atomic", failing_write)
    with pytest.raises(DeployError, match="every file was restored"):
        deploy(options(sensor, generated(tmp_path / "gen2", rules=RULES.replace("rev:1", "rev:2"), tor="1.2.3.4\n")))
    assert snapshot(sensor["rules"].parent) == before


@needs_suricata
def test_an_unreachable_socket_stops_the_deploy_before_any_write(tmp_path, sensor):
    before = snapshot(sensor["rules"].parent)
    with pytest.raises(DeployError, match="cannot connect"):
        deploy(options(sensor, generated(tmp_path / "gen1"), suricata_socket=tmp_path / "no.sock"))
    assert snapshot(sensor["rules"].parent) == before


@needs_suricata
def test_add_load_appends_the_load_line_once(tmp_path, sensor):
    source = generated(tmp_path / "gen1")
    deploy(options(sensor, source, add_load=True))
    deploy(options(sensor, generated(tmp_path / "gen2", tor="1.2.3.4\n"), add_load=True))
    text = (sensor["site"] / "local.zeek").read_text()
    assert text.count("@load nk-sensor") == 1


def test_the_added_lines_parse_and_point_zeek_at_the_deployed_range_table(tmp_path, sensor):
    deploy(DeployOptions(zeek_source=generated(tmp_path / "gen1")["zeek"], zeek_site=sensor["site"], add_load=True))
    local = sensor["site"] / "local.zeek"
    check_zeek_script(local)
    ranges = (sensor["site"] / "nk-sensor" / "nk-ranges.tsv").resolve()
    assert f'redef NKSensor::ranges_file = "{ranges}";' in local.read_text().splitlines()


@needs_suricata
def test_without_add_load_local_zeek_is_left_alone_and_the_line_is_shown(tmp_path, sensor):
    result = deploy(options(sensor, generated(tmp_path / "gen1")))
    notes = " ".join(result.plan.notes)
    assert ((sensor["site"] / "local.zeek").read_text(), "@load nk-sensor |" in notes) == (
        "@load misc/loaded-scripts\n", True)


@needs_suricata
def test_the_zeek_package_lands_in_its_own_directory_under_site(tmp_path, sensor):
    deploy(options(sensor, generated(tmp_path / "gen1")))
    assert set(snapshot(sensor["site"] / "nk-sensor")) == {"__load__.zeek", "main.zeek", "nk-ranges.tsv", MANIFEST}


def test_a_zeek_script_that_does_not_parse_stops_the_deploy(tmp_path, sensor):
    source = generated(tmp_path / "gen1")
    (source["zeek"] / "main.zeek").write_text("module SPTest;\nexport { const = ;\n")
    with pytest.raises(SensorPluginsError, match="zeekscript"):
        deploy(DeployOptions(zeek_source=source["zeek"], zeek_site=sensor["site"]))


def test_a_manifest_entry_outside_the_directory_is_refused(tmp_path, sensor):
    source = generated(tmp_path / "gen1")
    (sensor["site"] / "nk-sensor").mkdir()
    (sensor["site"] / "nk-sensor" / MANIFEST).write_text("../local.zeek\n")
    with pytest.raises(DeployError, match="not a path inside"):
        deploy(DeployOptions(zeek_source=source["zeek"], zeek_site=sensor["site"]))


def test_a_rules_dir_other_than_the_configs_default_rule_path_is_refused(tmp_path, sensor):
    source = generated(tmp_path / "gen1")
    with pytest.raises(DeployError, match="default-rule-path"):
        deploy(DeployOptions(suricata_source=source["suricata"], suricata_config=sensor["config"],
                             suricata_rules_dir=tmp_path / "elsewhere"))


def test_a_tor_list_only_change_becomes_dataset_commands_instead_of_a_reload(tmp_path):
    path = tmp_path / "sp-test-tor.lst"
    plan = Plan(suricata=[FileChange(path, b"185.220.101.1\n192.0.2.1\n", b"185.220.101.1\n198.51.100.7\n")],
                datasets={path: DatasetRef("sp-test-tor", "ip")})
    commands = dataset_commands(plan)
    assert [(c.command, c.value) for c in commands] == [("dataset-add", "198.51.100.7"),
                                                        ("dataset-remove", "192.0.2.1")]


def test_a_rule_change_needs_a_full_reload(tmp_path):
    lst, rules = tmp_path / "sp-test-tor.lst", tmp_path / "sensor-plugins.rules"
    plan = Plan(suricata=[FileChange(lst, b"1.1.1.1\n", b"1.1.1.2\n"), FileChange(rules, b"a\n", b"b\n")],
                datasets={lst: DatasetRef("sp-test-tor", "ip")})
    assert dataset_commands(plan) is None


def test_a_load_line_behind_a_comment_or_for_another_package_does_not_count():
    text = "# @load nk-sensor\n@load nk-sensor-extra\n"
    assert has_load_line(text, "nk-sensor") is False


def test_deploy_without_any_destination_is_an_error(tmp_path):
    with pytest.raises(DeployError, match="nothing to deploy to"):
        deploy(DeployOptions())


def test_a_feed_refresh_that_only_changes_rule_comments_still_goes_through_dataset_commands(tmp_path):
    lst, rules = tmp_path / "sp-test-tor.lst", tmp_path / "sensor-plugins.rules"
    rule = b"alert ip any any -> any any (sid:1;)\n"
    plan = Plan(suricata=[FileChange(lst, b"1.1.1.1\n", b"1.1.1.1\n1.1.1.2\n"),
                          FileChange(rules, b"# Tor feed: a, fetched 2024-02-27\n" + rule,
                                     b"# Tor feed: a, fetched 2024-03-12\n" + rule)],
                datasets={lst: DatasetRef("sp-test-tor", "ip")})
    assert [(c.command, c.value) for c in dataset_commands(plan)] == [("dataset-add", "1.1.1.2")]


@needs_suricata
def test_an_installed_file_edited_on_the_sensor_is_not_overwritten_and_nothing_changes(tmp_path, sensor):
    deploy(options(sensor, generated(tmp_path / "gen1")))
    installed = sensor["site"] / "nk-sensor" / "main.zeek"
    installed.write_text(installed.read_text() + "redef SPTest::answer = 43;\n")
    before = {**snapshot(sensor["site"]), **snapshot(sensor["rules"])}
    newer = generated(tmp_path / "gen2", rules=RULES.replace("rev:1;", "rev:2;"),
                      extra={"new.txt": "x\n"})
    (newer["zeek"] / "main.zeek").write_text(ZEEK_MAIN + "# regenerated\n")
    with pytest.raises(DeployError, match=f"{installed}: changed since sensor-plugins wrote it"):
        deploy(options(sensor, newer))
    assert {**snapshot(sensor["site"]), **snapshot(sensor["rules"])} == before


# -- a local.zeek kept elsewhere by configuration management -------------------------------

def test_a_symlinked_local_zeek_stays_a_link_and_the_file_it_points_to_gets_the_load(tmp_path, sensor):
    managed = write_tree(tmp_path / "cm", {"zeek/local.zeek": "@load misc/loaded-scripts\n"}) / "zeek/local.zeek"
    link = sensor["site"] / "local.zeek"
    link.unlink()
    link.symlink_to(managed)
    result = deploy(DeployOptions(zeek_source=generated(tmp_path / "gen1")["zeek"], zeek_site=sensor["site"],
                                  add_load=True))
    assert (link.is_symlink(), link.readlink(), has_load_line(managed.read_text(), "nk-sensor")) == (
        True, managed, True)
    assert managed.read_text().startswith("@load misc/loaded-scripts\n@load nk-sensor\n")
    assert any(f"the @load goes into {managed}" in note for note in result.plan.notes)
    # The second run finds the line through the link and writes nothing there again.
    again = deploy(DeployOptions(zeek_source=generated(tmp_path / "gen1")["zeek"], zeek_site=sensor["site"],
                                 add_load=True))
    assert (again.plan.changes, managed.read_text().count("@load nk-sensor")) == ([], 1)


@pytest.mark.parametrize("target", ["missing.zeek", "a-directory"])
def test_a_symlinked_local_zeek_pointing_at_no_file_is_refused_and_nothing_changes(tmp_path, sensor, target,
                                                                                   capsys):
    (tmp_path / "a-directory").mkdir()
    link = sensor["site"] / "local.zeek"
    link.unlink()
    link.symlink_to(tmp_path / target)
    before = snapshot(tmp_path)
    code = main(["deploy", "--zeek-out", str(generated(tmp_path / "gen1")["zeek"]), "--zeek-site",
                 str(sensor["site"]), "--add-load"])
    err = capsys.readouterr().err
    assert (code, len(err.splitlines()), "is a symbolic link to" in err, link.is_symlink()) == (2, 1, True, True)
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("gen1/")} == before
