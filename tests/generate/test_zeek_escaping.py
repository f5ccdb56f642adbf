"""Hostile catalogue and feed text must reach the Zeek package inert."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path

import pytest
import zeekscript
from conftest import catalogue_yaml

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.zeek import (
    RANGES_TSV,
    render,
    tsv_field,
    tsv_unescape,
    zeek_comment,
    zeek_string,
)
from sensor_plugins.inputs.catalogue import Catalogue, CatalogueError, Range, parse_catalogue
from sensor_plugins.inputs.feeds import TorEntry, TorFeed, TorList

HOSTILE = [
    'quote " and backslash \\ end',
    'close"); @load evil; print("',
    "semicolon; paren) brace} bracket]",
    "percent %s %d %%",
    "@load base/misc/dump-events",
    "backslash-x \\x41 literal",
    "tab\there",
    "non-ASCII: Рёгён-дон 평양 “quotes” — dash",
    "# not a comment",
    "-",
    "(empty)",
]


def unquote_zeek(literal: str) -> str:
    """Decode a Zeek string literal the way Zeek's scanner does for the escapes we emit."""
    assert literal.startswith('"') and literal.endswith('"')
    body = literal[1:-1]
    raw = bytearray()
    i = 0
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] == "x":
                raw.append(int(body[i + 2 : i + 4], 16))
                i += 4
                continue
            raw.append(ord(body[i + 1]))
            i += 2
            continue
        raw.append(ord(body[i]))
        i += 1
    return raw.decode("utf-8")


@pytest.mark.parametrize("text", HOSTILE)
def test_zeek_string_round_trips_and_stays_one_printable_literal(text: str) -> None:
    literal = zeek_string(text)
    inner = literal[1:-1]
    unescaped_quote = re.search(r'(?<!\\)(\\\\)*"', inner)
    assert (unquote_zeek(literal), unescaped_quote, literal.isascii() and literal.isprintable()) == (
        text, None, True
    )


@pytest.mark.parametrize("text", [*HOSTILE, "line\nbreak", "carriage\rreturn", "nul\x00byte"])
def test_zeek_comment_is_one_printable_ascii_line(text: str) -> None:
    comment = zeek_comment(text)
    assert comment.isascii() and comment.isprintable()


@pytest.mark.parametrize("text", [*HOSTILE, "line\nbreak", "nul\x00byte", "a,b"])
def test_tsv_field_round_trips_through_zeeks_unescaping(text: str) -> None:
    field = tsv_field(text)
    assert (tsv_unescape(field), "\t" in field or "\n" in field or field.startswith("#")) == (text, False)


@pytest.mark.parametrize("marker", ["-", "(empty)"])
def test_tsv_field_never_writes_a_bare_unset_or_empty_marker(marker: str) -> None:
    assert tsv_field(marker) != marker


def test_tsv_field_writes_an_empty_optional_value_as_unset() -> None:
    assert tsv_field("", optional=True) == "-"


def test_tsv_field_refuses_an_empty_required_value() -> None:
    with pytest.raises(SensorPluginsError, match="ranges\\[0\\] field 'owner'"):
        tsv_field("", where="catalogue ranges[0] field 'owner'")


def test_catalogue_loader_rejects_a_newline_in_owner() -> None:
    text = catalogue_yaml(("kp-a", "175.45.176.0/22")).replace("owner: Test owner", 'owner: "a\\nb"')
    with pytest.raises(CatalogueError, match="field 'owner': control character U\\+000A"):
        parse_catalogue(text)


def hostile_content(text: str) -> SensorContent:
    # Built directly, bypassing the loader's checks, to show the renderer alone copes.
    rng = Range(
        name=f'evil"name;{text}', cidr=ipaddress.ip_network("175.45.176.0/22"), country='K"P',
        owner=text, source=f"source {text}", confidence="high", asn=131279,
        first_seen=dt.date(2017, 4, 1), last_seen=None, notes=f"notes {text}",
    )
    entry = TorEntry("192.0.2.9", "exit", None, dt.date(2024, 2, 27), f"feed {text}")
    feed = TorFeed(f"feed {text}", "plain", dt.date(2024, 2, 27), (entry,), source=text)
    return SensorContent(Catalogue(ranges=(rng,), description=f"desc {text}"), TorList((feed,), {entry.address: entry}))


def write(files: dict[str, str], out: Path) -> None:
    for rel, body in files.items():
        (out / rel).write_text(body, encoding="utf-8")


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_catalogue_text_renders_scripts_that_still_parse(text: str, tmp_path: Path) -> None:
    write(render(hostile_content(text)).files, tmp_path)
    broken = [p.name for p in tmp_path.glob("*.zeek") if not zeekscript.Script(p).parse()]
    assert broken == []


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_owner_appears_in_defaults_only_inside_string_literals_and_comments(text: str) -> None:
    defaults = render(hostile_content(text)).files["defaults.zeek"]
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', defaults)
    code = re.sub(r"#[^\n]*", "", code)
    assert ("@load evil" not in code, "print(" not in code, zeek_string(text) in defaults) == (True, True, True)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_owner_round_trips_through_the_ranges_tsv(text: str) -> None:
    lines = [ln for ln in render(hostile_content(text)).files[RANGES_TSV].splitlines() if not ln.startswith("#")]
    fields = lines[0].split("\t")
    assert (len(lines), len(fields), tsv_unescape(fields[3])) == (1, 10, text)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_feed_name_round_trips_through_the_tor_tsv(text: str) -> None:
    tor = render(hostile_content(text)).files["tor-relays.tsv"]
    row = next(ln for ln in tor.splitlines() if not ln.startswith("#")).split("\t")
    assert (len(row), tsv_unescape(row[2])) == (4, f"feed {text}")


def test_hostile_text_never_starts_a_data_line_with_a_hash() -> None:
    files = render(hostile_content("# not a comment")).files
    data_lines = [ln for name in ("nk-ranges.tsv", "tor-relays.tsv", "nk-intel.dat")
                  for ln in files[name].splitlines() if not ln.startswith("#")]
    assert all("#" not in ln for ln in data_lines)


def test_header_comments_cannot_be_broken_by_a_newline_in_the_description() -> None:
    content = hostile_content("x")
    content = SensorContent(Catalogue(content.catalogue.ranges, description="a\n@load evil"), content.tor)
    main = render(content).files["main.zeek"]
    assert [ln for ln in main.splitlines() if ln.startswith("@load evil")] == []


def test_range_with_a_non_network_cidr_is_refused() -> None:
    content = hostile_content("x")
    bad = Range(name="bad", cidr="1.2.3.0/24\n@load evil", country="KP", owner="o", source="s",  # type: ignore[arg-type]
                confidence="high")
    with pytest.raises(SensorPluginsError, match="ranges\\[0\\]: field 'cidr' is not a network"):
        render(SensorContent(Catalogue(ranges=(bad,)), content.tor))


def test_tor_entry_with_a_non_address_is_refused() -> None:
    entry = TorEntry("1.2.3.4\t#evil", "exit")
    with pytest.raises(SensorPluginsError, match="not an IP address"):
        render(SensorContent(hostile_content("x").catalogue, TorList((), {entry.address: entry})))
