"""The report's computations on small hand-built frames whose numbers are worked out in the comments."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from sensor_plugins.analysis.findings import FINDING_SCHEMA
from sensor_plugins.report.categories import load_categories
from sensor_plugins.report.metrics import (
    activity_profile,
    count_findings,
    domain_observations,
    finding_uids,
    overview,
    peer_countries,
    prepare_conn,
    protection_classes,
    protection_share,
    split_days,
    timeline,
    tor_hosts,
    tor_uses,
    torrent_days,
)

UTC = dt.UTC
RANGES = ["kp-star-jv", "kp-china-netcom", "kp-satgate"]


def ts(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2017, 7, day, hour, tzinfo=UTC)


def conn_frame(rows: list[tuple]) -> pl.DataFrame:
    """Tagged conn rows: (uid, day, nk_range, nk_side, nk_host, peer_h, service, orig_bytes, resp_bytes)."""
    records = []
    for uid, day, rng, side, host, peer, service, ob, rb in rows:
        orig, resp = (host, peer) if side == "orig" else (peer, host)
        records.append(
            {
                "ts": ts(day),
                "uid": uid,
                "id.orig_h": orig,
                "id.resp_h": resp,
                "service": service,
                "orig_bytes": ob,
                "resp_bytes": rb,
                "nk_range": rng,
                "nk_side": side,
                "nk_host": host,
                "peer_h": peer,
            }
        )
    schema = {
        "ts": pl.Datetime("us", "UTC"),
        "uid": pl.Utf8,
        "id.orig_h": pl.Utf8,
        "id.resp_h": pl.Utf8,
        "service": pl.Utf8,
        "orig_bytes": pl.Int64,
        "resp_bytes": pl.Int64,
        "nk_range": pl.Utf8,
        "nk_side": pl.Utf8,
        "nk_host": pl.Utf8,
        "peer_h": pl.Utf8,
    }
    return prepare_conn(pl.DataFrame(records, schema=schema))


def findings_frame(rows: list[dict]) -> pl.DataFrame:
    full = []
    for row in rows:
        base = dict.fromkeys(FINDING_SCHEMA)
        base.update(ts=ts(1), log="conn", severity="medium", confidence="high", evidence="{}")
        base.update(row)
        full.append(base)
    return pl.DataFrame(full, schema=FINDING_SCHEMA)


A, B = "175.45.176.10", "210.52.109.20"

# Six NK connections on 2017-07-01..03:
#   c1 A->peer1 ssl      100 + 900   = 1000 bytes (outbound)
#   c2 A->tor   ssl      50  + 150   =  200 bytes (outbound, Tor exit)
#   c3 peer2->A (none)   0   + 0     =    0 bytes (inbound, no payload: Zeek left bytes unset)
#   c4 B->peer1 http     400 + 3600  = 4000 bytes (outbound)
#   c5 B->peer3 ssh      300 + 300   =  600 bytes (outbound)
#   c6 A->peer1 ssl      2000 + 2000 = 4000 bytes (outbound, weak TLS)
# plus one non-NK row (nk_range null) that must not count.
SAMPLE = [
    ("c1", 1, "kp-star-jv", "orig", A, "93.184.216.34", "ssl", 100, 900),
    ("c2", 1, "kp-star-jv", "orig", A, "185.220.101.5", "ssl", 50, 150),
    ("c3", 2, "kp-star-jv", "resp", A, "8.8.4.4", None, None, None),
    ("c4", 2, "kp-china-netcom", "orig", B, "93.184.216.34", "http", 400, 3600),
    ("c5", 3, "kp-china-netcom", "orig", B, "151.101.1.1", "ssh", 300, 300),
    ("c6", 3, "kp-star-jv", "orig", A, "93.184.216.34", "ssl", 2000, 2000),
    ("x1", 3, None, None, "10.0.0.1", "10.0.0.2", "dns", 50, 50),
]


def test_prepare_conn_keeps_only_nk_rows_and_counts_unset_bytes_as_zero():
    conn = conn_frame(SAMPLE)
    assert (conn.height, conn.filter(pl.col("uid") == "c3")["bytes"].item()) == (6, 0)


def test_overview_counts_hosts_connections_and_bytes_per_range_and_direction():
    conn = conn_frame(SAMPLE)
    result = overview(conn, RANGES, [])
    star = result.ranges[0]
    # kp-star-jv: host A only; c1+c2+c3+c6 = 4 connections, 1000+200+0+4000 = 5200 bytes;
    # outbound c1, c2, c6 = 3 / 5200 bytes, inbound c3 = 1 / 0 bytes.
    assert (star.hosts, star.connections, star.bytes, star.by_direction) == (
        1,
        4,
        5200,
        {"inbound": {"connections": 1, "bytes": 0}, "outbound": {"connections": 3, "bytes": 5200}},
    )


def test_overview_span_covers_first_to_last_nk_connection():
    result = overview(conn_frame(SAMPLE), RANGES, [])
    assert (result.start, result.end, result.days) == (ts(1), ts(3), 3)


def test_findings_are_counted_by_category_and_reason_largest_first():
    pairs = [("tor", "tor-exit"), ("weak-tls", "old-version"), ("tor", "tor-exit")]
    assert [(f.category, f.reason, f.count) for f in count_findings(pairs)] == [
        ("tor", "tor-exit", 2),
        ("weak-tls", "old-version", 1),
    ]


def test_protection_share_of_connections_and_bytes_matches_hand_count():
    conn = conn_frame(SAMPLE)
    # Tor: c2 (analyzer finding). Encrypted: c1, c6 (in ssl.log) and c5 (service ssh).
    # Clear: c3, c4. Total 6 connections, 1000+200+0+4000+600+4000 = 9800 bytes.
    # Connections: anonymised 1/6, encrypted 3/6, clear 2/6.
    # Bytes: anonymised 200/9800, encrypted (1000+600+4000)/9800 = 5600/9800, clear 4000/9800.
    classified = protection_classes(conn, ssl_uids=["c1", "c6", "c2"], tor_uids=["c2"])
    share = protection_share(classified, weak_uids=["c6"])
    got = {
        k: (v.connections, v.bytes, round(v.connection_share, 6), round(v.byte_share, 6))
        for k, v in share.classes.items()
    }
    assert got == {
        "anonymised": (1, 200, round(1 / 6, 6), round(200 / 9800, 6)),
        "encrypted": (3, 5600, 0.5, round(5600 / 9800, 6)),
        "clear": (2, 4000, round(2 / 6, 6), round(4000 / 9800, 6)),
    }


def test_weak_share_is_taken_within_the_encrypted_traffic():
    conn = conn_frame(SAMPLE)
    classified = protection_classes(conn, ssl_uids=["c1", "c6"], tor_uids=["c2"])
    # Weak: c6 = 1 of 3 encrypted connections, 4000 of 5600 encrypted bytes.
    weak = protection_share(classified, weak_uids=["c6"]).weak
    assert (weak.connections, weak.bytes, weak.connection_share, weak.byte_share) == (
        1,
        4000,
        1 / 3,
        4000 / 5600,
    )


def test_a_combined_service_field_such_as_ssl_http_still_counts_as_encrypted():
    conn = conn_frame([("q1", 1, "kp-satgate", "orig", A, "1.1.1.1", "ssl,http", 10, 10)])
    classified = protection_classes(conn, ssl_uids=[], tor_uids=[])
    assert classified["protection"].to_list() == ["encrypted"]


def test_protection_share_of_an_empty_frame_is_zero_not_a_division_error():
    conn = conn_frame([])
    share = protection_share(protection_classes(conn, [], []), [])
    assert (share.total_connections, share.classes["clear"].connection_share) == (0, 0.0)


def test_weak_and_tor_uids_come_from_the_analyzer_findings():
    findings = findings_frame(
        [
            {"uid": "c6", "category": "weak-tls", "reason": "old-version"},
            {"uid": "c1", "category": "weak-tls", "reason": "self-signed"},
            {"uid": "c2", "category": "tor", "reason": "tor-exit"},
        ]
    )
    weak = finding_uids(findings, "weak-tls", ["old-version", "weak-cipher", "weak-key", "weak-signature"])
    assert (weak, finding_uids(findings, "tor")) == ({"c6"}, {"c2"})


def tor_findings(uses: list[tuple[str, str, str]]) -> pl.DataFrame:
    return findings_frame(
        [
            {
                "uid": uid,
                "category": "tor",
                "reason": f"tor-{role}",
                "resp_h": addr,
                "evidence": json.dumps({"tor_addr": addr}),
            }
            for uid, addr, role in uses
        ]
    )


def test_tor_host_using_the_same_exit_every_day_is_flagged():
    # Host A reaches exit E on 07-01, 07-02 and 07-03, and relay R once on 07-02.
    E, R = "185.220.101.5", "51.15.0.1"
    conn = conn_frame(
        [
            ("t1", 1, "kp-star-jv", "orig", A, E, "ssl", 10, 10),
            ("t2", 2, "kp-star-jv", "orig", A, E, "ssl", 10, 10),
            ("t3", 2, "kp-star-jv", "orig", A, R, "ssl", 10, 10),
            ("t4", 3, "kp-star-jv", "orig", A, E, "ssl", 10, 10),
        ]
    )
    uses = tor_uses(
        tor_findings([("t1", E, "exit"), ("t2", E, "exit"), ("t3", R, "relay"), ("t4", E, "exit")])
    )
    host = tor_hosts(conn, uses)[0]
    assert (host.tor_days, host.peers, host.top_peer, host.top_peer_days, host.same_peer_every_day) == (
        3,
        2,
        E,
        3,
        True,
    )


def test_tor_host_that_changes_relay_is_not_flagged_as_same_every_day():
    # Exit E1 on 07-01, exit E2 on 07-02: two Tor days, each exit used on one.
    conn = conn_frame(
        [
            ("t1", 1, "kp-star-jv", "orig", A, "1.2.3.4", "ssl", 10, 10),
            ("t2", 2, "kp-star-jv", "orig", A, "5.6.7.8", "ssl", 10, 10),
        ]
    )
    uses = tor_uses(tor_findings([("t1", "1.2.3.4", "exit"), ("t2", "5.6.7.8", "exit")]))
    assert tor_hosts(conn, uses)[0].same_peer_every_day is False


def test_torrent_activity_is_grouped_by_host_and_day():
    conn = conn_frame(
        [
            ("b1", 1, "kp-china-netcom", "orig", B, "91.189.95.21", "http", 300, 200),
            ("b2", 1, "kp-china-netcom", "orig", B, "60.1.1.1", None, 1000, 0),
            ("b3", 2, "kp-china-netcom", "orig", B, "60.1.1.1", None, 0, 100),
            ("n1", 2, "kp-china-netcom", "orig", B, "60.1.1.1", "http", 5, 5),
        ]
    )
    rows = torrent_days(conn, {"b1", "b2", "b3", "not-in-conn"})
    assert [(r.host, r.day.day, r.connections, r.bytes, r.peers) for r in rows] == [
        (B, 1, 2, 1500, 2),
        (B, 2, 1, 100, 1),
    ]


def test_activity_profile_files_domains_by_category_with_top_domains():
    conn = conn_frame(SAMPLE)
    dns = pl.DataFrame({"uid": ["c3", "c3"], "query": ["www.youtube.com", "kcna.kp"]})
    ssl = pl.DataFrame(
        {"uid": ["c1", "c6", "x1"], "server_name": ["i.ytimg.com", "www.youtube.com", "youtube.com"]}
    )
    http = pl.DataFrame({"uid": ["c4"], "host": ["WWW.BBC.CO.UK:8080"]})
    observations = domain_observations(conn, dns, ssl, http)
    profile = activity_profile(observations, conn, load_categories())
    video = next(c for c in profile.categories if c.category == "video")
    # Video: DNS youtube (c3), SNI ytimg (c1), SNI youtube (c6); x1 is not NK.
    # Connections: c1, c6 = 1000 + 4000 bytes.
    assert (
        video.observations,
        video.dns_queries,
        video.connections,
        video.bytes,
        [(d.domain, d.observations) for d in video.top_domains],
    ) == (3, 1, 2, 5000, [("www.youtube.com", 2), ("i.ytimg.com", 1)])


def test_activity_profile_keeps_hostile_names_as_uncategorised_text():
    conn = conn_frame(SAMPLE)
    ssl = pl.DataFrame({"uid": ["c1"], "server_name": ["<script>alert(1)</script>"]})
    profile = activity_profile(domain_observations(conn, None, ssl, None), conn, load_categories())
    only = profile.categories[0]
    assert (only.category, only.top_domains[0].domain) == ("uncategorised", "<script>alert(1)</script>")


def test_timeline_fills_quiet_days_with_zero():
    conn = conn_frame(
        [
            ("d1", 1, "kp-star-jv", "orig", A, "1.1.1.1", None, 10, 0),
            ("d3", 3, "kp-satgate", "orig", "77.94.35.1", "1.1.1.1", None, 5, 5),
        ]
    )
    line = timeline(conn, RANGES)
    assert (line.connections["kp-star-jv"], line.bytes["kp-satgate"]) == ([1, 0, 0], [0, 0, 10])


def test_baseline_is_the_first_half_of_the_calendar_days_by_default():
    days = [dt.date(2017, 7, d) for d in (1, 2, 7)]  # a seven-day span with gaps
    baseline, period = split_days(days, None)
    assert (baseline[0].day, baseline[-1].day, period[0].day, period[-1].day) == (1, 3, 4, 7)


def test_baseline_days_option_sets_the_length_of_the_baseline():
    baseline, period = split_days([dt.date(2017, 7, 1), dt.date(2017, 7, 10)], 2)
    assert (len(baseline), len(period)) == (2, 8)


def test_peer_countries_compare_byte_shares_of_baseline_and_period():
    # Span 07-01..07-04: baseline 07-01..02, period 07-03..04.
    # Baseline: US 1000 bytes (100%). Period: US 1000, DE 3000 -> US 25%, DE 75%.
    conn = conn_frame(
        [
            ("p1", 1, "kp-star-jv", "orig", A, "93.184.216.34", None, 500, 500),
            ("p2", 3, "kp-star-jv", "orig", A, "93.184.216.34", None, 500, 500),
            ("p3", 4, "kp-star-jv", "orig", A, "185.220.101.5", None, 1000, 2000),
        ]
    )
    countries = {"93.184.216.34": "US", "185.220.101.5": "DE"}
    result = peer_countries(conn, countries.__getitem__)
    got = {
        r.country: (
            r.baseline_bytes,
            r.period_bytes,
            r.baseline_byte_share,
            r.period_byte_share,
            r.change_points,
        )
        for r in result.rows
    }
    assert got == {"DE": (0, 3000, 0.0, 0.75, 75.0), "US": (1000, 1000, 1.0, 0.25, -75.0)}


def test_peer_countries_without_nk_traffic_say_so():
    assert peer_countries(conn_frame([]), lambda a: "US").note == "no NK connections to compare"


@pytest.mark.parametrize("value", ["2017-07-01T12:00:00", 1498910400.0])
def test_day_is_taken_in_utc_from_datetimes_and_from_epoch_seconds(value):
    frame = pl.DataFrame(
        {
            "ts": [dt.datetime.fromisoformat(value).replace(tzinfo=UTC) if isinstance(value, str) else value],
            "uid": ["u"],
            "orig_bytes": [1],
            "resp_bytes": [1],
            "nk_range": ["kp-star-jv"],
            "nk_side": ["orig"],
            "service": [None],
        }
    )
    assert prepare_conn(frame)["day"].to_list() == [dt.date(2017, 7, 1)]
