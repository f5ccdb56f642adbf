"""B7's measuring script (bench/zeek_cost.py) runs real Zeek with and without the package and refuses a failed run.

A smoke test on a tiny tap mix: seconds, and no timing assertions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from sensor_plugins.runners.zeek import find_zeek

ROOT = Path(__file__).resolve().parents[2]
TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"


def load_bench(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


zeek_cost = load_bench("zeek_cost")
tap_mix = load_bench("tap_mix")

PROFILE = """\
#fields\tfunction\tlocation\ttype\tncall\ttot_CPU\tchild_CPU\ttot_Mem\tchild_Mem
#types\tstring\tstring\tstring\tcount\tinterval\tinterval\tcount\tcount
NKSensor::in_scope\t/pkg/tagging.zeek:12\tfunction\t400\t0.300000\t0.100000\t0\t0
connection_state_remove\t/pkg/tagging.zeek:40\tevent\t100\t0.500000\t0.300000\t0\t0
fmt\t<no-location>\tBiF\t9\t0.010000\t0.000000\t0\t0
connection_state_remove\t2-locations\tevent\t200\t0.900000\t0.000000\t0\t0
total\t528-locations\tTOTAL\t509\t0.810000\t0.000000\t0\t0
non-scripts\t<no-location>\tTOTAL\t9\t0.500000\t0.000000\t0\t0
"""


def test_profile_rows_give_each_body_its_own_cpu_and_skip_the_summaries(tmp_path: Path) -> None:
    path = tmp_path / "zprof.log"
    path.write_text(PROFILE)
    rows = zeek_cost.read_profile(path)
    assert [(r.function, r.calls, round(r.self_cpu_s, 3)) for r in rows] == [
        ("NKSensor::in_scope", 400, 0.2), ("connection_state_remove", 100, 0.2), ("fmt", 9, 0.01)]


@pytest.fixture(scope="module")
def tiny_mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b7") / "tap.pcap"
    tap_mix.write_tap_mix(out, 2_000, 0.2, TRACES)
    return out


@pytest.mark.zeek
def test_b7_measures_stock_and_package_and_profiles(tiny_mix: Path, tmp_path: Path) -> None:
    result = zeek_cost.measure_packages(find_zeek(), tiny_mix, {"tree": ROOT / "zeek_scripts"}, 1, tmp_path,
                                        profile=True)
    for label in ("stock", "tree"):
        (sample,) = result["series"][label]["samples"]
        assert sample["cpu_s"] > 0 and sample["peak_rss_kb"] > 0
        assert sample["conn_rows"] > 0
    tree = result["packages"]["tree"]
    # The scenario copies keep their catalogue hosts, so the package tags some connections.
    assert tree["tagged_rows"] > 0
    assert result["series"]["stock"]["samples"][0]["tagged_rows"] == 0
    assert tree["cpu_ratio"] > 0 and tree["rss_ratio"] > 0
    assert tree["profile"]["script_cpu_s"] >= tree["profile"]["package_cpu_s"] >= 0
    assert tree["profile"]["top"], "the package's handlers ran, so the profile names some"


@pytest.mark.zeek
def test_a_failed_zeek_run_stops_the_measurement(tiny_mix: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "__load__.zeek").write_text("event zeek_init() { print \n")
    with pytest.raises(zeek_cost.ZeekCostError, match="exited"):
        zeek_cost.measure_packages(find_zeek(), tiny_mix, {"broken": broken}, 1, tmp_path / "work")


@pytest.mark.zeek
def test_the_run_loop_is_counted_in_the_real_zeek_build(tmp_path: Path) -> None:
    # Callgrind knows the C++ function as "run_loop()": a toggle on the bare name collected
    # nothing in Zeek 7.0.11, and B7 failed for want of the function.
    pcap = ROOT / "tests" / "sensors" / "fixtures" / "ja4" / "tls1_1.pcap"
    logs = tmp_path / "logs"
    logs.mkdir()
    count = zeek_cost.callgrind.inclusive_instructions([find_zeek(), "-b", "-C", "-r", str(pcap)], zeek_cost.RUN_LOOP,
                                                       tmp_path / "cg.out", logs)
    assert count > 0
