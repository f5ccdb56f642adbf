"""`sensor-plugins analyze`: exit codes, the four output formats, --out, hostile text."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sensor_plugins.analysis.findings import FIELDS, Finding
from sensor_plugins.cli import main

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"
SSLV3 = FIX / "zeek7" / "tls__ssl.v3"
TRACKER = FIX / "zeek7" / "bittorrent__tracker"


def analyze(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["analyze", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_findings_exit_1(capsys) -> None:
    assert analyze(capsys, "--scope", "all", str(SSLV3))[0] == 1


def test_no_findings_exit_0(capsys) -> None:
    # The bundled catalogue holds no address of these real logs.
    assert analyze(capsys, str(SSLV3))[0] == 0


def test_error_exits_2_with_one_line(capsys, tmp_path) -> None:
    code, _, err = analyze(capsys, str(tmp_path / "missing.log"))
    assert code == 2 and err.count("\n") == 1 and "missing.log" in err


def test_broken_gzip_exits_2(capsys) -> None:
    code, _, err = analyze(capsys, str(ZAT / "http.log.corrupt.gz"))
    assert code == 2 and "broken gzip" in err


def test_jsonl_is_the_default_on_a_pipe_and_round_trips(capsys) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", str(SSLV3))
    findings = [Finding.from_dict(json.loads(line)) for line in out.splitlines()]
    assert {f.category for f in findings} == {"weak-tls"} and findings[0].ts.tzinfo is not None


def test_jsonl_ts_is_iso_utc(capsys) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", str(SSLV3))
    assert json.loads(out.splitlines()[0])["ts"] == "2007-02-05T23:18:25.549109Z"


def test_csv_has_every_field_and_evidence_as_json(capsys) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", "--format", "csv", str(TRACKER))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == FIELDS and json.loads(rows[0]["evidence"])["user_agent"] == "Deluge 1.3.15"


def test_zeek_format_has_fields_and_types_header(capsys) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", "--format", "zeek", str(SSLV3))
    lines = out.splitlines()
    fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    types = next(x for x in lines if x.startswith("#types")).split("\t")[1:]
    assert tuple(fields) == FIELDS and len(types) == len(fields)


def test_zeek_format_output_reads_back_through_our_reader(capsys, tmp_path) -> None:
    from sensor_plugins.analysis.logs import read_log

    _, out, _ = analyze(capsys, "--scope", "all", "--format", "zeek", str(SSLV3))
    path = tmp_path / "nk_findings.log"
    path.write_text(out)
    frame = read_log([path]).collect()
    assert frame.height == len([x for x in out.splitlines() if not x.startswith("#")])


def test_table_ends_with_summary_by_reason_and_host(capsys) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", "--format", "table", str(SSLV3))
    assert out.index("Findings by category and reason") < out.index("Findings by host")


def test_out_file_is_written_whole_and_stdout_is_empty(capsys, tmp_path) -> None:
    target = tmp_path / "findings.jsonl"
    code, out, _ = analyze(capsys, "--scope", "all", "--out", str(target), str(SSLV3))
    assert (code, out) == (1, "") and all(json.loads(x) for x in target.read_text().splitlines())


def test_failed_run_leaves_no_out_file(capsys, tmp_path) -> None:
    target = tmp_path / "findings.jsonl"
    analyze(capsys, "--out", str(target), str(ZAT / "http.log.corrupt.gz"))
    assert list(tmp_path.iterdir()) == []


def hostile_http(tmp_path: Path) -> Path:
    # The real tracker announce with a URI carrying a tab escape, markup and an ANSI escape.
    lines = (TRACKER / "http.log").read_text().splitlines(keepends=True)
    fields = next(x for x in lines if x.startswith("#fields")).rstrip("\n").split("\t")[1:]
    out = []
    for line in lines:
        if not line.startswith("#"):
            cells = line.rstrip("\n").split("\t")
            cells[fields.index("uri")] = "/announce?info_hash=[red]x[/red]\x1b[2J\\x09&\u202e"
            line = "\t".join(cells) + "\n"
        out.append(line)
    path = tmp_path / "http.log"
    path.write_text("".join(out))
    return path


def test_hostile_uri_cannot_break_a_zeek_tsv_row(capsys, tmp_path) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", "--format", "zeek", str(hostile_http(tmp_path)))
    row = next(x for x in out.splitlines() if not x.startswith("#"))
    assert len(row.split("\t")) == len(FIELDS) and "\x1b" not in row


def test_hostile_uri_cannot_paint_the_terminal_table(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    _, out, _ = analyze(capsys, "--scope", "all", "--format", "table", str(hostile_http(tmp_path)))
    assert "\x1b[2J" not in out and "\u202e" not in out and "[red]" in out


def test_hostile_uri_is_plain_json_text(capsys, tmp_path) -> None:
    _, out, _ = analyze(capsys, "--scope", "all", str(hostile_http(tmp_path)))
    uri = json.loads(out.splitlines()[0])["evidence"]["uri"]
    assert uri.startswith("/announce?info_hash=[red]x[/red]\x1b")


def test_directory_without_logs_is_an_error(capsys, tmp_path) -> None:
    code, _, err = analyze(capsys, str(tmp_path))
    assert code == 2 and "no Zeek logs" in err


def test_custom_tor_list_is_used(capsys, tmp_path) -> None:
    listing = tmp_path / "relays.lst"
    listing.write_text("# role: relay\n# fetched: 2013-12-30\n131.188.40.188\n")
    _, out, _ = analyze(capsys, "--scope", "all", "--tor-list", str(listing), str(ZAT / "tor_ssl.log"))
    reasons = {json.loads(x)["reason"] for x in out.splitlines()}
    assert "tor-relay" in reasons


def nk_conn_with_service(tmp_path: Path, service: str) -> Path:
    # A real zat conn.log row moved to a catalogue responder, its service replaced.
    lines = (ZAT / "conn.log").read_text().splitlines(keepends=True)
    fields = next(x for x in lines if x.startswith("#fields")).rstrip("\n").split("\t")[1:]
    header = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
    cells = next(x for x in lines if not x.startswith("#")).rstrip("\n").split("\t")
    cells[fields.index("id.resp_h")] = "175.45.176.5"
    cells[fields.index("service")] = service
    path = tmp_path / "conn.log"
    path.write_text("".join(header) + "\t".join(cells) + "\n")
    return path


def test_hostile_service_is_the_same_json_text_in_jsonl_and_csv(capsys, tmp_path) -> None:
    # nk-traffic evidence carries the service field of the log as it came.
    service = 'ssl"\\\x1b\u202e\u00e9'
    log = str(nk_conn_with_service(tmp_path, service))
    _, jsonl, _ = analyze(capsys, log)
    _, text, _ = analyze(capsys, "--format", "csv", log)
    from_jsonl = json.loads(jsonl.splitlines()[0])["evidence"]
    from_csv = json.loads(next(csv.DictReader(io.StringIO(text)))["evidence"])
    assert from_jsonl == from_csv and from_jsonl["service"] == service
