"""``sensor-plugins report`` end to end on small hand-written Zeek logs with known answers.

The scenario (written by ``write_scenario``), 2017-07-01 to 2017-07-12 (12 days), NK hosts
A = 175.45.176.10 (kp-star-jv) and B = 210.52.109.20 (kp-china-netcom):

- every day: A -> Tor exit 185.220.101.5:443 (100 + 900 bytes);
  A -> 93.184.216.34:443 TLSv12, SNI www.youtube.com (1000 + 9000);
  B -> 151.101.1.1:80 HTTP, Host www.bbc.co.uk (500 + 4500);
- odd days: A -> 104.16.1.1:443 TLSv10 RC4-MD5 with a hostile ``<script>`` SNI (200 + 800);
- 2017-07-03: B -> 91.189.95.21:6969 tracker announce (300 + 200);
- 2017-07-04 (the "launch" event): 20 extra B -> bbc connections (500 + 4500 each);
- one non-NK connection (10.0.0.5 -> 93.184.216.34) that must not count.

Totals: 12*3 + 6 + 1 + 20 = 63 NK connections;
anonymised 12 / 12,000 bytes; encrypted 12 + 6 = 18 / 120,000 + 6,000 = 126,000;
clear 12 + 20 + 1 = 33 / 160,000 + 500 = 160,500; all bytes 298,500.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from sensor_plugins.cli import main

A, B = "175.45.176.10", "210.52.109.20"
TOR, WEB, BBC, WEAK, TRACKER = "185.220.101.5", "93.184.216.34", "151.101.1.1", "104.16.1.1", "91.189.95.21"
HOSTILE_SNI = '<script>window.pwned=1;console.error("xss")</script>'
DAYS = 12

CONN_FIELDS = {
    "ts": "time",
    "uid": "string",
    "id.orig_h": "addr",
    "id.orig_p": "port",
    "id.resp_h": "addr",
    "id.resp_p": "port",
    "proto": "enum",
    "service": "string",
    "duration": "interval",
    "orig_bytes": "count",
    "resp_bytes": "count",
    "conn_state": "string",
}
SSL_FIELDS = {
    "ts": "time",
    "uid": "string",
    "id.orig_h": "addr",
    "id.orig_p": "port",
    "id.resp_h": "addr",
    "id.resp_p": "port",
    "version": "string",
    "cipher": "string",
    "server_name": "string",
    "established": "bool",
}
HTTP_FIELDS = {
    "ts": "time",
    "uid": "string",
    "id.orig_h": "addr",
    "id.orig_p": "port",
    "id.resp_h": "addr",
    "id.resp_p": "port",
    "method": "string",
    "host": "string",
    "uri": "string",
    "user_agent": "string",
    "status_code": "count",
}
TOR_LIST = """\
ExitNode 0123456789ABCDEF0123456789ABCDEF01234567
Published 2017-06-01 10:00:00
LastStatus 2017-07-12 10:00:00
ExitAddress 185.220.101.5 2017-07-12 10:00:00
"""
EVENTS = "date,label\n2017-07-04,Hwasong-14 launch\n"


def zeek_log(path: Path, kind: str, fields: dict[str, str], rows: list[list[object]]) -> None:
    lines = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        f"#path\t{kind}",
        "#open\t2017-07-01-00-00-00",
        "#fields\t" + "\t".join(fields),
        "#types\t" + "\t".join(fields.values()),
    ]
    lines += ["\t".join("-" if v is None else str(v) for v in row) for row in rows]
    lines.append("#close\t2017-07-13-00-00-00")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_scenario(root: Path) -> dict[str, Path]:
    """The logs, Tor list and events file described in the module docstring."""
    logs = root / "logs"
    logs.mkdir(parents=True)
    conn, ssl, http = [], [], []
    port = 40000

    def add(
        day: int, minute: int, orig: str, resp: str, rport: int, service: str | None, ob: int, rb: int
    ) -> str:
        nonlocal port
        port += 1
        uid = f"C{day:02d}{minute:04d}{port}"
        ts = dt.datetime(2017, 7, day, 8, tzinfo=dt.UTC).timestamp() + minute * 60
        conn.append([f"{ts:.6f}", uid, orig, port, resp, rport, "tcp", service, "1.000000", ob, rb, "SF"])
        return uid

    def stamp(day: int, minute: int) -> str:
        return f"{dt.datetime(2017, 7, day, 8, tzinfo=dt.UTC).timestamp() + minute * 60:.6f}"

    for day in range(1, DAYS + 1):
        add(day, 0, A, TOR, 443, "ssl", 100, 900)
        uid = add(day, 1, A, WEB, 443, "ssl", 1000, 9000)
        ssl.append(
            [
                stamp(day, 1),
                uid,
                A,
                port,
                WEB,
                443,
                "TLSv12",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "www.youtube.com",
                "T",
            ]
        )
        uid = add(day, 2, B, BBC, 80, "http", 500, 4500)
        http.append(
            [stamp(day, 2), uid, B, port, BBC, 80, "GET", "www.bbc.co.uk", "/news", "Mozilla/5.0", 200]
        )
        if day % 2:
            uid = add(day, 3, A, WEAK, 443, "ssl", 200, 800)
            ssl.append(
                [
                    stamp(day, 3),
                    uid,
                    A,
                    port,
                    WEAK,
                    443,
                    "TLSv10",
                    "TLS_RSA_WITH_RC4_128_MD5",
                    HOSTILE_SNI,
                    "T",
                ]
            )
    uid = add(3, 10, B, TRACKER, 6969, "http", 300, 200)
    http.append(
        [
            stamp(3, 10),
            uid,
            B,
            port,
            TRACKER,
            6969,
            "GET",
            "tracker.example",
            "/announce?info_hash=%12%34%56&peer_id=-DE13F0-abcdefgh&port=6881",
            "Deluge 1.3.15",
            200,
        ]
    )
    for i in range(20):
        uid = add(4, 20 + i, B, BBC, 80, "http", 500, 4500)
        http.append(
            [stamp(4, 20 + i), uid, B, port, BBC, 80, "GET", "www.bbc.co.uk", "/news", "Mozilla/5.0", 200]
        )
    add(5, 30, "10.0.0.5", WEB, 443, "ssl", 7777, 7777)
    conn.sort(key=lambda row: float(row[0]))
    zeek_log(logs / "conn.log", "conn", CONN_FIELDS, conn)
    zeek_log(logs / "ssl.log", "ssl", SSL_FIELDS, ssl)
    zeek_log(logs / "http.log", "http", HTTP_FIELDS, http)
    tor = root / "exit-addresses.txt"
    tor.write_text(TOR_LIST)
    events = root / "events.csv"
    events.write_text(EVENTS)
    return {"logs": logs, "tor": tor, "events": events}


def run_report(paths: dict[str, Path], *extra: str) -> int:
    return main(
        ["report", str(paths["logs"]), "--tor-list", str(paths["tor"]), "--events", str(paths["events"]), *extra]
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_scenario(tmp_path_factory.mktemp("report-scenario"))


@pytest.fixture(scope="module")
def report_json(scenario: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("report-json") / "report.json"
    assert run_report(scenario, "--format", "json", "--json", str(out)) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def report_html(scenario: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("report-html") / "report.html"
    assert run_report(scenario, "--html", str(out)) == 0
    return out.read_text()


def test_protection_share_matches_the_hand_count(report_json):
    classes = report_json["protection"]["classes"]
    got = {k: (v["connections"], v["bytes"]) for k, v in classes.items()}
    assert got == {"anonymised": (12, 12_000), "encrypted": (18, 126_000), "clear": (33, 160_500)}


def test_encrypted_share_of_bytes_is_126000_of_298500(report_json):
    assert report_json["protection"]["classes"]["encrypted"]["byte_share"] == pytest.approx(126_000 / 298_500)


def test_weak_tls_is_the_six_rc4_connections_of_the_eighteen_encrypted(report_json):
    weak = report_json["protection"]["weak"]
    assert (weak["connections"], weak["bytes"], weak["connection_share"]) == (6, 6_000, pytest.approx(6 / 18))


def test_overview_counts_each_range(report_json):
    # kp-star-jv: A's Tor 12, YouTube 12, weak 6 = 30 connections, 12,000 + 120,000 + 6,000 bytes.
    # kp-china-netcom: B's bbc 12 + 20, tracker 1 = 33 connections, 160,500 bytes.
    ranges = {
        r["range"]: (r["hosts"], r["connections"], r["bytes"]) for r in report_json["overview"]["ranges"]
    }
    assert ranges == {
        "kp-star-jv": (1, 30, 138_000),
        "kp-china-netcom": (1, 33, 160_500),
        "kp-satgate": (0, 0, 0),
    }


def test_the_same_tor_exit_every_day_is_reported_for_host_a(report_json):
    host = report_json["tor"][0]
    assert (host["host"], host["top_peer"], host["top_peer_days"], host["same_peer_every_day"]) == (
        A,
        TOR,
        12,
        True,
    )


def test_the_tracker_announce_is_torrent_activity_of_host_b_on_july_3(report_json):
    assert [(t["host"], t["day"], t["connections"], t["bytes"]) for t in report_json["torrents"]] == [
        (B, "2017-07-03", 1, 500)
    ]


def test_launch_day_connections_are_a_spike(report_json):
    # Daily NK connections: 4,3,5,23,4,3,4,3,4,3,4,3. Around 07-04 (07-04/05 left out):
    # median 3.5, MAD 0.5, z = (23 - 3.5) / (1.4826 * 0.5) = 26.31.
    score = report_json["events"][0]["scores"][0]
    assert (score["metric"], score["value"], score["median"], round(score["z"], 2), score["spike"]) == (
        "connections",
        23,
        3.5,
        26.31,
        True,
    )


def test_the_events_verdict_says_yes_when_a_spike_exceeds_the_threshold(report_json):
    assert report_json["statements"]["events"].startswith("Yes: 2 event-day score(s) reached |z| ≥ 3.5")


def test_activity_profile_files_youtube_as_video_and_bbc_as_news(report_json):
    got = {c["category"]: c["observations"] for c in report_json["activity"]["categories"]}
    assert got == {"news": 32, "video": 12, "uncategorised": 7}


def test_hostile_server_name_is_escaped_in_the_html(report_html):
    escaped = "&lt;script&gt;window.pwned=1;console.error(&#34;xss&#34;)&lt;/script&gt;"
    assert (escaped in report_html, "<script" in report_html) == (True, False)


def test_the_html_fetches_nothing_from_the_network(report_html):
    assert (
        "http://" not in report_html.replace("http://www.w3.org/2000/svg", ""),
        "https://" in report_html,
    ) == (True, False)


def test_peer_countries_use_the_users_mmdb_with_first_half_baseline(scenario, tmp_path):
    from test_report_geoip import write_mmdb

    db = write_mmdb(
        tmp_path / "c.mmdb",
        {
            "185.220.101.0/24": {"country": {"iso_code": "DE"}},
            "93.184.216.0/24": {"country": {"iso_code": "US"}},
            "151.101.0.0/16": {"country": {"iso_code": "GB"}},
            "104.16.0.0/12": {"country": {"iso_code": "US"}},
            "91.189.95.0/24": {"country": {"iso_code": "GB"}},
        },
    )
    out = tmp_path / "r.json"
    assert run_report(scenario, "--format", "json", "--json", str(out), "--geoip", str(db)) == 0
    countries = json.loads(out.read_text())["countries"]
    rows = {r["country"]: (r["baseline_bytes"], r["period_bytes"]) for r in countries["rows"]}
    # Baseline 07-01..06: DE 6*1000; US 6*10000 + 3*1000 (weak on 1, 3, 5);
    # GB 6*5000 + 20*5000 + 500. Period 07-07..12: DE 6000; US 63,000; GB 30,000.
    assert rows == {"GB": (130_500, 30_000), "US": (63_000, 63_000), "DE": (6_000, 6_000)}


def test_without_geoip_the_html_says_how_to_add_it(report_html):
    assert "--geoip GeoLite2-Country.mmdb" in report_html


def test_json_goes_to_stdout_without_json_file(scenario, capsys):
    assert run_report(scenario, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["overview"]["connections"] == 63


def test_report_without_conn_log_fails_with_one_line(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    zeek_log(tmp_path / "logs" / "ssl.log", "ssl", SSL_FIELDS, [])
    code = main(["report", str(tmp_path / "logs"), "--html", str(tmp_path / "out.html")])
    assert (code, capsys.readouterr().err, (tmp_path / "out.html").exists()) == (
        2,
        "sensor-plugins: error: report: no conn.log among the logs; the report is built on conn.log\n",
        False,
    )


def test_report_needs_an_output(scenario, capsys):
    assert (run_report(scenario), capsys.readouterr().err) == (
        2,
        "sensor-plugins: error: report: give --html OUT.html, or --format json for JSON\n",
    )


def test_a_bad_events_file_leaves_the_previous_report_untouched(scenario, tmp_path, capsys):
    out = tmp_path / "report.html"
    out.write_text("previous report")
    bad = tmp_path / "events.csv"
    bad.write_text("2017-07-04,launch\nJuly 5th,another\n")
    code = main(
        [
            "report",
            str(scenario["logs"]),
            "--tor-list",
            str(scenario["tor"]),
            "--events",
            str(bad),
            "--html",
            str(out),
        ]
    )
    assert (code, capsys.readouterr().err.count("\n"), out.read_text()) == (2, 1, "previous report")


def test_a_broken_geoip_file_is_a_one_line_error(scenario, tmp_path, capsys):
    bad = tmp_path / "geo.mmdb"
    bad.write_bytes(b"\0" * 64)
    code = run_report(scenario, "--html", str(tmp_path / "r.html"), "--geoip", str(bad))
    assert (
        code,
        capsys.readouterr().err.startswith(f"sensor-plugins: error: {bad}: not a MaxMind DB file"),
    ) == (2, True)


def test_a_hostile_event_label_is_escaped_in_the_chart_and_table(scenario, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text('2017-07-04,"<img src=x onerror=alert(1)>"\n')
    out = tmp_path / "r.html"
    code = main(["report", str(scenario["logs"]), "--tor-list", str(scenario["tor"]), "--events", str(events),
                 "--html", str(out)])
    html = out.read_text()
    assert (code, "<img" in html, html.count("&lt;img src=x onerror=alert(1)&gt;") >= 2) == (0, False, True)


def test_logs_without_nk_traffic_give_a_report_that_says_so(tmp_path):
    (tmp_path / "logs").mkdir()
    row = ["1499000000.000000", "Cx", "10.0.0.1", 1, "10.0.0.2", 80, "tcp", None, None, 1, 1, "SF"]
    zeek_log(tmp_path / "logs" / "conn.log", "conn", CONN_FIELDS, [row])
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "logs"), "--html", str(out)]) == 0
    assert "No connection in these logs touches a catalogued NK range." in out.read_text()


def test_a_users_categories_file_files_the_tracker_under_its_own_category(scenario, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("categories:\n  p2p:\n    label: Peer to peer\n    domains: [tracker.example]\n")
    out = tmp_path / "r.json"
    assert run_report(scenario, "--format", "json", "--json", str(out), "--categories", str(mine)) == 0
    got = {c["category"]: c["observations"] for c in json.loads(out.read_text())["activity"]["categories"]}
    assert got == {"news": 32, "video": 12, "p2p": 1, "uncategorised": 6}


def test_an_unwritable_output_is_a_one_line_error(scenario, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    out = blocker / "report.html"
    assert (run_report(scenario, "--html", str(out)), capsys.readouterr().err.startswith(
        f"sensor-plugins: error: {out}: --html's folder {blocker} is not a directory"
    )) == (2, True)
