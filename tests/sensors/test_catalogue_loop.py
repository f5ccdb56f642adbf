"""The closed loop on a virtual tap: registry data changes, the refresh chain runs, live Suricata fires.

The chain is the one docs/DEPLOY.md schedules, run as the installed command would run
it: `catalogue update --write`, then `generate`, then `deploy`, joined with `&&` so a
failing step stops the chain. A new KP allocation appears in the APNIC delegated file
of the synthetic history (tests/inputs/fixtures/registry/history/, 175.45.188.0/23 on
2026-10-01); after the chain, the running Suricata alerts on traffic to it, with the
same pid.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from registry_history import HISTORY, step_args
from tap_harness import alert_lines, ensure_tcpreplay, live_suricata, replay, short_tempdir, tap_namespace

from sensor_plugins.inputs.catalogue import default_catalogue_path, load_catalogue
from sensor_plugins.runners.suricata import data_dir, render_config
from sensor_plugins.scenarios.httpwire import HttpExchange, html_page
from sensor_plugins.scenarios.pcaps import OUTSIDE_CLIENT, build_http, pcap_bytes

NEW_HOST = "175.45.188.10"  # inside the allocation that appears on 2026-10-01
NEW_RANGE = "kp-175-45-188-0-23"


def chain(catalogue: Path, sources: list[str], gen: Path, config: Path, socket: Path | None) -> list[str]:
    """The refresh chain of docs/DEPLOY.md: update, generate, deploy; the first failure stops it."""
    sp = [sys.executable, "-m", "sensor_plugins"]
    steps = [
        [*sp, "catalogue", "update", "--catalogue", str(catalogue), *sources, "--write"],
        [*sp, "generate", "--catalogue", str(catalogue), "--zeek-out", str(gen / "zeek"),
         "--suricata-out", str(gen / "suricata")],
        [*sp, "deploy", "--zeek-out", str(gen / "zeek"), "--suricata-out", str(gen / "suricata"),
         "--suricata-config", str(config), *(["--suricata-socket", str(socket)] if socket else [])],
    ]
    return ["bash", "-c", " && ".join(shlex.join(step) for step in steps)]


def run_chain(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(chain(*args, **kwargs), capture_output=True, text=True, timeout=600)


def sensor_config(root: Path) -> Path:
    rules, conf = root / "rules", root / "conf"
    rules.mkdir()
    conf.mkdir()
    for name in ("classification.config", "reference.config"):
        shutil.copy(data_dir() / name, conf / name)
    config = root / "suricata.yaml"
    config.write_text(render_config(rules, root / "log", config_dir=conf), encoding="utf-8")
    return config


def new_range_pcap(path: Path) -> Path:
    page = HttpExchange(NEW_HOST, "/new-allocation.html", html_page("a newly allocated KP range"))
    path.write_bytes(pcap_bytes(build_http("catalogue-loop", OUTSIDE_CLIENT, NEW_HOST, page)))
    return path


def alerts_for(eve: Path, text: str) -> list[dict]:
    return [a for a in map(json.loads, alert_lines(eve)) if text in a["alert"]["signature"]]


@pytest.mark.netns
@pytest.mark.suricata
@pytest.mark.skipif(shutil.which("suricata") is None, reason="needs the suricata binary")
def test_a_new_kp_allocation_in_a_delegated_file_fires_on_live_suricata_after_the_chain_without_a_restart():
    ensure_tcpreplay()
    root = short_tempdir()
    try:
        catalogue = root / "catalogue.yaml"
        shutil.copy(default_catalogue_path(), catalogue)
        config, gen = sensor_config(root), root / "gen"
        pcap = new_range_pcap(root / "new-range.pcap")
        first = run_chain(catalogue, step_args("20260901", root), gen, config, None)
        assert first.returncode == 0, first.stderr
        with tap_namespace() as ns, live_suricata(ns, config, root) as engine:
            pid = engine.pid
            replay(engine, [pcap])
            quiet_before = wait_for_new_range(engine, expect=False)
            second = run_chain(catalogue, step_args("20261001", root), gen, config, root / "cmd.sock")
            replay(engine, [pcap])
            fired = wait_for_new_range(engine, expect=True)
            same_process = engine.process.poll() is None and engine.pid == pid
        assert second.returncode == 0, second.stderr
        hosts = {a["dest_ip"] for a in fired} | {a["src_ip"] for a in fired}
        assert (quiet_before, NEW_HOST in hosts, same_process, "reloaded Suricata's rules through" in second.stdout,
                load_catalogue(catalogue).by_name(NEW_RANGE).confidence) == ([], True, True, True, "high")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def wait_for_new_range(engine, expect: bool, timeout: float = 30.0) -> list[dict]:
    """The alerts naming the new range, once the tap has delivered every packet sent."""
    deadline = time.monotonic() + timeout
    settled_at = None
    while time.monotonic() < deadline:
        found = alerts_for(engine.eve, NEW_RANGE)
        if expect and found:
            return found
        if engine.captured_packets() >= engine.sent:
            # Flow-end inspection runs after the short tap flow timeouts; give it that long.
            settled_at = settled_at or time.monotonic()
            if not expect and time.monotonic() - settled_at > 4:
                return found
        time.sleep(0.3)
    return alerts_for(engine.eve, NEW_RANGE)


def test_a_failing_update_stops_the_chain_before_generate_and_deploy(tmp_path):
    catalogue = tmp_path / "catalogue.yaml"
    shutil.copy(default_catalogue_path(), catalogue)
    before = catalogue.read_bytes()
    truncated = tmp_path / "delegated-apnic-extended-20261001"
    # A download cut short: the last record is gone, so the announced counts do not match.
    truncated.write_text("".join((HISTORY / truncated.name).read_text().splitlines(keepends=True)[:-1]))
    sources = step_args("20261001", tmp_path)
    sources[sources.index("--delegated") + 1] = str(truncated)
    result = run_chain(catalogue, sources, tmp_path / "gen", tmp_path / "suricata.yaml", None)
    assert (result.returncode, "truncated or edited?" in result.stderr, (tmp_path / "gen").exists(),
            catalogue.read_bytes() == before) == (2, True, False, True)
