"""Two `deploy` runs at once into the same sensor end as if they had run one after the other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sensor_plugins.cli import main


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def source(root: Path, answer: int, extra: str) -> Path:
    main_zeek = f"module SPTest;\n\nexport {{\n\tconst answer = {answer};\n}}\n"
    files = {"__load__.zeek": "@load ./main\n", "main.zeek": main_zeek,
             "nk-ranges.tsv": "#fields\tcidr\n175.45.176.0/22\n", extra: "# only in this source\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def site(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "local.zeek").write_text("@load misc/loaded-scripts\n")
    return root


def command(src: Path, site_dir: Path) -> list[str]:
    return ["deploy", "--zeek-out", str(src), "--zeek-site", str(site_dir), "--add-load"]


def test_two_deploys_at_once_give_one_of_the_serial_orders(tmp_path: Path) -> None:
    a = source(tmp_path / "a", 1, "a-only.tsv")
    b = source(tmp_path / "b", 2, "b-only.tsv")
    orders = []
    for name, first, second in (("ab", a, b), ("ba", b, a)):
        sensor = site(tmp_path / name)
        assert (main(command(first, sensor)), main(command(second, sensor))) == (0, 0)
        orders.append(snapshot(sensor))
    assert orders[0] != orders[1]
    for attempt in range(3):
        sensor = site(tmp_path / f"together-{attempt}")
        procs = [subprocess.Popen([sys.executable, "-m", "sensor_plugins", *command(s, sensor)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for s in (a, b)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        assert [code for code, _ in results] == [0, 0], results
        # Paths in local.zeek name the site, so compare after naming it as the serial runs did.
        got = {k: v.replace(str(sensor).encode(), str(tmp_path / "ab").encode()) for k, v in snapshot(sensor).items()}
        ab = orders[0]
        ba = {k: v.replace(str(tmp_path / "ba").encode(), str(tmp_path / "ab").encode()) for k, v in orders[1].items()}
        assert got in (ab, ba)
