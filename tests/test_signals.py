"""Stop signals and kill -9 at each write of every command that writes files.

Each case runs the real program as a subprocess with SENSOR_PLUGINS_TEST_PAUSE_AT_WRITE=N:FILE,
which makes it stop at its N-th file write with that file's temp copy full and not yet
renamed, and sends it a real signal with os.kill. Then, for SIGTERM, SIGINT and SIGHUP:

- the exit code is 128 + the signal's number and stderr is one line saying so;
- the world (outputs, their folders, the temp folder the run was given as TMPDIR) is
  byte-identical to before: every file written so far put back, and no temp file, stage
  directory or lock file left.

After kill -9 nothing can be put back, but the next run finds what the killed one left
(its temp files and stage directories, known by name, pid and lock) and removes exactly
those before it writes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, catalogue_yaml, is_warning
from registry_history import step_args
from test_hostile import tree_hashes

from sensor_plugins.atomic import PAUSE_ENV
from sensor_plugins.cli import main
from sensor_plugins.inputs.catalogue import default_catalogue_path

ZAT = REPO / "tests" / "analysis" / "fixtures" / "logs" / "zat"
needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary")
SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "HUP": signal.SIGHUP}
STOPPED = {"TERM": 143, "INT": 130, "HUP": 129}


def _default_signals() -> None:
    # A test run in the background would hand its children SIGINT ignored, and an ignored
    # signal stays ignored by design (nohup, background jobs); these children must see it.
    for sig in SIGNALS.values():
        signal.signal(sig, signal.SIG_DFL)


@dataclass
class Stopped:
    reached: bool  # the run got to the write asked for
    code: int
    out: str
    err: str


def start(world: Path, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sensor_plugins", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(world / "tmp"), **(env or {})},
        preexec_fn=_default_signals,
    )


def stop_at_write(world: Path, argv: list[str], write: int, sig: int) -> Stopped:
    """Run ``argv``, send ``sig`` when it pauses at its ``write``-th file write, wait for it to end."""
    marker = world.parent / f"paused-{write}"
    proc = start(world, argv, {PAUSE_ENV: f"{write}:{marker}"})
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    reached = marker.exists()
    if reached:
        os.kill(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return Stopped(reached, proc.returncode, out, err)


def stop_when(world: Path, argv: list[str], ready: Callable[[], bool], sig: int) -> Stopped:
    """Run ``argv`` and send ``sig`` as soon as ``ready()`` holds (polled every 5 ms)."""
    proc = start(world, argv)
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    reached = ready()
    if reached:
        os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=300)
    return Stopped(reached, proc.returncode, out, err)


def assert_rolled_back(world: Path, before: dict[str, str], result: Stopped, name: str, restored: bool = True) -> None:
    # Warnings the command printed before the signal may precede the one error line.
    lines = [line for line in result.err.strip().splitlines() if not is_warning(line)]
    assert result.reached, f"the run ended before the write: {result.err}"
    assert (result.code, len(lines)) == (STOPPED[name], 1), result.err
    assert f"stopped by SIG{name}" in lines[0] and "Traceback" not in result.err, result.err
    if restored:
        assert "every file was restored" in lines[0], result.err
    assert tree_hashes(world) == before


# -- the worlds: one command each, with its previous outputs in place ------------------------


def new_world(tmp_path: Path) -> Path:
    world = tmp_path / "world"
    (world / "tmp").mkdir(parents=True)
    return world


def generate_world(tmp_path: Path, validate: bool = False) -> tuple[Path, list[str]]:
    world = new_world(tmp_path)
    (world / "in").mkdir()
    old = world / "in" / "old.yaml"
    old.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-satgate", "77.94.35.0/24")))
    new = world / "in" / "new.yaml"
    new.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-extra", "210.52.109.0/24")))
    outs = ["--zeek-out", str(world / "out" / "zeek"), "--suricata-out", str(world / "out" / "suricata")]
    assert main(["generate", "--catalogue", str(old), *outs, "--no-validate"]) == 0
    return world, ["generate", "--catalogue", str(new), *outs, *([] if validate else ["--no-validate"])]


@needs_suricata
@pytest.mark.parametrize("name", list(SIGNALS))
def test_generate_stopped_during_suricata_validation_leaves_no_stage_and_no_suricata_temp_dir(tmp_path, name):
    world, argv = generate_world(tmp_path, validate=True)
    before = tree_hashes(world)

    def validating() -> bool:
        return any(p.name.startswith("sensor-plugins-suricata-T-") for p in (world / "tmp").iterdir())

    result = stop_when(world, argv, validating, SIGNALS[name])
    assert_rolled_back(world, before, result, name, restored=False)


# -- deploy ----------------------------------------------------------------------------------

RULES = ('alert ip $SP_TEST_NETS any -> any any (msg:"SP test range"; sid:1650001; rev:{rev};)\n'
         'alert ip any any -> any any (msg:"SP test tor"; ip.dst; '
         "dataset:isset,sp-test-tor,type ip,load sp-test-tor.lst; sid:1650002; rev:1;)\n")


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def generated(root: Path, version: int) -> list[str]:
    suricata = write_files(root / "suricata", {
        "sensor-plugins.rules": RULES.format(rev=version), "sp-test-tor.lst": f"185.220.101.{version}\n",
        "sensor-plugins-vars.yaml": f'%YAML 1.1\n---\nSP_TEST_NETS: "[175.45.{176 + version}.0/24]"\n'})
    zeek = write_files(root / "zeek", {
        "__load__.zeek": "@load ./main\n",
        "main.zeek": f"module SPTest;\n\nexport {{\n\tconst answer = {version} &redef;\n}}\n",
        "nk-ranges.tsv": f"#fields\tcidr\n175.45.{176 + version}.0/24\n"})
    return ["--zeek-out", str(zeek), "--suricata-out", str(suricata)]


def deploy_world(tmp_path: Path) -> tuple[Path, list[str]]:
    world = new_world(tmp_path)
    rules = write_files(world / "sensor" / "rules", {"local.rules": 'alert icmp any any -> any any '
                                                    '(msg:"site rule"; sid:9000001; rev:1;)\n'})
    config = world / "sensor" / "suricata.yaml"
    config.write_text(f"%YAML 1.1\n---\ndefault-rule-path: {rules}\nrule-files:\n  - local.rules\n"
                      f"  - sensor-plugins.rules\nvars:\n  address-groups:\n    HOME_NET: any\n"
                      f"    include: {rules}/sensor-plugins-vars.yaml\n", encoding="utf-8")
    site = write_files(world / "sensor" / "site", {"local.zeek": "@load misc/loaded-scripts\n"})
    target = ["--zeek-site", str(site), "--suricata-config", str(config)]
    assert main(["deploy", *generated(tmp_path / "gen1", 1), *target]) == 0
    return world, ["deploy", *generated(tmp_path / "gen2", 2), *target, "--add-load"]


# The writes of each update above, in order. generate: 1-2 the manifest of zeek/ widened
# with both digests of every file, then of suricata/, 3-5 zeek's changed files, 6 its final
# manifest, 7-10 suricata's, 11 its manifest. deploy: 1-2 the manifests widened, 3-4 the
# package's changed files, 5 its manifest, 6 local.zeek (the @load), 7-9 the rules, 10 the
# rules directory's manifest.
WRITES = {"generate": (generate_world, 11), "deploy": (deploy_world, 10)}
MULTI = [pytest.param(command, write, marks=[needs_suricata] if command == "deploy" else [])
         for command, (_, count) in WRITES.items() for write in range(1, count + 1)]


@pytest.mark.parametrize(("command", "write"), MULTI)
@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_multi_file_update_stopped_at_any_write_puts_every_file_back(tmp_path, command, write, name):
    world, argv = WRITES[command][0](tmp_path)
    before = tree_hashes(world)
    assert_rolled_back(world, before, stop_at_write(world, argv, write, SIGNALS[name]), name)


@pytest.mark.parametrize("command", [pytest.param("generate"), pytest.param("deploy", marks=needs_suricata)])
def test_the_updates_make_exactly_the_writes_counted_above(tmp_path, command):
    make, count = WRITES[command]
    world, argv = make(tmp_path)
    result = stop_at_write(world, argv, count + 1, signal.SIGTERM)
    assert (result.reached, result.code) == (False, 0), result.err


# -- single-file outputs: catalogue update --write, analyze --out, report --html ------------


def catalogue_world(tmp_path: Path) -> tuple[Path, list[str]]:
    world = new_world(tmp_path)
    catalogue = world / "etc" / "catalogue.yaml"
    catalogue.parent.mkdir()
    shutil.copy(default_catalogue_path(), catalogue)
    sources = tmp_path / "sources"
    sources.mkdir()
    # Last month's update in place (with its lock file, which stays by design), this month's to run.
    update = ["catalogue", "update", "--catalogue", str(catalogue)]
    assert main([*update, *step_args("20260901", sources), "--write"]) == 0
    return world, [*update, *step_args("20261001", sources), "--write"]


def analyze_world(tmp_path: Path) -> tuple[Path, list[str]]:
    world = new_world(tmp_path)
    out = world / "out" / "findings.jsonl"
    assert main(["analyze", str(ZAT / "ssl.log"), "--scope", "all", "--format", "jsonl", "--out", str(out)]) in (0, 1)
    return world, ["analyze", str(ZAT / "conn.log"), str(ZAT / "ssl.log"), "--scope", "all", "--format", "jsonl",
                   "--out", str(out)]


def report_world(tmp_path: Path) -> tuple[Path, list[str]]:
    world = new_world(tmp_path)
    html = world / "out" / "report.html"
    assert main(["report", str(ZAT / "conn.log"), "--html", str(html)]) == 0
    return world, ["report", str(ZAT / "conn.log"), str(ZAT / "ssl.log"), "--html", str(html)]


SINGLE = {"catalogue-update": catalogue_world, "analyze": analyze_world, "report": report_world}


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize("command", list(SINGLE))
def test_a_single_file_output_stopped_mid_write_keeps_the_old_file_and_no_temp_file(tmp_path, command, name):
    world, argv = SINGLE[command](tmp_path)
    before = tree_hashes(world)
    assert_rolled_back(world, before, stop_at_write(world, argv, 1, SIGNALS[name]), name, restored=False)


# -- kill -9: nothing is put back, and the next run clears what it left ----------------------


def leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.endswith(".tmp") or ".sensor-plugins-stage-" in p.name or p.name.endswith(".lock"))


def test_after_kill_9_mid_generate_the_next_run_removes_its_temp_files_and_nothing_else(tmp_path):
    world, argv = generate_world(tmp_path)
    killed = stop_at_write(world, argv, 4, signal.SIGKILL)
    assert (killed.reached, killed.code) == (True, -signal.SIGKILL)
    left = leftovers(world)
    assert [p for p in left if p.endswith(".tmp")], left  # the temp file of the fourth write
    # Names like ours that are not ours to remove: a file the manifest does not name, a
    # live process's temp file, a link, and a plain .tmp of the site's.
    zeek = world / "out" / "zeek"
    keep = [zeek / ".notes.txt.1.abcdefgh.tmp", zeek / f".main.zeek.{os.getpid()}.abcdefgh.tmp",
            zeek / ".main.zeek.tmp"]
    for path in keep:
        path.write_text("site's\n")
    (zeek / ".nk-ranges.tsv.1.abcdefgh.tmp").symlink_to(zeek / ".main.zeek.tmp")
    assert main(argv) == 0
    assert leftovers(world) == sorted(p.relative_to(world).as_posix()
                                      for p in [*keep, zeek / ".nk-ranges.tsv.1.abcdefgh.tmp"])
    assert main([*argv[:-1], "--check"]) == 0


@needs_suricata
def test_after_kill_9_mid_validation_the_next_run_removes_the_stage_directory(tmp_path):
    world, argv = generate_world(tmp_path, validate=True)
    out = world / "out"

    def staged() -> bool:
        return any(p.name.startswith("sensor-plugins-suricata-T-") for p in (world / "tmp").iterdir())

    killed = stop_when(world, argv, staged, signal.SIGKILL)
    assert killed.reached
    assert [p.name for p in out.iterdir() if p.name.startswith(".sensor-plugins-stage-")]
    proc = start(world, argv)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [p.name for p in out.iterdir() if p.name.startswith(".sensor-plugins-stage-")] == []
    assert [p.name for p in (world / "tmp").iterdir()] == []


@pytest.mark.parametrize("command", list(SINGLE))
def test_after_kill_9_mid_write_the_next_run_removes_the_temp_file(tmp_path, command):
    world, argv = SINGLE[command](tmp_path)
    before = tree_hashes(world)
    killed = stop_at_write(world, argv, 1, signal.SIGKILL)
    assert (killed.reached, [p for p in leftovers(world) if p.endswith(".tmp")] != []) == (True, True)
    # The old output is still whole: the rename never happened.
    assert {k: v for k, v in tree_hashes(world).items() if not k.endswith(".tmp")} == before
    proc = start(world, argv)
    _, err = proc.communicate(timeout=300)
    assert (proc.returncode in (0, 1), [p for p in leftovers(world) if p.endswith(".tmp")]) == (True, []), err


@needs_suricata
@pytest.mark.parametrize("name", list(SIGNALS))
def test_deploy_stopped_during_its_suricata_check_leaves_the_sensor_and_the_temp_folder_as_they_were(tmp_path, name):
    world, argv = deploy_world(tmp_path)
    before = tree_hashes(world)

    def checking() -> bool:
        return any(p.name.startswith("sensor-plugins-deploy-") for p in (world / "tmp").iterdir())

    assert_rolled_back(world, before, stop_when(world, argv, checking, SIGNALS[name]), name, restored=False)


@pytest.mark.parametrize("name", list(SIGNALS))
def test_follow_ends_after_the_batch_under_way_on_any_stop_signal(tmp_path, name):
    # --follow is a service: a stop signal ends it as a normal run, with its output and
    # checkpoint whole and in step, and nothing else left in the output folder.
    world = new_world(tmp_path)
    live = world / "live"
    live.mkdir()
    shutil.copy(ZAT / "ssl.log", live / "ssl.log")
    out, checkpoint = world / "out" / "follow.jsonl", world / "out" / "cp.json"
    argv = ["analyze", "--follow", str(live), "--scope", "all", "--poll", "0.2", "--out", str(out),
            "--checkpoint", str(checkpoint)]
    result = stop_when(world, argv, checkpoint.exists, SIGNALS[name])
    assert (result.reached, result.code in (0, 1), result.err) == (True, True, "")
    assert sorted(p.name for p in (world / "out").iterdir()) == ["cp.json", "follow.jsonl"]
    assert json.loads(checkpoint.read_text())["out_size"] == out.stat().st_size
