"""`deploy --zeekctl`: a script change restarts the cluster through zeekctl, a data change never does.

The cluster test (test_zeek_cluster.py) shows the restart on a running cluster; these
show the refusals: a zeekctl that cannot be run stops the deploy before any write, and a
zeekctl whose `check` refuses puts every Zeek file back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tap_harness import tap_namespace
from zeek_cluster_harness import ZeekCluster, machine_zeekctl_state

from sensor_plugins.sensors.deploy import DeployError, DeployOptions, deploy

pytestmark = pytest.mark.zeek

LOAD = "@load ./main\n"
MAIN = "module SPTest;\n\nexport {\n\t## A value.\n\tconst answer = 42 &redef;\n}\n"
RANGES = "#fields\tcidr\n175.45.176.0/22\n"


def package(root: Path, main: str = MAIN, ranges: str = RANGES) -> Path:
    root.mkdir(parents=True)
    for name, text in (("__load__.zeek", LOAD), ("main.zeek", main), ("nk-ranges.tsv", ranges)):
        (root / name).write_text(text)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "local.zeek").write_text("@load misc/loaded-scripts\n")
    deploy(DeployOptions(zeek_source=package(tmp_path / "v1"), zeek_site=site, add_load=True))
    return site


def test_a_zeekctl_that_cannot_run_stops_a_script_change_before_any_write(tmp_path, site):
    before = snapshot(site)
    changed = package(tmp_path / "v2", main=MAIN.replace("42", "43"))
    with pytest.raises(DeployError, match="not an executable zeekctl; nothing was changed"):
        deploy(DeployOptions(zeek_source=changed, zeek_site=site, zeekctl=tmp_path / "no-zeekctl"))
    assert snapshot(site) == before


def test_a_data_only_change_never_runs_zeekctl(tmp_path, site):
    changed = package(tmp_path / "v2", ranges=RANGES + "210.52.109.0/24\n")
    result = deploy(DeployOptions(zeek_source=changed, zeek_site=site, zeekctl=tmp_path / "no-zeekctl"))
    assert [c.path.name for c in result.plan.zeek if c.path.name != ".sensor-plugins.manifest"] == ["nk-ranges.tsv"]
    assert not any("zeekctl" in action for action in result.actions)


def test_without_zeekctl_a_script_change_says_zeekctl_deploy_is_needed(tmp_path, site):
    changed = package(tmp_path / "v2", main=MAIN.replace("42", "43"))
    result = deploy(DeployOptions(zeek_source=changed, zeek_site=site))
    assert [a for a in result.actions if "zeekctl deploy" in a] == [
        "Zeek scripts changed (main.zeek): run `zeekctl deploy` for them to take effect (or pass --zeekctl)"]


def test_the_cli_refuses_an_unusable_zeekctl_in_one_line_with_exit_2(tmp_path, site):
    changed = package(tmp_path / "v2", main=MAIN.replace("42", "43"))
    result = subprocess.run([sys.executable, "-m", "sensor_plugins", "deploy", "--zeek-out", str(changed),
                             "--zeek-site", str(site), "--zeekctl", str(tmp_path / "no-zeekctl")],
                            capture_output=True, text=True)
    assert (result.returncode, len(result.stderr.strip().splitlines())) == (2, 1), result.stderr
    assert "no-zeekctl: not an executable zeekctl" in result.stderr


@pytest.mark.netns
@pytest.mark.cluster
def test_a_zeekctl_check_that_refuses_puts_every_zeek_file_back(tmp_path):
    with tap_namespace() as ns:
        cluster = ZeekCluster(ns, tmp_path / "cluster")
        cluster.prepare(tmp_path / "local.zeek")
        deploy(DeployOptions(zeek_source=package(tmp_path / "v1"), zeek_site=cluster.site, add_load=True))
        # The real zeekctl, refusing its node.cfg: a worker and no manager.
        (cluster.root / "etc" / "node.cfg").write_text("[worker-1]\ntype=worker\nhost=localhost\n")
        before = snapshot(cluster.site)
        changed = package(tmp_path / "v2", main=MAIN.replace("42", "43"))
        with pytest.raises(DeployError, match=r"check refused the new Zeek scripts: .*every Zeek file was restored "
                                              r"and the cluster was not restarted"):
            deploy(DeployOptions(zeek_source=changed, zeek_site=cluster.site, zeekctl=cluster.zeekctl_script))
        assert snapshot(cluster.site) == before
        assert machine_zeekctl_state() == cluster.machine_state


@pytest.fixture(autouse=True)
def _local_zeek(tmp_path: Path) -> None:
    (tmp_path / "local.zeek").write_text("# the test sensor's site policy\n")
