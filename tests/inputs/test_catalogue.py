"""The catalogue loader: the bundled default, and every way a catalogue is refused."""

from __future__ import annotations

import ipaddress

import pytest
from conftest import catalogue_yaml

from sensor_plugins.inputs.catalogue import CatalogueError, load_catalogue, parse_catalogue


def test_default_catalogue_holds_the_three_ranges_of_the_2017_study():
    cat = load_catalogue()
    assert {(r.name, str(r.cidr), r.confidence) for r in cat.ranges} == {
        ("kp-star-jv", "175.45.176.0/22", "high"),
        ("kp-china-netcom", "210.52.109.0/24", "medium"),
        ("kp-satgate", "77.94.35.0/24", "medium"),
    }


def test_default_catalogue_marks_star_jv_as_as131279_and_the_others_historical():
    cat = load_catalogue()
    assert (cat.by_name("kp-star-jv").asn, cat.by_name("kp-star-jv").historical,
            cat.by_name("kp-china-netcom").historical, cat.by_name("kp-satgate").historical) == (
        131279, False, True, True)


def test_lookup_finds_the_range_of_an_address():
    assert load_catalogue().lookup("175.45.179.255").name == "kp-star-jv"


def test_lookup_of_an_outside_address_is_none():
    assert load_catalogue().lookup("175.45.180.1") is None


def test_ipv6_ranges_are_accepted(write_catalogue):
    cat = load_catalogue(write_catalogue(catalogue_yaml(("v6-net", "2001:db8:kp::/48".replace("kp", "1")))))
    assert cat.ranges[0].cidr == ipaddress.ip_network("2001:db8:1::/48")


def _error(write_catalogue, text: str) -> str:
    path = write_catalogue(text)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    assert str(path) in message, "errors must name the file"
    return message


def test_invalid_cidr_is_refused_naming_entry_and_field(write_catalogue):
    msg = _error(write_catalogue, catalogue_yaml(("bad", "175.45.300.0/22")))
    assert "ranges[0] (bad): field 'cidr': invalid CIDR" in msg


def test_host_bits_set_is_refused(write_catalogue):
    msg = _error(write_catalogue, catalogue_yaml(("bad", "175.45.176.1/22")))
    assert "field 'cidr': host bits set" in msg


def test_duplicate_name_is_refused(write_catalogue):
    msg = _error(write_catalogue, catalogue_yaml(("same", "10.0.0.0/24"), ("same", "10.0.1.0/24")))
    assert "ranges[1] (same): field 'name' duplicates ranges[0]" in msg


def test_duplicate_cidr_is_refused(write_catalogue):
    msg = _error(write_catalogue, catalogue_yaml(("one", "10.0.0.0/24"), ("two", "10.0.0.0/24")))
    assert "ranges[1] (two): field 'cidr' 10.0.0.0/24 duplicates ranges[0]" in msg


def test_overlapping_ranges_are_refused(write_catalogue):
    msg = _error(write_catalogue, catalogue_yaml(("wide", "10.0.0.0/16"), ("inner", "10.0.5.0/24")))
    assert "ranges[1] (inner): field 'cidr' 10.0.5.0/24 overlaps ranges[0] (wide)" in msg


def test_overlap_is_allowed_when_an_entry_says_so(write_catalogue):
    text = catalogue_yaml(("wide", "10.0.0.0/16"), ("inner", "10.0.5.0/24")) + "    allow_overlap: true\n"
    assert len(load_catalogue(write_catalogue(text)).ranges) == 2


def test_overlap_is_found_behind_an_allowed_one(write_catalogue):
    text = catalogue_yaml(("wide", "10.0.0.0/8"), ("mid", "10.1.0.0/16"))
    text += "    allow_overlap: true\n" + catalogue_yaml(("inner", "10.2.3.0/24")).split("ranges:\n")[1]
    assert "ranges[2] (inner)" in _error(write_catalogue, text)


def test_unknown_range_key_is_refused(write_catalogue):
    text = catalogue_yaml(("net", "10.0.0.0/24")) + "    colour: red\n"
    assert "ranges[0] (net): unknown key 'colour'" in _error(write_catalogue, text)


def test_unknown_top_level_key_is_refused(write_catalogue):
    assert "unknown top-level key 'rangez'" in _error(write_catalogue, "rangez: []\n")


@pytest.mark.parametrize("name", ["Upper", "has space", "a" * 41, "semi;colon", "quote\"d", "dot.ted", ""])
def test_name_outside_the_slug_charset_is_refused(write_catalogue, name):
    text = catalogue_yaml(("placeholder", "10.0.0.0/24")).replace("placeholder", yaml_str(name))
    msg = _error(write_catalogue, text)
    assert "field 'name'" in msg


@pytest.mark.parametrize("bad", ["line\\nbreak", "tab\\there", "nul\\0", "bell\\a", "rtl\\u202eoverride"])
def test_control_characters_in_text_are_refused(write_catalogue, bad):
    text = catalogue_yaml(("net", "10.0.0.0/24")) + f'    notes: "{bad}"\n'
    assert "field 'notes': control character" in _error(write_catalogue, text)


def test_unknown_confidence_is_refused(write_catalogue):
    msg = _error(write_catalogue, catalogue_yaml(("net", "10.0.0.0/24"), confidence="certain"))
    assert "field 'confidence' must be one of high, medium, low" in msg


def test_missing_required_field_is_refused(write_catalogue):
    text = catalogue_yaml(("net", "10.0.0.0/24")).replace("    source: Test source\n", "")
    assert "ranges[0] (net): field 'source' is required" in _error(write_catalogue, text)


def test_last_seen_before_first_seen_is_refused(write_catalogue):
    text = catalogue_yaml(("net", "10.0.0.0/24")) + "    first_seen: 2017-05-01\n    last_seen: 2017-04-01\n"
    assert "'last_seen' is before 'first_seen'" in _error(write_catalogue, text)


def test_a_yaml_bomb_is_refused_before_it_expands(write_catalogue):
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        bomb += f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
    assert "anchors and aliases are not allowed" in _error(write_catalogue, bomb)


def test_a_list_document_is_refused(write_catalogue):
    assert "the document must be a mapping" in _error(write_catalogue, "- 10.0.0.0/8\n")


def test_an_empty_document_is_refused(write_catalogue):
    assert "the document must be a mapping" in _error(write_catalogue, "")


def test_broken_yaml_names_the_line(write_catalogue):
    assert "line 4: invalid YAML" in _error(write_catalogue, "version: 1\nranges:\n  - name: x\n cidr: y\n")


def test_a_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        load_catalogue(tmp_path / "nope.yaml")


def test_sid_block_outside_the_local_range_is_refused():
    with pytest.raises(CatalogueError, match="sid_block"):
        parse_catalogue(catalogue_yaml(("net", "10.0.0.0/24"), extra="sid_block: [2000000, 2000100]\n"))


def yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
