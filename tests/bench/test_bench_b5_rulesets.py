"""B5's rule sets (bench/figures/b5_rulesets.py): ET Open beside our rules must load whole, or the figure stops.

Real Suricata (``suricata -T``) on four ET Open rules kept as a fixture; no timing assertions.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ET_SAMPLE = Path(__file__).resolve().parent / "fixtures" / "et-open"
sys.path.insert(0, str(ROOT / "bench"))
spec = importlib.util.spec_from_file_location("b5_rulesets", ROOT / "bench" / "figures" / "b5_rulesets.py")
b5 = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = b5  # dataclasses look their module up while it runs
spec.loader.exec_module(b5)

from harness import BenchError  # noqa: E402  (bench/ is on the path only from here)

from sensor_plugins.runners.suricata import MAIN_RULES  # noqa: E402

OURS = ROOT / "suricata_rules"


def test_a_folder_without_rule_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"no \*\.rules files"):
        b5.et_rule_files(tmp_path)
    with pytest.raises(BenchError, match="no such directory"):
        b5.et_rule_files(tmp_path / "absent")


def test_et_and_ours_share_a_folder_but_never_a_file_name(tmp_path: Path) -> None:
    et = tmp_path / "et"
    et.mkdir()
    shutil.copyfile(ET_SAMPLE / "sample.rules", et / "sample.rules")
    combined = b5.combined_dir(tmp_path / "both", et, ["sample.rules"], OURS)
    assert (combined / "sample.rules").read_bytes() == (ET_SAMPLE / "sample.rules").read_bytes()
    assert (combined / MAIN_RULES).read_bytes() == (OURS / MAIN_RULES).read_bytes()
    shutil.copyfile(OURS / MAIN_RULES, et / MAIN_RULES)
    with pytest.raises(BenchError, match="named like one of ours"):
        b5.combined_dir(tmp_path / "clash", et, ["sample.rules", MAIN_RULES], OURS)


@pytest.mark.suricata
def test_et_rules_load_beside_ours_with_suricatas_default_groups(tmp_path: Path) -> None:
    # The sample names $HTTP_PORTS and $HTTP_SERVERS, which only ET_VARS defines.
    both = b5.combined_dir(tmp_path / "both", ET_SAMPLE, ["sample.rules"], OURS)
    ours = sum(1 for line in (OURS / MAIN_RULES).read_text().splitlines() if line.startswith("alert "))
    rule_set = b5.RuleSet(both, ["sample.rules", MAIN_RULES])
    assert b5.rules_loaded("et+ours", rule_set, tmp_path / "work") == 4 + ours


@pytest.mark.suricata
def test_a_rule_that_fails_to_load_stops_the_figure(tmp_path: Path) -> None:
    et = tmp_path / "et"
    et.mkdir()
    text = (ET_SAMPLE / "sample.rules").read_text()
    (et / "sample.rules").write_text(text + 'alert tcp any any -> any any (msg:"broken"; nosuchkeyword; sid:9;)\n')
    both = b5.combined_dir(tmp_path / "both", et, ["sample.rules"], OURS)
    with pytest.raises(BenchError, match=r"suricata -T \(et\).*(failed|rules failed to load)"):
        b5.rules_loaded("et", b5.RuleSet(both, ["sample.rules"]), tmp_path / "work")
