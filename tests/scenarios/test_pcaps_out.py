"""`pcaps --out DIR` writes into an output directory the way generate does: all or nothing,
under a lock, and never over a file that sensor-plugins did not write there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from sensor_plugins.atomic import MANIFEST
from sensor_plugins.scenarios import pcaps

ONE, TWO = "sslv3-kp-star-jv-out", "http-kp-satgate-in"


def run_pcaps(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensor_plugins", "pcaps", *argv], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_file_of_the_sites_named_like_a_pcap_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "pcaps"
    out.mkdir()
    (out / f"{TWO}.pcap").write_bytes(b"the site's own capture")
    done = run_pcaps("--out", str(out), "--scenario", ONE, "--scenario", TWO)
    assert (done.returncode, len(done.stderr.splitlines())) == (2, 1), done.stderr
    assert "was not written by sensor-plugins" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{TWO}.pcap"]
    assert (out / f"{TWO}.pcap").read_bytes() == b"the site's own capture"


def test_a_run_for_one_scenario_keeps_the_pcaps_an_earlier_run_wrote(tmp_path: Path) -> None:
    out = tmp_path / "pcaps"
    pcaps.write_pcaps(out, [ONE, TWO])
    first = (out / f"{ONE}.pcap").read_bytes()
    assert pcaps.write_pcaps(out, [TWO]) == [out / f"{TWO}.pcap"]
    assert (out / f"{ONE}.pcap").read_bytes() == first
    listed = (out / MANIFEST).read_text()
    assert f"  {ONE}.pcap" in listed and f"  {TWO}.pcap" in listed


def test_a_pcap_of_ours_edited_since_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "pcaps"
    pcaps.write_pcaps(out, [ONE])
    (out / f"{ONE}.pcap").write_bytes(b"edited")
    done = run_pcaps("--out", str(out), "--scenario", ONE)
    assert (done.returncode, len(done.stderr.splitlines())) == (2, 1), done.stderr
    assert "changed since sensor-plugins wrote it" in done.stderr
    assert (out / f"{ONE}.pcap").read_bytes() == b"edited"


def test_the_cli_writes_the_trust_anchor_script_in_the_same_set(tmp_path: Path) -> None:
    out = tmp_path / "pcaps"
    done = run_pcaps("--out", str(out), "--scenario", ONE)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, f"{ONE}.pcap", pcaps.TRUST_CA_ZEEK])
