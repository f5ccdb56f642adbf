"""The report over real Zeek 7.0.11 logs of Zeek's own test traces, with a test catalogue.

The catalogue marks each trace's client network as a range, so the real logs stand in for
NK traffic: ``tls__ssl.v3`` (3 TLSv10 RC4-MD5 connections from 192.150.187.164),
``wikipedia`` (a browsing session from 141.142.220.0/24) and ``bittorrent__tracker`` (one
tracker announce from 10.0.0.201). Expected values were read off the log rows by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import catalogue_yaml

from sensor_plugins.cli import main

FIXTURES = Path(__file__).parent / "fixtures"

LOGS = FIXTURES / "zeek7"
RANGES = (("test-uiuc", "141.142.220.0/24"), ("test-icsi", "192.150.187.0/24"), ("test-lab", "10.0.0.0/24"))


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report-real")
    catalogue = root / "catalogue.yaml"
    catalogue.write_text(catalogue_yaml(*RANGES))
    out = root / "report.json"
    html = root / "report.html"
    code = main(["report", str(LOGS), "--catalogue", str(catalogue), "--format", "json",
                 "--json", str(out), "--html", str(html)])
    assert code == 0
    return {"json": json.loads(out.read_text()), "html": html.read_text()}


def test_the_three_rc4_connections_are_all_weak_encrypted_traffic(real):
    # conn.log: 6012+121583, 842+3613, 4879+32965 = 169,894 bytes, all TLSv10 RC4-MD5.
    protection = real["json"]["protection"]
    encrypted, weak = protection["classes"]["encrypted"], protection["weak"]
    assert (encrypted["connections"], encrypted["bytes"], weak["connections"], weak["connection_share"]) == (
        3, 169_894, 3, 1.0
    )


def test_the_wikipedia_client_network_counts_31_connections(real):
    # Rows with a 141.142.220.x end: 14 to the resolver 141.142.2.2, 9 HTTP to 208.80.152.x,
    # 1 HTTP attempt to 173.192.163.128, 5 mDNS/LLMNR multicast and 2 NetBIOS broadcasts.
    ranges = {r["range"]: r["connections"] for r in real["json"]["overview"]["ranges"]}
    assert ranges == {"test-uiuc": 31, "test-icsi": 3, "test-lab": 1}


def test_the_resolvers_search_domain_puts_four_queries_under_academic(real):
    # dns.log holds 4 queries for upload.wikimedia.org.ncsa.uiuc.edu (the campus search domain).
    academic = next(c for c in real["json"]["activity"]["categories"] if c["category"] == "academic")
    assert (academic["dns_queries"], academic["top_domains"]) == (
        4, [{"domain": "upload.wikimedia.org.ncsa.uiuc.edu", "observations": 4}]
    )


def test_the_tracker_announce_is_torrent_activity(real):
    # One announce to port 6969 on 2018-07-15: 369 + 505 bytes.
    assert real["json"]["torrents"] == [
        {"host": "10.0.0.201", "day": "2018-07-15", "connections": 1, "bytes": 874, "peers": 1}
    ]


def test_an_eleven_year_span_lists_only_days_with_traffic(real):
    # 3 days with traffic (2007-02-05, 2011-03-19, 2018-07-15) in a 4,179-day span.
    daily_rows = real["html"].split("Daily connections and bytes per range")[1].split("</table>")[0]
    assert (len(real["json"]["timeline"]["days"]), daily_rows.count("<tr><td>")) == (4179, 3)
