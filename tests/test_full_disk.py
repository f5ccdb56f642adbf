"""Every output path on a real full disk (a small tmpfs): one error line, exit 2, the old content intact.

Each case puts a command's previous output on a tmpfs, fills the tmpfs (to the last byte,
or to a few KiB, so that some writes succeed before one fails), runs the command as the
real program and checks that it said so in one line with exit 2 and that nothing on the
disk changed: no partial file, no temp file, every file that was already written put
back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, catalogue_yaml, is_warning
from full_disk import fill, needs_root, small_tmpfs
from registry_history import step_args
from test_hostile import tree_hashes

from sensor_plugins.cli import main
from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import SuricataRenderer
from sensor_plugins.inputs.catalogue import default_catalogue_path, load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.scenarios import pcaps

pytestmark = needs_root
ZAT = REPO / "tests" / "analysis" / "fixtures" / "logs" / "zat"
needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary")


def tree(root: Path) -> dict[str, str]:
    return {rel: digest for rel, digest in tree_hashes(root).items() if rel != ".filler"}


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensor_plugins", *argv], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})


def assert_refused_and_untouched(disk: Path, argv: list[str], leave: int, said: str = "No space left on device",
                                 ) -> subprocess.CompletedProcess[str]:
    fill(disk, leave)
    before = tree(disk)
    proc = run(argv)
    errors = [line for line in proc.stderr.splitlines() if not is_warning(line)]
    assert (proc.returncode, len(errors)) == (2, 1), proc.stderr
    assert said in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert tree(disk) == before
    return proc


LEAVE = {"full": 0, "8KiB": 8 * 1024}


@pytest.fixture
def disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk") as mounted:
        yield mounted


def generate_args(disk: Path, tmp_path: Path) -> list[str]:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-satgate", "77.94.35.0/24")))
    new.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-extra", "210.52.109.0/24")))
    outs = ["--zeek-out", str(disk / "zeek"), "--suricata-out", str(disk / "suricata")]
    assert main(["generate", "--catalogue", str(old), *outs, "--no-validate"]) == 0
    return ["generate", "--catalogue", str(new), *outs]


@pytest.mark.parametrize("leave", list(LEAVE))
def test_generate_on_a_full_disk_puts_back_every_file_it_wrote(disk, tmp_path, leave):
    argv = [*generate_args(disk, tmp_path), "--no-validate"]
    proc = assert_refused_and_untouched(disk, argv, LEAVE[leave])
    assert "every file was restored" in proc.stderr


def test_generate_cannot_stage_on_a_full_disk_and_replaces_nothing(disk, tmp_path):
    proc = assert_refused_and_untouched(disk, generate_args(disk, tmp_path), 0)
    assert "cannot stage the output there" in proc.stderr


def sensor_on(disk: Path, tmp_path: Path) -> list[str]:
    """A sensor on ``disk`` with a first deploy in place; the arguments of a second one."""
    rules, site = disk / "rules", disk / "site"
    rules.mkdir()
    site.mkdir()
    (site / "local.zeek").write_text("@load misc/loaded-scripts\n")
    (rules / "local.rules").write_text('alert icmp any any -> any any (msg:"site rule"; sid:9000001; rev:1;)\n')
    config = disk / "suricata.yaml"
    config.write_text(f"%YAML 1.1\n---\ndefault-rule-path: {rules}\nrule-files:\n  - local.rules\n"
                      "  - nksensor.rules\n", encoding="utf-8")
    first = generate_args(tmp_path / "gen", tmp_path)
    second = [*first[:-4], "--zeek-out", str(tmp_path / "gen2/zeek"), "--suricata-out", str(tmp_path / "gen2/suricata")]
    assert main([*second, "--no-validate"]) == 0
    target = ["--zeek-site", str(site), "--suricata-config", str(config)]
    assert main(["deploy", "--zeek-out", str(tmp_path / "gen/zeek"), "--suricata-out", str(tmp_path / "gen/suricata"),
                 *target]) == 0
    return ["deploy", "--zeek-out", str(tmp_path / "gen2/zeek"), "--suricata-out", str(tmp_path / "gen2/suricata"),
            *target, "--add-load"]


@needs_suricata
@pytest.mark.parametrize("leave", list(LEAVE))
def test_deploy_on_a_full_sensor_disk_puts_back_every_file_it_wrote(disk, tmp_path, leave):
    proc = assert_refused_and_untouched(disk, sensor_on(disk, tmp_path), LEAVE[leave])
    assert "every file was restored" in proc.stderr


def analyze_args(disk: Path) -> list[str]:
    out = disk / "out" / "findings.jsonl"
    assert main(["analyze", str(ZAT / "ssl.log"), "--scope", "all", "--format", "jsonl", "--out", str(out)]) in (0, 1)
    return ["analyze", str(ZAT / "conn.log"), str(ZAT / "ssl.log"), "--scope", "all", "--format", "jsonl",
            "--out", str(out)]


def report_args(disk: Path) -> list[str]:
    html = disk / "out" / "report.html"
    assert main(["report", str(ZAT / "conn.log"), "--html", str(html)]) == 0
    return ["report", str(ZAT / "conn.log"), str(ZAT / "ssl.log"), "--html", str(html)]


def follow_args(disk: Path, tmp_path: Path) -> list[str]:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(ZAT / "ssl.log", live / "ssl.log")
    argv = ["analyze", "--follow", str(live), "--once", "--scope", "all", "--out", str(disk / "out" / "follow.jsonl"),
            "--checkpoint", str(disk / "out" / "cp.json")]
    assert main(argv) in (0, 1)
    shutil.copy(ZAT / "conn.log", live / "conn.log")
    return argv


def catalogue_args(disk: Path, tmp_path: Path) -> list[str]:
    catalogue = disk / "catalogue.yaml"
    shutil.copy(default_catalogue_path(), catalogue)
    update = ["catalogue", "update", "--catalogue", str(catalogue)]
    assert main([*update, *step_args("20260901", tmp_path), "--write"]) == 0
    return [*update, *step_args("20261001", tmp_path), "--write"]


def feeds_args(disk: Path, tmp_path: Path) -> list[str]:
    feed = tmp_path / "exits.lst"
    feed.write_text("# role: exit\n# fetched: 2024-02-27\n185.220.101.1\n")
    argv = ["feeds", "update", "--url", feed.as_uri(), "--out", str(disk / "tor" / "exits.lst")]
    assert main(argv) == 0
    feed.write_text("# role: exit\n# fetched: 2024-02-28\n185.220.101.1\n185.220.101.2\n")
    return argv


def update_source_args(disk: Path, tmp_path: Path) -> list[str]:
    # The archive of the old rules on the disk; the new rules to archive beside.
    regenerate = generate_args(tmp_path / "gen", tmp_path)
    archive = ["update-source", "--suricata-out", str(tmp_path / "gen" / "suricata"), "--no-validate",
               "--out", str(disk / "dist" / "nksensor-rules.tar.gz")]
    assert main(archive) == 0
    assert main([*regenerate, "--no-validate"]) == 0
    return archive


SINGLE: dict[str, Callable[[Path, Path], list[str]]] = {
    "feeds update --out": feeds_args,
    "update-source --out": update_source_args,
    "analyze --out": lambda disk, _tmp: analyze_args(disk),
    "report --html": lambda disk, _tmp: report_args(disk),
    "analyze --follow --out --checkpoint": follow_args,
    "catalogue update --write": catalogue_args,
}


@pytest.mark.parametrize("command", list(SINGLE))
def test_a_single_file_output_on_a_full_disk_keeps_the_old_file(disk, tmp_path, command):
    assert_refused_and_untouched(disk, SINGLE[command](disk, tmp_path), 0)


# -- replay: a full disk must not read as "nothing reported" ---------------------------------


@pytest.fixture(scope="module")
def replay_inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("replay-inputs")
    rules = root / "rules"
    rules.mkdir()
    for name, text in SuricataRenderer().render(SensorContent(load_catalogue(), load_tor_list()), None).files.items():
        (rules / name).write_text(text, encoding="utf-8")
    pcaps.write_pcaps(root, ["sslv3-kp-star-jv-out"])
    return root


@needs_suricata
@pytest.mark.parametrize("leave", ["full", "4KiB", "64KiB"])
def test_replay_into_a_full_log_dir_fails_instead_of_reporting_nothing(disk, replay_inputs, leave):
    fill(disk, {"full": 0, "4KiB": 4096, "64KiB": 65536}[leave])
    proc = run(["replay", "--engine", "suricata", "--rules", str(replay_inputs / "rules"), "--log-dir",
                str(disk / "logs"), str(replay_inputs / "sslv3-kp-star-jv-out.pcap")])
    row = proc.stdout.splitlines()[1]
    assert (proc.returncode, proc.stderr.count("\n"), "(nothing reported)" in proc.stdout) == (2, 1, False), proc
    assert "No space left on device" in row or "bytes left free after suricata -r" in row, row


@needs_suricata
def test_replay_with_room_to_spare_still_reports_the_alerts(tmp_path, replay_inputs):
    with small_tmpfs(tmp_path / "roomy", size="64m") as roomy:
        proc = run(["replay", "--engine", "suricata", "--rules", str(replay_inputs / "rules"), "--log-dir",
                    str(roomy / "logs"), str(replay_inputs / "sslv3-kp-star-jv-out.pcap")])
    assert (proc.returncode, "NKSENSOR TLS SSLv3 session" in proc.stdout) == (0, True), proc.stderr


@pytest.mark.parametrize("leave", ["full", "64KiB"])
def test_pcaps_on_a_full_disk_puts_back_every_pcap_it_wrote(disk, leave):
    # A first run of two scenarios; the second writes them all, and meets the full disk
    # after some (64 KiB free) or at once.
    assert main(["pcaps", "--out", str(disk / "pcaps"), "--scenario", "sslv3-kp-star-jv-out",
                 "--scenario", "http-kp-satgate-in"]) == 0
    proc = assert_refused_and_untouched(disk, ["pcaps", "--out", str(disk / "pcaps")],
                                        {"full": 0, "64KiB": 64 * 1024}[leave])
    assert "every file was restored" in proc.stderr
