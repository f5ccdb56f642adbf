"""The rules as a suricata-update source: Debian's suricata-update takes the archive offline.

suricata-update runs in a network namespace of its own, which has no route anywhere, so
the test proves it needs nothing but the local file:// source.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tap_harness import ensure_debian_tool

from sensor_plugins.generate.command import generate
from sensor_plugins.generate.suricata import MAIN_RULES, VARS_FILE
from sensor_plugins.runners.suricata import render_config
from sensor_plugins.sensors.update_source import archive_members, write_update_source

pytestmark = [
    pytest.mark.suricata,
    pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary"),
]


def sids(rules: Path) -> set[int]:
    return {int(s) for s in re.findall(r"\bsid:\s*(\d+);", rules.read_text(encoding="utf-8"))}


def offline(cmd: list[str]) -> list[str]:
    # A fresh network namespace has only a down loopback: nothing can be fetched from outside.
    return ["unshare", "--net", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    generate(None, None, out / "zeek", out / "suricata")
    return out / "suricata"


def test_suricata_update_installs_every_rule_from_the_file_source_offline(generated, tmp_path):
    ensure_debian_tool("suricata-update", "suricata-update")
    archive = tmp_path / "nksensor-rules.tar.gz"
    write_update_source(generated, archive)
    data, out, no_dist = tmp_path / "data", tmp_path / "rules", tmp_path / "no-dist-rules"
    out.mkdir()
    no_dist.mkdir()
    # The vars file reaches a sensor through deploy or config management, not suricata-update.
    shutil.copy(generated / VARS_FILE, out / VARS_FILE)
    config = tmp_path / "suricata.yaml"
    config.write_text(render_config(out, tmp_path, rule_files=["suricata.rules"]), encoding="utf-8")
    # Suricata's own bundled rules need protocols the minimal config leaves off.
    update_yaml = tmp_path / "update.yaml"
    update_yaml.write_text(f"dist-rule-directory: {no_dist}\n", encoding="utf-8")
    common = ["--data-dir", str(data), "-c", str(update_yaml)]
    subprocess.run(offline(["suricata-update", "add-source", "nksensor", f"file://{archive}", *common]),
                   check=True, capture_output=True)
    filters = [arg for kind in ("disable", "enable", "modify", "drop") for arg in (f"--{kind}-conf", "/dev/null")]
    update = subprocess.run(
        offline(["suricata-update", *common, "--output", str(out), "--suricata-conf", str(config),
                 "--no-reload", "--fail", *filters]),
        capture_output=True, text=True,
    )
    assert (update.returncode, sids(out / "suricata.rules")) == (0, sids(generated / MAIN_RULES)), update.stderr


def test_the_archive_is_byte_identical_for_the_same_rules_whatever_the_files_dates(generated, tmp_path):
    source = shutil.copytree(generated, tmp_path / "copy")
    write_update_source(source, tmp_path / "first.tar.gz")
    for path in source.iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))
    write_update_source(source, tmp_path / "second.tar.gz")
    assert (tmp_path / "first.tar.gz").read_bytes() == (tmp_path / "second.tar.gz").read_bytes()


def test_the_archive_carries_the_datasets_the_rules_load(generated):
    names = set(archive_members(generated, [MAIN_RULES]))
    assert names == {f"rules/{MAIN_RULES}", "rules/nksensor-tor-exit.lst", "rules/nksensor-tor-relay.lst"}
