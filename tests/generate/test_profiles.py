"""`generate --profile ranges`: only the IP-only range rules, with the sids of the full profile.

A sensor that must stay near the cost of no rules loads the ranges profile (B5: every rule
that looks inside TCP cost Suricata more than 5% over none). The same rule keeps its sid
and rev whichever profile wrote it, and moving a directory between profiles retires nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sensor_plugins.cli import main as cli_main
from sensor_plugins.generate.command import generate
from sensor_plugins.generate.suricata import (
    BITTORRENT_ALL_RULES,
    MAIN_RULES,
    SID_MAP,
    SuricataRenderer,
    SuricataRenderError,
    rules_profile,
)
from sensor_plugins.runners.suricata import render_config

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")

SID_RE = re.compile(r"\bsid:(\d+); rev:(\d+);")
# The bundled catalogue has three ranges, each with a to-range and a from-range rule.
RANGE_SIDS = {1650000, 1650001, 1650002, 1650003, 1650004, 1650005}


def rule_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("alert ")]


def sids_and_revs(path: Path) -> dict[int, int]:
    return {int(sid): int(rev) for line in rule_lines(path) for sid, rev in SID_RE.findall(line)}


def gen(root: Path, profile: str, **kwargs):
    return generate(None, None, root / "zeek", root / "suricata", profile=profile, **kwargs)


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_the_ranges_profile_writes_the_range_rules_and_nothing_that_looks_inside_traffic(tmp_path):
    gen(tmp_path, "ranges", validate=False)
    rules = rule_lines(tmp_path / "suricata" / MAIN_RULES)
    protocols = {rule.split()[1] for rule in rules}
    assert (set(sids_and_revs(tmp_path / "suricata" / MAIN_RULES)), protocols) == (RANGE_SIDS, {"ip"})
    assert files_in(tmp_path / "suricata") == {MAIN_RULES, "nksensor-vars.yaml", SID_MAP, ".sensor-plugins.manifest"}


def test_the_zeek_package_is_the_same_in_both_profiles(tmp_path):
    gen(tmp_path / "full", "full", validate=False)
    gen(tmp_path / "ranges", "ranges", validate=False)
    full, ranges = tmp_path / "full" / "zeek", tmp_path / "ranges" / "zeek"
    assert {p.name: p.read_bytes() for p in full.iterdir()} == {p.name: p.read_bytes() for p in ranges.iterdir()}


def test_a_range_rule_is_byte_for_byte_the_same_rule_with_the_same_sid_in_both_profiles(tmp_path):
    gen(tmp_path / "full", "full", validate=False)
    gen(tmp_path / "ranges", "ranges", validate=False)
    full = rule_lines(tmp_path / "full" / "suricata" / MAIN_RULES)
    ranges = rule_lines(tmp_path / "ranges" / "suricata" / MAIN_RULES)
    assert ranges == [line for line in full if int(SID_RE.search(line).group(1)) in RANGE_SIDS]
    full_map, ranges_map = (tmp_path / p / "suricata" / SID_MAP for p in ("full", "ranges"))
    assert full_map.read_bytes() == ranges_map.read_bytes()


def test_switching_a_directory_between_profiles_retires_no_sid_and_comes_back_unchanged(tmp_path):
    gen(tmp_path, "full", validate=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "suricata").iterdir()}
    gen(tmp_path, "ranges", validate=False)
    registry = json.loads((tmp_path / "suricata" / SID_MAP).read_text())
    assert (registry["retired"], BITTORRENT_ALL_RULES in files_in(tmp_path / "suricata")) == ({}, False)
    gen(tmp_path, "full", validate=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "suricata").iterdir()} == before


def test_check_compares_a_directory_with_the_profile_asked_for(tmp_path):
    gen(tmp_path, "ranges", validate=False)
    assert gen(tmp_path, "ranges", check=True).stale == []
    stale = gen(tmp_path, "full", check=True).stale
    assert sorted(stale) == sorted([
        f"{tmp_path / 'suricata' / BITTORRENT_ALL_RULES} (missing)",
        f"{tmp_path / 'suricata' / 'nksensor-tor-exit.lst'} (missing)",
        f"{tmp_path / 'suricata' / 'nksensor-tor-relay.lst'} (missing)",
        f"{tmp_path / 'suricata' / MAIN_RULES} (differs)",
        f"{tmp_path / 'suricata' / '.sensor-plugins.manifest'} (differs)",
    ])


def test_each_profile_names_itself_in_the_rules_file_and_an_older_file_reads_as_full(tmp_path):
    gen(tmp_path / "full", "full", validate=False)
    gen(tmp_path / "ranges", "ranges", validate=False)
    named = [rules_profile((tmp_path / p / "suricata" / MAIN_RULES).read_text()) for p in ("full", "ranges")]
    assert (named, rules_profile("# sensor-plugins Suricata rules\nalert ip any any -> any any (sid:1;)\n")) == (
        ["full", "ranges"], "full")


def test_an_unknown_profile_is_refused(tmp_path, capsys):
    with pytest.raises(SuricataRenderError, match="unknown rules profile 'tiny'"):
        SuricataRenderer("tiny")
    code = cli_main(["generate", "--profile", "tiny", "--zeek-out", str(tmp_path / "z"),
                     "--suricata-out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert (code, len(err.strip().splitlines()), "invalid choice: 'tiny'" in err) == (2, 1, True)
    assert not (tmp_path / "s").exists()


@needs_suricata
@pytest.mark.suricata
def test_suricata_loads_every_rule_of_the_ranges_profile_as_ip_only(tmp_path):
    # IP-only rules are matched once per flow and direction, which is what keeps the
    # profile near no-rule cost; Suricata's own engine analysis says which rules are.
    assert cli_main(["generate", "--profile", "ranges", "--zeek-out", str(tmp_path / "zeek"),
                     "--suricata-out", str(tmp_path / "suricata")]) == 0
    logs = tmp_path / "logs"
    logs.mkdir()
    config = tmp_path / "suricata.yaml"
    config.write_text(render_config(tmp_path / "suricata", logs), encoding="utf-8")
    subprocess.run(["suricata", "--engine-analysis", "-c", str(config), "-l", str(logs),
                    "--set", "engine-analysis.rules=yes"],
                   check=True, capture_output=True, timeout=300)
    analysed = [json.loads(line) for line in (logs / "rules.json").read_text().splitlines() if line]
    assert {(rule["id"], rule["type"]) for rule in analysed} == {(sid, "ip_only") for sid in RANGE_SIDS}
