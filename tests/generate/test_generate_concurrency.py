"""Two `generate` runs at once on the same directories end as if they had run one after the other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import catalogue_yaml

from sensor_plugins.atomic import locked
from sensor_plugins.cli import main


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def command(root: Path, catalogue: Path) -> list[str]:
    return ["generate", "--no-validate", "--catalogue", str(catalogue), "--zeek-out", str(root / "zeek"),
            "--suricata-out", str(root / "suricata")]


def catalogues(tmp_path: Path) -> tuple[Path, Path]:
    # Different ranges, so the order decides which sids each range's rules get.
    a = tmp_path / "a.yaml"
    a.write_text(catalogue_yaml(("kp-a", "175.45.176.0/22"), ("kp-b", "210.52.109.0/24")))
    b = tmp_path / "b.yaml"
    b.write_text(catalogue_yaml(("kp-c", "77.94.35.0/24"), ("kp-a", "175.45.176.0/22")))
    return a, b


def serial(tmp_path: Path, name: str, first: Path, second: Path) -> dict[str, bytes]:
    root = tmp_path / name
    assert main(command(root, first)) == 0
    assert main(command(root, second)) == 0
    return snapshot(root)


def test_two_runs_at_once_give_one_of_the_serial_orders(tmp_path: Path) -> None:
    a, b = catalogues(tmp_path)
    orders = [serial(tmp_path, "ab", a, b), serial(tmp_path, "ba", b, a)]
    assert orders[0] != orders[1]
    for attempt in range(3):
        root = tmp_path / f"together-{attempt}"
        procs = [subprocess.Popen([sys.executable, "-m", "sensor_plugins", *command(root, c)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in (a, b)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        assert [code for code, _ in results] == [0, 0], results
        assert snapshot(root) in orders
        # The lock files beside the outputs are gone once both runs are done.
        assert sorted(p.name for p in root.iterdir()) == ["suricata", "zeek"]


def test_a_run_that_cannot_get_the_lock_in_time_fails_and_changes_nothing(tmp_path: Path, capsys) -> None:
    a, _ = catalogues(tmp_path)
    root = tmp_path / "out"
    assert main(command(root, a)) == 0
    before = snapshot(root)
    with locked([root / "suricata"]):
        code = main([*command(root, a), "--lock-wait", "0.2"])
    err = capsys.readouterr().err
    assert (code, "another sensor-plugins run" in err, snapshot(root) == before) == (2, True, True)
