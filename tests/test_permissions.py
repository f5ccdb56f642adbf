"""Real permission errors, not simulated ones: the commands run as the unprivileged user
``nobody`` (through ``setpriv``) against files and folders that root owns, and each must
end in one line naming the path, exit 2, with nothing half-written or changed.

The other suites run as root in CI, where no permission is ever denied, so they can only
monkeypatch an OSError; these cases let the kernel refuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import catalogue_yaml

from sensor_plugins.cli import main

NOBODY = 65534
SENSOR_PLUGINS = Path(sys.executable).with_name("sensor-plugins")
FIX_CONN = Path(__file__).parent / "analysis" / "fixtures" / "logs" / "zat" / "conn.log"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root, to run the commands as nobody with setpriv",
)


@pytest.fixture(scope="module", autouse=True)
def nobody_can_run_the_command() -> None:
    # A checkout under a folder only root may enter (/root, say) keeps nobody from the venv.
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            str(SENSOR_PLUGINS), "--version"], cwd="/", capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {SENSOR_PLUGINS} from this checkout: {probe.stderr.strip()[:120]}")


@pytest.fixture
def world() -> Iterator[Path]:
    # pytest's own tmp_path lies under a root-only (0700) folder that nobody cannot enter.
    root = Path(tempfile.mkdtemp(prefix="sp-permissions-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(SENSOR_PLUGINS), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"], "HOME": str(cwd)},
    )


def give_to_nobody(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, NOBODY, NOBODY)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert (done.returncode, len(done.stderr.splitlines()), "Traceback" in done.stderr) == (2, 1, False), \
        done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def test_a_log_nobody_may_read_is_an_error_naming_it(world: Path) -> None:
    log = world / "conn.log"
    shutil.copyfile(FIX_CONN, log)
    log.chmod(0o600)
    one_line_error(as_nobody("analyze", str(log), cwd=world), str(log), "Permission denied")


def test_a_log_folder_with_a_subfolder_nobody_may_list_is_an_error_not_a_skip(world: Path) -> None:
    logs = world / "logs"
    (logs / "day-2").mkdir(parents=True)
    shutil.copyfile(FIX_CONN, logs / "conn.log")
    shutil.copyfile(FIX_CONN, logs / "day-2" / "conn.log")
    (logs / "day-2").chmod(0o700)
    one_line_error(as_nobody("analyze", str(logs), cwd=world), str(logs / "day-2"), "Permission denied")


def test_an_out_in_a_folder_nobody_may_write_is_an_error_and_nothing_is_left(world: Path) -> None:
    shutil.copyfile(FIX_CONN, world / "conn.log")
    (world / "conn.log").chmod(0o644)
    (world / "reports").mkdir()
    out = world / "reports" / "findings.jsonl"
    one_line_error(as_nobody("analyze", str(world / "conn.log"), "--out", str(out), cwd=world),
                   "Permission denied")
    assert list((world / "reports").iterdir()) == []


def test_a_report_into_a_folder_nobody_may_write_is_an_error(world: Path) -> None:
    logs = world / "logs"
    logs.mkdir()
    shutil.copyfile(FIX_CONN, logs / "conn.log")
    (world / "site").mkdir()
    html = world / "site" / "report.html"
    one_line_error(as_nobody("report", str(logs), "--html", str(html), cwd=world), "Permission denied")
    assert list((world / "site").iterdir()) == []


def test_generate_that_may_write_the_zeek_side_but_not_the_rules_changes_neither(world: Path) -> None:
    # Both sides written by root first; then the Zeek package is handed to nobody, while
    # the rules folder stays root's. nobody's run writes the Zeek side, is refused on the
    # rules, and must put the Zeek side back as it was: all or nothing, with a real EACCES.
    out = world / "out"
    zeek, suricata = out / "zeek", out / "suricata"
    assert main(["generate", "--no-validate", "--zeek-out", str(zeek), "--suricata-out", str(suricata)]) == 0
    give_to_nobody(out)  # the folder, the lock files beside the outputs, the Zeek package
    for p in [suricata, *suricata.rglob("*")]:
        os.chown(p, 0, 0)
    catalogue = world / "catalogue.yaml"
    catalogue.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22")))
    before = snapshot(out)
    done = as_nobody("generate", "--no-validate", "--catalogue", str(catalogue), "--zeek-out", str(zeek),
                     "--suricata-out", str(suricata), cwd=world)
    one_line_error(done, str(suricata), "Permission denied", "every file was restored")
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".sensor-plugins-stage-")) == []


def test_follow_with_a_checkpoint_nobody_may_write_is_an_error_before_any_finding(world: Path) -> None:
    live = world / "live"
    live.mkdir()
    shutil.copyfile(FIX_CONN, live / "conn.log")
    (world / "state").mkdir()
    out = world / "findings.jsonl"
    out.touch()
    os.chown(out, NOBODY, NOBODY)
    done = as_nobody("analyze", "--follow", str(live), "--once", "--checkpoint", str(world / "state" / "cp.json"),
                     "--out", str(out), cwd=world)
    one_line_error(done, "Permission denied")
    assert (out.read_bytes(), list((world / "state").iterdir())) == (b"", [])
