"""`sensor-plugins replay` from the command line: the table, the JSON lines and its errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import SuricataRenderer
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.scenarios import pcaps

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("replay-cli")
    rules = root / "rules"
    rules.mkdir()
    rendered = SuricataRenderer().render(SensorContent(load_catalogue(), load_tor_list()), None)
    for name, text in rendered.files.items():
        (rules / name).write_text(text, encoding="utf-8")
    pcaps.write_pcaps(root, ["sslv3-kp-star-jv-out", "http-ipv6-outside"])
    return root


def sensor_plugins(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensor_plugins", *args], capture_output=True, text=True,
                          check=False, env=env, timeout=300)


@needs_suricata
def test_json_lines_carry_exactly_pcap_sid_rev_msg_src_dst(workdir):
    proc = sensor_plugins("replay", "--json", "--rules", str(workdir / "rules"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"))
    keys = {tuple(sorted(json.loads(line))) for line in proc.stdout.splitlines()}
    assert (proc.returncode, keys) == (0, {("dst", "msg", "pcap", "rev", "sid", "src")})


@needs_suricata
def test_the_table_lists_each_alert_and_marks_a_quiet_pcap(workdir):
    proc = sensor_plugins("replay", "--rules", str(workdir / "rules"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"), str(workdir / "http-ipv6-outside.pcap"))
    lines = proc.stdout.splitlines()
    assert (lines[0].split()[:4], "NKSENSOR TLS SSLv3 session with NK_NETS" in proc.stdout,
            lines[-1].startswith("http-ipv6-outside.pcap") and lines[-1].endswith("(no alerts)")) == (
        ["PCAP", "SID", "REV", "COUNT"], True, True)


def test_without_suricata_the_command_fails_in_one_line_naming_the_install_script(workdir, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("SURICATA", None)
    proc = sensor_plugins("replay", "--rules", str(workdir / "rules"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"), env=env)
    named = "scripts/install-suricata.sh" in proc.stderr
    assert (proc.returncode, proc.stderr.count("\n"), named) == (2, 1, True)


def test_a_missing_rules_directory_is_one_line_and_exit_2(workdir):
    proc = sensor_plugins("replay", "--rules", str(workdir / "absent"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"))
    named = "sensor-plugins generate" in proc.stderr
    assert (proc.returncode, proc.stderr.count("\n"), named) == (2, 1, True)
