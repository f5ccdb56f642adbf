"""The Suricata renderer: stable sids and revs, the vars and dataset files, and hostile catalogue content."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import (
    BITTORRENT_ALL_RULES,
    MAIN_RULES,
    SID_MAP,
    VARS_FILE,
    RuleSpec,
    SuricataRenderer,
    SuricataRenderError,
    escape_msg,
    metadata_value,
    rule_text,
)
from sensor_plugins.inputs.catalogue import Catalogue, Range, load_catalogue
from sensor_plugins.inputs.feeds import TorEntry, TorFeed, TorList, load_tor_list, merge_feeds
from sensor_plugins.runners.suricata import test_rules as suricata_T

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")

STAR = Range(
    name="kp-star-jv", cidr=ipaddress.ip_network("175.45.176.0/22"), country="KP", owner="Star JV",
    source="Test source", confidence="high", asn=131279, first_seen=dt.date(2017, 4, 1),
)
FEED_DATE = dt.date(2024, 2, 27)


def tor_list(exits: tuple[str, ...] = ("185.220.101.1",), relays: tuple[str, ...] = ("193.11.164.243",),
             name: str = "test.lst", fetched: dt.date = FEED_DATE) -> TorList:
    entries = tuple(TorEntry(a, "exit", None, fetched, name) for a in exits)
    entries += tuple(TorEntry(a, "relay", None, fetched, name) for a in relays)
    return merge_feeds([TorFeed(name, "plain", fetched, entries)])


def content(*ranges: Range, tor: TorList | None = None, description: str = "") -> SensorContent:
    return SensorContent(Catalogue(ranges=ranges or (STAR,), description=description), tor or tor_list())


def render(c: SensorContent, previous: Path | None = None) -> dict[str, str]:
    return SuricataRenderer().render(c, previous).files


def write(files: dict[str, str], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def rules_of(files: dict[str, str]) -> list[str]:
    return [line for name in (MAIN_RULES, BITTORRENT_ALL_RULES)
            for line in files[name].splitlines() if line and not line.startswith("#")]


def revs(files: dict[str, str]) -> dict[str, tuple[int, int]]:
    return {k: (v["sid"], v["rev"]) for k, v in json.loads(files[SID_MAP])["rules"].items()}


def test_rendering_the_same_input_twice_gives_identical_bytes():
    assert render(content()) == render(content())


def test_rendering_on_top_of_its_own_output_changes_nothing(tmp_path):
    first = render(content())
    assert render(content(), write(first, tmp_path)) == first


def test_a_new_tor_list_changes_the_datasets_but_no_rule_sid_or_rev(tmp_path):
    before = render(content())
    after = render(content(tor=tor_list(exits=("185.220.101.2",))), write(before, tmp_path))
    assert (after[SID_MAP], after["nksensor-tor-exit.lst"] != before["nksensor-tor-exit.lst"]) == (
        before[SID_MAP], True)


def test_changing_a_ranges_confidence_raises_the_rev_of_its_two_rules_only(tmp_path):
    before = render(content())
    lowered = dataclasses.replace(STAR, confidence="low")
    after = render(content(lowered), write(before, tmp_path))
    changed = {k for k, v in revs(after).items() if v != revs(before)[k]}
    assert changed == {"range:kp-star-jv:to-range", "range:kp-star-jv:from-range"}


def test_the_rules_files_carry_the_registry_version():
    files = render(content())
    version = json.loads(files[SID_MAP])["version"]
    assert re.search(rf"^#  VERSION {version}$", files[MAIN_RULES], re.M) is not None


def test_every_rule_has_the_et_conventions():
    pattern = re.compile(
        r'^alert \S+ .*\(msg:"NKSENSOR [^"]*"; .*classtype:[a-z-]+; .*sid:\d+; rev:\d+; '
        r"metadata:.*created_at \d{4}_\d\d_\d\d, .*signature_severity \w+, .*updated_at \d{4}_\d\d_\d\d;\)$"
    )
    assert [r for r in rules_of(render(content())) if not pattern.match(r)] == []


def test_the_ip_only_range_rules_are_thresholded_and_name_the_range_its_confidence_and_dates():
    star_rules = [r for r in rules_of(render(content())) if r.startswith("alert ip ") and "175.45.176.0/22" in r]
    wanted = ("threshold:type limit", "nk_range kp-star-jv", "nk_confidence high", "nk_first_seen 2017_04_01")
    assert [all(w in r for w in wanted) for r in star_rules] == [True, True]


def test_the_vars_file_defines_nk_nets_from_every_range():
    satgate = dataclasses.replace(STAR, name="kp-satgate", cidr=ipaddress.ip_network("77.94.35.0/24"))
    doc = yaml.safe_load(render(content(STAR, satgate))[VARS_FILE])
    assert doc == {"NK_NETS": "[175.45.176.0/22,77.94.35.0/24]"}


def test_the_relay_dataset_holds_the_bundled_ipv6_relays_one_address_a_line():
    files = render(SensorContent(load_catalogue(), load_tor_list()))
    lines = files["nksensor-tor-relay.lst"].splitlines()
    parsed = [ipaddress.ip_address(line) for line in lines]
    assert (len(lines) > 5000, any(a.version == 6 for a in parsed)) == (True, True)


def test_the_bittorrent_everywhere_rules_are_in_their_own_file_without_nk_nets():
    everywhere = rules_of({MAIN_RULES: "", BITTORRENT_ALL_RULES: render(content())[BITTORRENT_ALL_RULES]})
    headers = {" ".join(r.split()[2:7]) for r in everywhere}
    assert (len(everywhere), headers) == (6, {"any any -> any any"})


# -- hostile content ----------------------------------------------------------------------

INJECTED = 'alert ip any any -> any any (msg:"injected"; sid:1659998; rev:1;)'


@pytest.mark.parametrize(("field", "value", "complaint"), [
    ("name", 'kp"; sid:1; rev:1;)', "name must match"),
    ("name", "kp-star-jv\nalert", "name must match"),
    ("cidr", "0.0.0.0/0 any -> any any (msg:\"x\"; sid:1;)", "cidr must be a network"),
    ("confidence", "high, signature_severity Critical", "confidence must be one of"),
    ("country", "KP; drop", "country must be a two-letter code"),
    ("first_seen", "2017_04_01, nk_range other", "first_seen must be a date"),
])
def test_a_hostile_range_field_is_refused_with_a_message_naming_it(field, value, complaint):
    hostile = dataclasses.replace(STAR, **{field: value})
    with pytest.raises(SuricataRenderError, match=complaint):
        render(content(hostile))


def test_a_tor_entry_that_is_not_an_address_is_refused():
    hostile = TorList(entries={"x": TorEntry("1.2.3.4\nalert ip any any", "exit", None, FEED_DATE, "f")})
    with pytest.raises(SuricataRenderError, match="is not an IP address"):
        render(content(tor=hostile))


def hostile_text_content() -> SensorContent:
    evil_owner = dataclasses.replace(
        STAR, owner=f"Owner\n{INJECTED}", source=f"src\r\n{INJECTED}\u2028{INJECTED}",
    )
    return content(evil_owner, tor=tor_list(name=f"feed\n{INJECTED}"), description=f"d\n{INJECTED}")


def test_hostile_owner_source_description_and_feed_name_stay_inside_comments():
    files = hostile_text_content()
    rendered = render(files)
    assert [line for line in rules_of(rendered) + rendered[VARS_FILE].splitlines()
            if "injected" in line and line.startswith("alert")] == []


@needs_suricata
def test_rules_rendered_from_hostile_text_still_pass_suricata_T(tmp_path):
    suricata_T(write(render(hostile_text_content()), tmp_path))


def test_msg_escaping_backslashes_quotes_and_semicolons():
    assert escape_msg('a"b;c\\d\ne') == 'a\\"b\\;c\\\\d?e'


def test_metadata_values_cannot_open_a_new_key_or_end_the_option():
    hostile = "high, signature_severity Critical; sid:1"
    assert metadata_value(hostile) == "high__signature_severity_Critical__sid_1"


@needs_suricata
def test_a_rule_with_a_hostile_message_loads_and_keeps_its_own_sid(tmp_path):
    files = render(content())
    spec = RuleSpec(key="test:hostile", proto="ip", src="any", arrow="->", dst="any",
                    msg='x"; sid:1; rev:1;) alert ip any any -> any any (msg:"y\\', options=(),
                    classtype="bad-unknown", severity="Minor")
    hostile_rule = rule_text(spec, 1659990, 1, "2024_01_01", "2024_01_01")
    files[MAIN_RULES] += hostile_rule + "\n"
    suricata_T(write(files, tmp_path))  # raises if the escaped message broke the rule
    assert re.findall(r"(?<![\\])\bsid:(\d+);", hostile_rule) == ["1659990"]


@needs_suricata
def test_a_tor_list_without_relays_gives_an_empty_dataset_that_still_loads(tmp_path):
    files = render(content(tor=tor_list(relays=())))
    suricata_T(write(files, tmp_path))
    assert files["nksensor-tor-relay.lst"] == ""
