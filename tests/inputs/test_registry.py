"""Reading the published sources: RIR delegated files, RouteViews pfx2as tables, GeoIP databases.

Each reader is strict: a bad line is an error naming the file and line, never skipped.
"""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from registry_history import HISTORY, write_geoip

from sensor_plugins.inputs.registry import (
    Pfx2asFile,
    RegistryError,
    count_to_cidrs,
    load_delegated,
    load_geoip_networks,
    load_pfx2as,
    parse_delegated,
    parse_pfx2as,
)

FIXTURES = Path(__file__).parent / "fixtures" / "registry"
APNIC_EXCERPT = FIXTURES / "delegated-apnic-20110113-excerpt"
HEADER = "2|apnic|20261130|{n}|19830613|20261130|+1000\n"


def delegated(*records: str, count: int | None = None) -> str:
    n = len(records) if count is None else count
    return HEADER.format(n=n) + "".join(f"{r}\n" for r in records)


def test_the_real_apnic_record_of_star_jv_is_one_kp_slash_22():
    f = load_delegated(APNIC_EXCERPT)
    kp = f.for_country("KP")
    assert (f.registry, f.date, [(str(r.cidr), r.status, r.date) for r in kp]) == (
        "apnic", dt.date(2011, 1, 12), [("175.45.176.0/22", "assigned", dt.date(2010, 1, 22))])


def test_ipv6_value_is_a_prefix_length_and_asn_records_are_counted_but_not_kept():
    f = load_delegated(APNIC_EXCERPT)
    assert ([str(r.cidr) for r in f.records if r.cidr.version == 6][:2], len(f.records)) == (
        ["2001:200::/35", "2001:200:2000::/35"], 7)


def test_an_address_count_that_is_not_a_power_of_two_becomes_several_cidrs():
    f = parse_delegated(delegated("apnic|KP|ipv4|175.45.184.0|768|20260825|allocated|H1"), "f")
    assert [str(r.cidr) for r in f.records] == ["175.45.184.0/23", "175.45.186.0/24"]


def test_the_extended_opaque_id_is_the_holder_and_free_space_is_not_held():
    f = parse_delegated(delegated("apnic|KP|ipv4|175.45.184.0|256|20260825|allocated|A91A4A2E",
                                  "apnic|ZZ|ipv4|175.45.185.0|256|00000000|available|",
                                  "apnic||ipv4|175.45.186.0|256||reserved"), "f")
    assert [(str(r.cidr), r.holder) for r in f.records] == [("175.45.184.0/24", "A91A4A2E")]


def test_gzipped_files_are_read_as_published(tmp_path):
    path = tmp_path / "delegated-apnic-20110113.gz"
    path.write_bytes(gzip.compress(APNIC_EXCERPT.read_bytes()))
    assert load_delegated(path).for_country("KP")[0].cidr == ipaddress.ip_network("175.45.176.0/22")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apnic|KP|ipv4|175.45.176.0|1024|20100122|assigned\n", "line 1: expected the version line"),
        (delegated("apnic|KP|ipv4|175.45.176.0|1024|20100122|granted"), "line 2: status must be one of"),
        (delegated("apnic|KP|ipv4|175.45.176.0|1024|2010012|assigned"), "line 2: date: must be a date YYYYMMDD"),
        (delegated("apnic|KP|ipv4|175.45.176.0|1024|20100231|assigned"), "line 2: date: not a calendar date"),
        (delegated("apnic|Kp|ipv4|175.45.176.0|1024|20100122|assigned"), "line 2: country must be"),
        (delegated("apnic|KP|ipv4|175.45.300.0|1024|20100122|assigned"), "line 2: invalid IPv4 block"),
        (delegated("apnic|KP|ipv4|255.255.255.0|1024|20100122|assigned"), "runs past 255.255.255.255"),
        (delegated("apnic|KP|ipv4|175.45.176.0|0|20100122|assigned"), "address count must be positive"),
        (delegated("apnic|KP|ipv6|2001:200::1|35|20100122|assigned"), "line 2: invalid IPv6 block"),
        (delegated("apnic|KP|ipx|175.45.176.0|1024|20100122|assigned"), "line 2: type must be one of"),
        (delegated("apnic|KP|ipv4|175.45.176.0|1024|20100122"), "line 2: expected a record"),
        (delegated("apnic|KP|ipv4|175.45.176.0|1024|20100122|assigned|<script>"), "invalid opaque holder id"),
        (delegated("apnic|KP|ipv4|175.45.176.0|1024|20100122|assigned", count=2),
         "announces 2 records but the file holds 1"),
        (HEADER.format(n=1) + "apnic|*|ipv4|*|3|summary\napnic|KP|ipv4|175.45.176.0|1024|20100122|assigned\n",
         "announces 3 ipv4 records but the file holds 1"),
        ("# only a comment\n", "empty delegated file"),
    ],
)
@pytest.mark.parametrize("country", [None, "KP", "JP"])
def test_bad_delegated_lines_are_errors_with_file_and_line(tmp_path, text, message, country):
    # Records of other countries are not kept, but are checked just as strictly.
    path = tmp_path / "delegated-apnic-20261130"
    path.write_text(text, encoding="ascii")
    with pytest.raises(RegistryError) as info:
        load_delegated(path, country)
    assert (str(path) in str(info.value), message in str(info.value), "\n" in str(info.value)) == (True, True, False)


@given(start=st.integers(0, 2**32 - 1), count=st.integers(1, 2**32))
def test_count_to_cidrs_covers_exactly_the_span_without_overlap(start, count):
    if start + count > 2**32:
        with pytest.raises(ValueError):
            count_to_cidrs(ipaddress.IPv4Address(start), count)
        return
    cidrs = count_to_cidrs(ipaddress.IPv4Address(start), count)
    spans = sorted((int(c.network_address), int(c.broadcast_address)) for c in cidrs)
    contiguous = all(a_end + 1 == b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert (spans[0][0], spans[-1][1], contiguous, sum(c.num_addresses for c in cidrs)) == (
        start, start + count - 1, True, count)


def test_pfx2as_reads_multi_origin_and_as_set_rows():
    f = load_pfx2as(HISTORY / "routeviews-rv2-20261001-1200.pfx2as")
    rows = {str(a.cidr): (a.origins, a.label) for a in f.announcements()}
    assert (f.date, rows["175.45.188.0/23"], rows["175.45.190.0/24"], rows["8.8.8.0/24"]) == (
        dt.date(2026, 10, 1),
        (frozenset({131279, 64501}), "AS131279_AS64501"),
        (frozenset({64500, 131279}), "{AS64500,AS131279}"),
        (frozenset({15169}), "AS15169"),
    )


def test_pfx2as_ipv6_rows_and_gzip(tmp_path):
    path = tmp_path / "routeviews-rv6-20261130-1200.pfx2as.gz"
    path.write_bytes(gzip.compress(b"2001:200::\t32\t2500\n2400:8900::\t29\t131279_4837,9808\n"))
    f = load_pfx2as(path)
    assert [(str(a.cidr), sorted(a.origins)) for a in f.announcements()] == [
        ("2001:200::/32", [2500]), ("2400:8900::/29", [4837, 9808, 131279])]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("175.45.176.0\t22", "expected prefix<TAB>length<TAB>origin"),
        ("175.45.176.0\t33\t131279", "prefix length 33 is longer than 32"),
        ("175.45.176.1\t22\t131279", "host bits set in 175.45.176.1/22"),
        ("175.45.176.0\t22\tAS131279", "origin must be AS numbers"),
        ("175.45.176.0\t22\t131279__1", "origin must be AS numbers"),
        ("175.045.176.0\t22\t131279", "invalid prefix"),
        ("175.45.176.0\tx\t131279", "prefix length must be a number"),
    ],
)
def test_bad_pfx2as_rows_are_errors_with_file_and_line(line, message):
    with pytest.raises(RegistryError, match=f"^t.pfx2as: line 2: {message}"):
        parse_pfx2as(f"8.8.8.0\t24\t15169\n{line}\n", "t.pfx2as", dt.date(2026, 11, 30))


def test_a_latest_link_takes_the_date_of_the_file_it_points_at(tmp_path):
    link = tmp_path / "routeviews-rv2-latest.pfx2as"
    link.symlink_to(HISTORY / "routeviews-rv2-20261101-1200.pfx2as")
    assert load_pfx2as(link).date == dt.date(2026, 11, 1)


def test_a_pfx2as_file_without_a_date_in_its_name_is_refused(tmp_path):
    path = tmp_path / "table.pfx2as"
    path.write_text("8.8.8.0\t24\t15169\n", encoding="ascii")
    with pytest.raises(RegistryError, match="cannot tell the date"):
        load_pfx2as(path)


def test_geoip_gives_every_network_of_the_country_merged_and_dated(tmp_path):
    db = write_geoip(HISTORY / "geoip-20261001.json", tmp_path / "g.mmdb")
    geo = load_geoip_networks(db, "KP")
    assert (geo.date, [str(n) for n in geo.networks]) == (dt.date(2026, 10, 1), [
        "175.45.176.0/22", "175.45.184.0/23", "175.45.186.0/24", "175.45.188.0/23", "175.45.192.0/24",
        "210.52.109.0/24"])


def test_a_file_that_is_not_an_mmdb_is_an_error(tmp_path):
    path = tmp_path / "bad.mmdb"
    path.write_bytes(b"not a database")
    with pytest.raises(RegistryError, match="not a MaxMind DB file"):
        load_geoip_networks(path, "KP")


prefixes = st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(8, 24), st.sampled_from(["1", "2_3", "4,5"])),
                    max_size=40)


@given(rows=prefixes, query=st.tuples(st.integers(0, 2**16 - 1), st.integers(8, 24)))
def test_pfx2as_overlapping_finds_exactly_the_rows_a_full_scan_finds(rows, query):
    def net(high: int, length: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((high << 16, 32), strict=False).supernet(new_prefix=length)

    table = Pfx2asFile.of("t", dt.date(2026, 11, 30), {(net(h, n), o) for h, n, o in rows})
    q = net(*query)
    fast = sorted((str(a.cidr), a.origin) for a in table.overlapping(q))
    slow = sorted((str(a.cidr), a.origin) for a in table.announcements() if a.cidr.overlaps(q))
    assert fast == slow


def test_geoip_records_with_hostile_or_odd_codes_are_not_the_country(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"build_date": "2026-11-30", "networks": {
        "175.45.176.0/22": {"country": {"iso_code": "KP"}},
        "175.45.184.0/24": {"country": {"iso_code": "<b>KP</b>"}},
        "175.45.185.0/24": {"country": "KP\n"},
        "175.45.186.0/24": {"country_code": "KP"},
    }}))
    geo = load_geoip_networks(write_geoip(spec, tmp_path / "g.mmdb"), "KP")
    assert [str(n) for n in geo.networks] == ["175.45.176.0/22", "175.45.186.0/24"]


def test_a_truncated_gzip_download_is_an_error_not_a_shorter_table(tmp_path):
    path = tmp_path / "routeviews-rv2-20261130-1200.pfx2as.gz"
    whole = gzip.compress((HISTORY / "routeviews-rv2-20261101-1200.pfx2as").read_bytes() * 50)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RegistryError, match=r"pfx2as.gz: cannot read pfx2as table: Compressed file ended"):
        load_pfx2as(path)
