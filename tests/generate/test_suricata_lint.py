"""suricata-check on the generated rules: no warnings, and fewer info issues per rule than ET's P2P file.

ET Open's emerging-p2p.rules (2024-04, 86 rules) scores 587 info issues with
suricata-check 0.9.3, 6.8 per rule; our generated rules must do better.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import BITTORRENT_ALL_RULES, MAIN_RULES, SuricataRenderer
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

ET_P2P_INFO_PER_RULE = 6.8
SEVERITY_RE = re.compile(r"^\[\w+\] \((\w+)\)")


@dataclass(frozen=True)
class Lint:
    rules: int
    issues: int
    severities: frozenset[str]


@pytest.fixture(scope="module")
def lint(tmp_path_factory) -> Lint:
    root = tmp_path_factory.mktemp("suricata-check")
    files = SuricataRenderer().render(SensorContent(load_catalogue(), load_tor_list()), None).files
    rules = root / "generated.rules"
    rules.write_text(files[MAIN_RULES] + files[BITTORRENT_ALL_RULES], encoding="utf-8")
    checker = Path(sys.executable).with_name("suricata-check")
    subprocess.run([str(checker), "-r", str(rules), "-o", str(root)], capture_output=True, check=True,
                   timeout=300)
    reports = [json.loads(line) for line in (root / "suricata-check.jsonl").read_text().splitlines() if line]
    fast = (root / "suricata-check-fast.log").read_text().splitlines()
    return Lint(
        rules=sum(1 for line in rules.read_text().splitlines() if line.startswith("alert ")),
        issues=sum(len(r.get("issues", [])) for r in reports),
        severities=frozenset(m.group(1) for m in map(SEVERITY_RE.match, fast) if m),
    )


def test_suricata_check_raises_nothing_above_info(lint):
    assert lint.severities <= {"INFO"}


def test_suricata_check_finds_fewer_info_issues_per_rule_than_in_et_p2p(lint):
    assert lint.issues / lint.rules < ET_P2P_INFO_PER_RULE
