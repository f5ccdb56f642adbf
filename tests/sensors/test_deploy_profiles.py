"""deploy and update-source carry the rules profile that `generate --profile` wrote.

A sensor moved to the ranges profile loses our Tor datasets and optional rules file (they
were ours, by the manifest) and keeps its own rules; `--profile` refuses a source of the
other profile before anything changes, so a plain `generate` into the same directory
cannot slip the full ruleset onto a sensor that must stay near no-rule cost.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from sensor_plugins.atomic import MANIFEST
from sensor_plugins.cli import main
from sensor_plugins.generate.command import generate
from sensor_plugins.generate.suricata import BITTORRENT_ALL_RULES, MAIN_RULES, VARS_FILE
from sensor_plugins.sensors.deploy import DeployError, DeployOptions, deploy
from sensor_plugins.sensors.update_source import write_update_source

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary")


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("profiles")
    for profile in ("full", "ranges"):
        generate(None, None, root / profile / "zeek", root / profile / "suricata", profile=profile, validate=False)
    return {profile: root / profile / "suricata" for profile in ("full", "ranges")}


@pytest.fixture
def sensor(tmp_path: Path) -> dict[str, Path]:
    rules = tmp_path / "sensor" / "rules"
    rules.mkdir(parents=True)
    (rules / "local.rules").write_text('alert icmp any any -> any any (msg:"site rule"; sid:9000001; rev:1;)\n')
    config = tmp_path / "sensor" / "suricata.yaml"
    config.write_text(
        "%YAML 1.1\n---\n"
        f"default-rule-path: {rules}\n"
        f"rule-files:\n  - local.rules\n  - {MAIN_RULES}\n"
        "vars:\n  address-groups:\n    HOME_NET: any\n"
        f"    include: {rules}/{VARS_FILE}\n",
        encoding="utf-8",
    )
    return {"rules": rules, "config": config}


def options(sensor: dict[str, Path], source: Path, **kw) -> DeployOptions:
    return DeployOptions(suricata_source=source, suricata_config=sensor["config"], **kw)


@needs_suricata
@pytest.mark.suricata
def test_moving_a_sensor_to_the_ranges_profile_removes_our_other_files_and_keeps_the_sites(sources, sensor):
    deploy(options(sensor, sources["full"]))
    result = deploy(options(sensor, sources["ranges"], profile="ranges"))
    installed = snapshot(sensor["rules"])
    assert result.plan.profile == "ranges"
    assert set(installed) == {"local.rules", MANIFEST, *snapshot(sources["ranges"])}
    assert installed[MAIN_RULES] == (sources["ranges"] / MAIN_RULES).read_bytes()


@needs_suricata
@pytest.mark.suricata
def test_a_source_of_the_other_profile_is_refused_before_anything_changes(sources, sensor):
    deploy(options(sensor, sources["ranges"]))
    before = snapshot(sensor["rules"].parent)
    with pytest.raises(DeployError, match=r"holds the full rules profile, not ranges; run `sensor-plugins "
                                          r"generate --profile ranges"):
        deploy(options(sensor, sources["full"], profile="ranges"))
    assert snapshot(sensor["rules"].parent) == before


def test_a_deploy_asked_for_another_profile_is_one_line_and_exit_2(sources, sensor, capsys):
    code = main(["deploy", "--suricata-out", str(sources["ranges"]), "--suricata-config", str(sensor["config"]),
                 "--profile", "full", "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert (code, len(err.splitlines()), "holds the ranges rules profile, not full" in err) == (2, 1, True)


def test_the_update_source_archive_of_the_ranges_profile_holds_its_one_rules_file(sources, tmp_path):
    archive = tmp_path / "ranges.tar.gz"
    names = write_update_source(sources["ranges"], archive, validate=False, profile="ranges")
    with tarfile.open(archive) as tar:
        assert (names, tar.getnames()) == ([f"rules/{MAIN_RULES}"], [f"rules/{MAIN_RULES}"])
    with pytest.raises(DeployError, match="holds the ranges rules profile, not full"):
        write_update_source(sources["ranges"], tmp_path / "other.tar.gz", validate=False, profile="full")
    assert not (tmp_path / "other.tar.gz").exists()
    assert BITTORRENT_ALL_RULES not in {p.name for p in sources["ranges"].iterdir()}
