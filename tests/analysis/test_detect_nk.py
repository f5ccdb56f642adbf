"""NK tagging (vectorised range lookup) and the per-day nk-traffic summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.detect import detect, tag_nk
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"


def catalogue_file(tmp_path: Path, ranges: dict[str, str]) -> Path:
    lines = ["ranges:"]
    for name, cidr in ranges.items():
        lines += [f"  - name: {name}", f"    cidr: {cidr}", "    country: ZZ", "    owner: test",
                  "    source: test catalogue covering real logs", "    confidence: low", "    allow_overlap: true"]
    path = tmp_path / "catalogue.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def tagged(addresses: list[tuple[str, str]], catalogue) -> pl.DataFrame:
    frame = pl.LazyFrame(addresses, schema=["id.orig_h", "id.resp_h"], orient="row")
    return tag_nk(frame, catalogue).collect()


@pytest.fixture(scope="module")
def bundled():
    return load_catalogue()


@pytest.mark.parametrize(("address", "expected"), [
    ("175.45.176.0", "kp-star-jv"), ("175.45.179.255", "kp-star-jv"), ("175.45.180.0", None),
    ("175.45.175.255", None), ("210.52.109.7", "kp-china-netcom"), ("77.94.35.1", "kp-satgate"),
    ("175.45.176.1.5", None), ("999.45.176.1", None), ("175.45.176", None), ("", None),
    ("2001:db8::1", None),
])
def test_bundled_ranges_tag_exactly_their_addresses(address, expected, bundled) -> None:
    assert tagged([("192.0.2.1", address)], bundled)["nk_range"].to_list() == [expected]


def test_nested_ranges_pick_the_most_specific(tmp_path) -> None:
    catalogue = load_catalogue(catalogue_file(tmp_path, {"wide": "10.0.0.0/8", "narrow": "10.1.2.0/24"}))
    frame = tagged([("10.1.2.3", "192.0.2.1"), ("10.1.3.3", "192.0.2.1"), ("10.255.0.1", "192.0.2.1")], catalogue)
    assert frame["nk_range"].to_list() == ["narrow", "wide", "wide"]


def test_ipv6_ranges_are_tagged(tmp_path) -> None:
    catalogue = load_catalogue(catalogue_file(tmp_path, {"v6": "2001:db8:1::/48", "v4": "192.0.2.0/24"}))
    frame = tagged([("2001:db8:1::5", "2001:db8:2::5"), ("198.51.100.1", "192.0.2.9")], catalogue)
    assert frame["nk_range"].to_list() == ["v6", "v4"]


def test_side_host_and_peer_follow_the_catalogued_end(bundled) -> None:
    frame = tagged([("192.0.2.1", "175.45.176.9")], bundled)
    assert frame.select("nk_side", "nk_host", "peer_h").row(0) == ("resp", "175.45.176.9", "192.0.2.1")


def conn_with_tags(tmp_path: Path, nk_range: str, nk_side: str) -> Path:
    lines = (ZAT / "conn.log").read_text().splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith(("#fields", "#types")):
            extra = "\tnk_range\tnk_side" if line.startswith("#fields") else "\tstring\tstring"
            out.append(line.rstrip("\n") + extra + "\n")
        elif line.startswith("#"):
            out.append(line)
        elif "\t54.230.86.87\t" in line:
            out.append(line.rstrip("\n") + f"\t{nk_range}\t{nk_side}\n")
    path = tmp_path / "conn.log"
    path.write_text("".join(out))
    return path


def test_sensor_tags_in_conn_log_are_used(tmp_path, bundled) -> None:
    # A sensor running our Zeek package tagged this peer; the catalogue here does not hold it.
    logs = load_logset([conn_with_tags(tmp_path, "kp-star-jv", "resp")])
    frame = tag_nk(logs.conn, bundled).collect()
    assert set(frame["nk_range"]) == {"kp-star-jv"} and set(frame["nk_host"]) == {"54.230.86.87"}


def test_hostile_range_name_in_conn_log_is_not_trusted(tmp_path, bundled) -> None:
    logs = load_logset([conn_with_tags(tmp_path, "<script>alert(1)</script>", "resp")])
    assert tag_nk(logs.conn, bundled).collect()["nk_range"].null_count() > 0


def expected_groups(path: Path, nk_prefix: str) -> Counter:
    """(nk host, peer, service, day) -> connections, counted with the csv module."""
    groups: Counter = Counter()
    with path.open() as handle:
        fields: list[str] = []
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row[0] == "#fields":
                fields = row[1:]
            if row[0].startswith("#"):
                continue
            rec = dict(zip(fields, row, strict=True))
            orig, resp = rec["id.orig_h"], rec["id.resp_h"]
            host, peer = (orig, resp) if orig.startswith(nk_prefix) else (resp, orig)
            if not host.startswith(nk_prefix):
                continue
            day = datetime.fromtimestamp(float(rec["ts"]), UTC).date().isoformat()
            service = None if rec["service"] == "-" else rec["service"]
            groups[(host, peer, service, day)] += 1
    return groups


def nk_findings(tmp_path: Path, scope: str = "nk") -> pl.DataFrame:
    catalogue = load_catalogue(catalogue_file(tmp_path, {"test-lab": "192.168.33.0/24"}))
    frame = detect(load_logset([ZAT / "conn.log"]), catalogue, load_tor_list(), scope=scope)
    return frame.filter(pl.col("reason") == "nk-traffic")


def test_nk_traffic_is_one_finding_per_host_peer_service_day(tmp_path) -> None:
    found = nk_findings(tmp_path)
    got = Counter({
        (r["orig_h"], r["resp_h"], json.loads(r["evidence"])["service"], json.loads(r["evidence"])["day"]):
        json.loads(r["evidence"])["connections"]
        for r in found.iter_rows(named=True)
    })
    assert got == expected_groups(ZAT / "conn.log", "192.168.33.")


def test_nk_traffic_counts_bytes_of_both_directions(tmp_path) -> None:
    found = nk_findings(tmp_path)
    evidence = [json.loads(e) for e in found["evidence"]]
    assert all(e["bytes"] == e["orig_bytes"] + e["resp_bytes"] for e in evidence)


def test_nk_traffic_takes_confidence_from_the_range(tmp_path) -> None:
    assert set(nk_findings(tmp_path)["confidence"]) == {"low"}


def test_real_logs_have_no_nk_traffic_with_the_bundled_catalogue(bundled) -> None:
    frame = detect(load_logset([ZAT / "conn.log"]), bundled, load_tor_list(), scope="nk")
    assert frame.height == 0
