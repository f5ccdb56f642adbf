"""The NK_NETS rules carry the catalogue's networks in their header, as ET Open writes its lists.

No rule names ``$NK_NETS``: the rules load whatever the site's ``vars`` say, a catalogue
change raises the rev of every rule whose list changed and keeps every sid, IPv6 networks
sit in the same list, and a catalogue too long for one Suricata rule line is split over
rules whose lists do not overlap, so each host still raises the alerts one list raised.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_suricata_render import STAR, content, render, revs, write

from sensor_plugins.generate.suricata import (
    BITTORRENT_ALL_RULES,
    MAIN_RULES,
    MAX_RULE_BYTES,
    SID_MAP,
    RuleSpec,
    SuricataRenderError,
    rule_text,
)
from sensor_plugins.inputs.catalogue import Range
from sensor_plugins.runners.suricata import VARS_FILE, render_config, replay, yaml_string
from sensor_plugins.runners.suricata import test_rules as suricata_T
from sensor_plugins.scenarios.pcaps import build_bt_dht, pcap_bytes

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")

V6 = dataclasses.replace(STAR, name="kp-v6-doc", cidr=ipaddress.ip_network("2001:db8:4e4b::/48"))
V6_HOST = "2001:db8:4e4b::10"
OUTSIDE_V6 = "2001:db8:ffff::2"
HEADER_RE = re.compile(r"^alert (\S+) (\S+) \S+ -> (\S+) \S+ \(")
KEY_RE = re.compile(r"\bsid:(\d+);")
NETS_PART_RE = re.compile(r":nets(\d+)$")


def numbered_ranges(count: int) -> tuple[Range, ...]:
    # Every other /24, so that no two ranges merge into one network in the header.
    return tuple(dataclasses.replace(STAR, name=f"kp-n{i}", asn=None, first_seen=None,
                                     cidr=ipaddress.ip_network(f"10.{i // 128}.{i % 128 * 2}.0/24"))
                 for i in range(count))


def rules_by_key(files: dict[str, str]) -> dict[str, str]:
    keys = {entry["sid"]: key for key, entry in json.loads(files[SID_MAP])["rules"].items()}
    return {keys[int(KEY_RE.search(line).group(1))]: line
            for name in (MAIN_RULES, BITTORRENT_ALL_RULES) for line in files[name].splitlines()
            if line.startswith("alert ")}


def nk_rules(files: dict[str, str]) -> dict[str, str]:
    """The rules that look at NK_NETS traffic: all but the range rules and the optional file."""
    return {k: r for k, r in rules_by_key(files).items() if not k.startswith(("range:", "bittorrent-all:"))}


def header_list(rule: str) -> list[str]:
    """The address list of a rule header: its one side that is not ``any``."""
    _proto, src, dst = HEADER_RE.match(rule).groups()
    (side,) = [a for a in (src, dst) if a != "any"]
    return side.strip("[]").split(",")


def test_no_rule_names_an_address_variable():
    files = render(content(STAR, V6))
    assert [r for r in rules_by_key(files).values() if "$" in r.split("(", 1)[0]] == []


def test_every_nk_rule_lists_the_catalogue_networks_merged_ipv4_first():
    star_upper = dataclasses.replace(STAR, name="kp-upper", cidr=ipaddress.ip_network("175.45.180.0/22"))
    satgate = dataclasses.replace(STAR, name="kp-satgate", cidr=ipaddress.ip_network("77.94.35.0/24"))
    # Two adjacent /22s are one /21 to Suricata, and to the rule text.
    lists = {tuple(header_list(r)) for r in nk_rules(render(content(V6, star_upper, satgate, STAR))).values()}
    assert lists == {("77.94.35.0/24", "175.45.176.0/21", "2001:db8:4e4b::/48")}


def test_the_nk_rules_are_the_44_of_the_bundled_layout_each_with_one_list():
    rules = nk_rules(render(content(STAR)))
    assert (len(rules), {len(header_list(r)) for r in rules.values()}) == (44, {1})


def test_adding_a_range_raises_the_rev_of_every_nk_rule_and_keeps_every_sid(tmp_path):
    before = render(content(STAR))
    after = render(content(STAR, V6), write(before, tmp_path))
    old, new = revs(before), revs(after)
    changed = {k for k in old if new[k] != old[k]}
    assert changed == set(nk_rules(before))
    assert {k: new[k][0] for k in old} == {k: sid for k, (sid, _rev) in old.items()}
    assert {k: new[k][1] - old[k][1] for k in changed} == dict.fromkeys(changed, 1)
    assert set(new) - set(old) == {"range:kp-v6-doc:to-range", "range:kp-v6-doc:from-range"}


def test_renaming_a_range_leaves_the_nk_rules_alone(tmp_path):
    # The list is the address set; the name is in the range rules only.
    before = render(content(STAR, V6))
    after = render(content(dataclasses.replace(STAR, name="kp-star"), V6), write(before, tmp_path))
    assert {k: v for k, v in revs(after).items() if k in nk_rules(before)} == {
        k: v for k, v in revs(before).items() if k in nk_rules(before)}


@needs_suricata
@pytest.mark.suricata
def test_suricata_loads_every_rule_with_a_config_that_does_not_include_the_vars_file(tmp_path):
    # 44 NK rules, two range rules for each of the two ranges, the 6 of the optional file.
    rules = write({k: v for k, v in render(content(STAR, V6)).items() if k != VARS_FILE}, tmp_path / "rules")
    shipped = render_config(rules, tmp_path, bittorrent_everywhere=True)
    include = f"include: {yaml_string(rules.resolve() / VARS_FILE)}\n"
    config = tmp_path / "suricata.yaml"
    config.write_text(shipped.replace(include, ""), encoding="utf-8")
    run = subprocess.run(["suricata", "-T", "-v", "-c", str(config), "-l", str(tmp_path), "-k", "none",
                          "--init-errors-fatal"], capture_output=True, text=True, timeout=300)
    loaded = re.search(r"(\d+) rules successfully loaded, (\d+) rules failed", run.stdout + run.stderr)
    assert (include in shipped, run.returncode, loaded.groups()) == (True, 0, ("54", "0"))


def test_a_200_range_catalogue_fits_one_rule_line_each():
    files = render(content(*numbered_ranges(200)))
    rules = nk_rules(files)
    assert (len(rules), {len(header_list(r)) for r in rules.values()}) == (44, {200})
    assert max(len(line.encode()) for line in rules_by_key(files).values()) <= MAX_RULE_BYTES


@needs_suricata
@pytest.mark.suricata
def test_suricata_loads_the_rules_of_a_200_range_catalogue_with_an_ipv6_range(tmp_path):
    suricata_T(write(render(content(*numbered_ranges(199), V6)), tmp_path))


def test_a_catalogue_too_long_for_one_rule_is_split_into_disjoint_parts_that_cover_it():
    ranges = (*numbered_ranges(1000), V6)
    files = render(content(*ranges))
    rules = nk_rules(files)
    parts: dict[str, list[set[str]]] = {}
    for key, rule in rules.items():
        parts.setdefault(NETS_PART_RE.sub("", key), []).append(set(header_list(rule)))
    lists = parts["tls:sslv3"]
    assert len(lists) > 1
    assert {frozenset().union(*p) for p in parts.values()} == {frozenset(str(r.cidr) for r in ranges)}
    assert sum(len(p) for p in lists) == len(ranges)  # no network in two parts
    assert {len(p) for p in parts.values()} == {len(lists)}
    assert max(len(line.encode()) for line in rules_by_key(files).values()) <= MAX_RULE_BYTES


def test_a_rule_longer_than_suricata_reads_as_one_line_stops_the_render():
    spec = RuleSpec(key="test:long", proto="ip", src="any", arrow="->", dst="any", msg="x" * MAX_RULE_BYTES,
                    options=(), classtype="bad-unknown", severity="Minor")
    with pytest.raises(SuricataRenderError, match=r"rule test:long: \d+ bytes, more than the 8191"):
        rule_text(spec, 1659990, 1, "2024_01_01", "2024_01_01")


def dht_pcap(path: Path, node: str, remote: str) -> Path:
    path.write_bytes(pcap_bytes(build_bt_dht(path.stem, node, remote)))
    return path


def fired_keys(files: dict[str, str], tmp_path: Path, node: str, remote: str) -> set[str]:
    rules = write(files, tmp_path / "rules")
    keys = {entry["sid"]: key for key, entry in json.loads(files[SID_MAP])["rules"].items()}
    pcap = dht_pcap(tmp_path / "dht.pcap", node, remote)
    # Suricata writes IPv6 addresses in full, so they are compared as addresses.
    return {keys[a.sid] for a in replay([pcap], rules, tmp_path / "logs")
            if ipaddress.ip_address(a.src) == ipaddress.ip_address(node)}


@needs_suricata
@pytest.mark.suricata
def test_an_ipv6_host_in_the_list_raises_the_nk_rules_on_real_packets(tmp_path):
    fired = fired_keys(render(content(STAR, V6)), tmp_path, V6_HOST, OUTSIDE_V6)
    assert fired == {"range:kp-v6-doc:from-range", "bittorrent:dht-query", "bittorrent:dht-get-peers"}


@needs_suricata
@pytest.mark.suricata
def test_a_host_in_a_later_part_of_a_split_list_raises_that_parts_rules(tmp_path):
    files = render(content(*numbered_ranges(1000), V6))
    last = max(int(m.group(1)) for k in nk_rules(files) if (m := NETS_PART_RE.search(k)))
    fired = fired_keys(files, tmp_path, V6_HOST, OUTSIDE_V6)
    assert fired == {"range:kp-v6-doc:from-range", f"bittorrent:dht-query:nets{last}",
                     f"bittorrent:dht-get-peers:nets{last}"}
