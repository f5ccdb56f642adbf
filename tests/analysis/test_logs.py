"""The Zeek log reader: formats, rotation, and each gap in zat's loaders that it closes."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.logfiles import find_logs
from sensor_plugins.analysis.logs import LogError, discover, load_logset, read_log
from sensor_plugins.errors import SensorPluginsError

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"
ZEEK7 = FIX / "zeek7"


def header_and_rows(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#") and not line.startswith("#close")]
    rows = [line for line in lines if not line.startswith("#")]
    return header, rows


def write_log(path: Path, header: list[str], rows: list[str]) -> Path:
    path.write_text("".join(header) + "".join(rows))
    return path


def replace_field(row: str, header: list[str], name: str, value: str) -> str:
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    cells = row.rstrip("\n").split("\t")
    cells[names.index(name)] = value
    return "\t".join(cells) + "\n"


def test_rows_of_a_real_conn_log_are_all_read() -> None:
    _, rows = header_and_rows(ZAT / "conn.log")
    assert read_log([ZAT / "conn.log"]).collect().height == len(rows)


def test_two_logs_joined_end_to_end_read_as_their_rows_alone(tmp_path: Path) -> None:
    # `cat conn.*.log > day.log` leaves a footer and a second header in the middle.
    whole = (ZAT / "conn.log").read_text()
    _, rows = header_and_rows(ZAT / "conn.log")
    joined = tmp_path / "conn.log"
    joined.write_text(whole + whole)
    assert read_log([joined]).collect()["uid"].to_list() == [r.split("\t")[1] for r in rows * 2]


def test_a_malformed_number_is_null_and_its_row_is_kept(tmp_path: Path) -> None:
    header, rows = header_and_rows(ZAT / "conn.log")
    broken = replace_field(rows[0], header, "orig_bytes", "12x")
    frame = read_log([write_log(tmp_path / "conn.log", header, [broken, *rows[1:]])]).collect()
    assert (frame.height, frame["orig_bytes"][0], frame["uid"][0]) == (len(rows), None, rows[0].split("\t")[1])


def test_a_count_beyond_int64_is_null_not_wrapped(tmp_path: Path) -> None:
    header, rows = header_and_rows(ZAT / "conn.log")
    huge = replace_field(rows[0], header, "resp_bytes", str(2**64 - 1))
    frame = read_log([write_log(tmp_path / "conn.log", header, [huge])]).collect()
    assert frame["resp_bytes"][0] is None


@pytest.mark.parametrize("value", ["1e300", "inf", "nan", "-1e30"])
def test_a_time_beyond_any_calendar_is_null_and_its_row_is_kept(tmp_path: Path, value: str) -> None:
    # Like a malformed number: the row stays, the read does not fail on one field.
    header, rows = header_and_rows(ZAT / "conn.log")
    broken = replace_field(rows[0], header, "ts", value)
    frame = read_log([write_log(tmp_path / "conn.log", header, [broken, *rows[1:]])]).collect()
    assert (frame.height, frame["ts"][0], frame["ts"][1] is not None) == (len(rows), None, True)


def test_time_fields_are_utc_aware_not_naive_local() -> None:
    frame = read_log([ZEEK7 / "tls__ssl.v3" / "ssl.log"]).collect()
    assert frame["ts"][0] == dt.datetime(2007, 2, 5, 23, 18, 25, 549109, tzinfo=dt.UTC)


def test_unset_count_is_null_not_zero_as_zat_maps_it() -> None:
    # Real conn.log row: a UDP flow with duration, orig_bytes and resp_bytes unset ("-").
    frame = read_log([ZAT / "conn.log"]).collect()
    row = frame.filter(pl.col("uid") == "CRnGbwhMfXvbl5omc")
    assert row["orig_bytes"].to_list() == [None]


def test_unset_bool_is_null_not_false() -> None:
    # zat's conn.log has local_orig unset ("-") on every row.
    frame = read_log([ZAT / "conn.log"]).collect()
    assert frame["local_orig"].null_count() == frame.height


def test_empty_set_is_an_empty_list_not_the_text_empty() -> None:
    frame = read_log([ZAT / "conn.log"]).collect()
    assert frame["tunnel_parents"][0].to_list() == []


def test_empty_string_field_is_empty_text_and_unset_is_null(tmp_path: Path) -> None:
    header, rows = header_and_rows(ZAT / "http.log")
    empty = replace_field(rows[0], header, "referrer", "(empty)")
    log = write_log(tmp_path / "http.log", header, [empty, rows[1]])
    frame = read_log([log]).collect()
    assert frame["referrer"].to_list() == ["", None]


def test_vector_field_is_a_list_of_text() -> None:
    frame = read_log([ZEEK7 / "tls__ssl.v3" / "ssl.log"]).collect()
    assert len(frame["cert_chain_fps"][0]) == 2


def test_double_quote_in_user_agent_loses_no_row_or_text(tmp_path: Path) -> None:
    # zat's log_to_polars uses read_csv's default quote char and fails on this row.
    header, rows = header_and_rows(ZAT / "http.log")
    agent = 'Mozilla/4.0 (compatible; MSIE 8.0; "Windows NT 5.1")'
    log = write_log(tmp_path / "http.log", header, [replace_field(rows[0], header, "user_agent", agent), *rows[1:]])
    frame = read_log([log]).collect()
    assert (frame.height, frame["user_agent"][0]) == (len(rows), agent)


def test_hash_inside_uri_does_not_cut_the_row(tmp_path: Path) -> None:
    # zat's pandas loader (comment="#") cuts this row at the '#'.
    header, rows = header_and_rows(ZAT / "http.log")
    uri = "/index.html#section-2?q=a#b"
    log = write_log(tmp_path / "http.log", header, [replace_field(rows[0], header, "uri", uri), *rows[1:]])
    frame = read_log([log]).collect()
    assert (frame["uri"][0], frame["status_code"][0]) == (uri, 301)


def test_hash_inside_certificate_subject_is_kept(tmp_path: Path) -> None:
    header, rows = header_and_rows(ZAT / "x509.log")
    subject = "CN=shop #1,O=Example"
    log = write_log(tmp_path / "x509.log", header, [replace_field(rows[0], header, "certificate.subject", subject)])
    assert read_log([log]).collect()["certificate.subject"][0] == subject


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    header, rows = header_and_rows(ZAT / "conn.log")
    log = tmp_path / "conn.log"
    log.write_text("".join(header) + "".join(rows[:5]) + rows[5][:40])
    frame = read_log([log]).collect()
    assert frame.height == 5 and "incomplete" in capsys.readouterr().err


def test_empty_file_gives_no_rows(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_bytes(b"")
    assert read_log([log]).collect().height == 0


def test_header_only_log_gives_typed_empty_frame() -> None:
    frame = read_log([ZAT / "http_empty.log"]).collect()
    assert (frame.height, frame.schema["ts"]) == (0, pl.Datetime("us", "UTC"))


def test_schema_drift_across_files_keeps_every_column(tmp_path: Path) -> None:
    # conn.log from 2013 (no local_resp) and from Zeek 7 (local_resp) read together.
    frame = read_log([ZAT / "conn.log", ZEEK7 / "tls__ssl.v3" / "conn.log"]).collect()
    local_resp = frame.filter(pl.col("uid") == "CNgTWq3JDXlbYq8HL2")["local_resp"].to_list()
    assert local_resp == [False]


def test_extra_and_missing_columns_in_one_file(tmp_path: Path) -> None:
    header, rows = header_and_rows(ZEEK7 / "tls__ssl.v3" / "conn.log")
    fields = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")
    types = next(h for h in header if h.startswith("#types")).rstrip("\n").split("\t")
    drop = fields.index("history")
    new_header = [
        h for h in header if not h.startswith(("#fields", "#types"))
    ] + ["\t".join([*fields[:drop], *fields[drop + 1:], "nk_range"]) + "\n",
         "\t".join([*types[:drop], *types[drop + 1:], "string"]) + "\n"]
    new_rows = []
    for row in rows:
        cells = row.rstrip("\n").split("\t")
        new_rows.append("\t".join([*cells[:drop], *cells[drop + 1:], "kp-star-jv"]) + "\n")
    log = write_log(tmp_path / "conn.log", new_header, new_rows)
    frame = read_log([log]).collect()
    assert "history" not in frame.columns and frame["nk_range"].to_list() == ["kp-star-jv"] * len(rows)


def test_non_utf8_bytes_are_replaced_not_fatal(tmp_path: Path) -> None:
    header, rows = header_and_rows(ZAT / "http.log")
    log = tmp_path / "http.log"
    bad = replace_field(rows[0], header, "user_agent", "agent-\udcff").encode("utf-8", "surrogateescape")
    log.write_bytes("".join(header).encode() + bad + rows[1].encode())
    frame = read_log([log]).collect()
    assert frame["user_agent"][0] == "agent-\ufffd"


def test_gzip_rotated_log_reads_like_the_plain_one() -> None:
    plain = read_log([ZAT / "http.log"]).collect()
    rotated = read_log([ZAT / "http.log.gz"]).collect()
    assert rotated["uid"].to_list() == plain["uid"].to_list()[: rotated.height] and rotated.height > 0


def test_corrupt_gzip_is_a_one_line_error() -> None:
    with pytest.raises(SensorPluginsError, match=r"http\.log\.corrupt\.gz: broken gzip"):
        read_log([ZAT / "http.log.corrupt.gz"]).collect()


def test_json_log_reads_with_zeek_types() -> None:
    frame = read_log([ZEEK7 / "json__tls__ssl.v3" / "ssl.log"]).collect()
    tsv = read_log([ZEEK7 / "tls__ssl.v3" / "ssl.log"]).collect()
    assert frame["ts"].to_list() == tsv["ts"].to_list() and frame.schema["id.resp_p"] == pl.Int64


def test_json_iso_timestamps_are_read(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_text('{"ts":"2019-12-03T22:44:56.052279Z","uid":"CH53301MTU21BMj2Bj","id.orig_h":"10.18.20.97"}\n')
    frame = read_log([log]).collect()
    assert frame["ts"][0] == dt.datetime(2019, 12, 3, 22, 44, 56, 52279, tzinfo=dt.UTC)


def test_json_and_tsv_of_one_kind_stack() -> None:
    frame = read_log([ZAT / "ssl.log", ZAT / "json" / "ssl.log"]).collect()
    assert frame.height == 37 + 50


def test_discover_takes_the_kind_from_the_path_header() -> None:
    found = discover([ZAT / "tor_ssl.log"])
    assert list(found) == ["ssl"]


def test_discover_finds_a_days_rotated_gzip_files(tmp_path: Path) -> None:
    day = tmp_path / "2018-07-15"
    day.mkdir()
    source = ZEEK7 / "bittorrent__tracker" / "conn.log"
    for hour in ("00:00:00-01:00:00", "01:00:00-02:00:00"):
        with gzip.open(day / f"conn.{hour}.log.gz", "wb") as out:
            out.write(source.read_bytes())
    shutil.copy(source, tmp_path / "conn.log")
    assert len(discover([tmp_path])["conn"]) == 3


def test_a_whole_day_of_rotated_files_is_one_frame(tmp_path: Path) -> None:
    source = ZEEK7 / "bittorrent__tracker" / "conn.log"
    for hour in ("00:00:00-01:00:00", "01:00:00-02:00:00"):
        with gzip.open(tmp_path / f"conn.{hour}.log.gz", "wb") as out:
            out.write(source.read_bytes())
    assert load_logset([tmp_path]).conn.collect().height == 2


def test_file_without_header_or_json_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_text("this is not a zeek log\n")
    with pytest.raises(SensorPluginsError, match="not a Zeek log"):
        read_log([log])


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SensorPluginsError, match="no such log"):
        discover([tmp_path / "nope"])


def test_an_unreadable_folder_under_a_log_directory_is_an_error_not_skipped(tmp_path, monkeypatch):
    # Root reads any folder, so the refusal is made where the walk lists it.
    (tmp_path / "logs" / "secret").mkdir(parents=True)
    (tmp_path / "logs" / "conn.log").write_text((ZAT / "conn.log").read_text())
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(LogError, match=r"secret: cannot read folder: Permission denied"):
        discover([tmp_path / "logs"])


def test_the_same_file_reached_twice_is_read_once_and_said(tmp_path, capsys):
    log = tmp_path / "conn.log"
    log.write_text((ZAT / "conn.log").read_text())
    (tmp_path / "again.conn.log").symlink_to(log)
    found = discover([tmp_path])
    assert (len(found["conn"]), "is the same file as" in capsys.readouterr().err) == (1, True)


def test_find_logs_gives_every_candidate_file_and_the_kinds_analyze_reads(tmp_path: Path) -> None:
    shutil.copy(ZEEK7 / "bittorrent__tracker" / "conn.log", tmp_path / "conn.log")
    shutil.copy(ZEEK7 / "bittorrent__tracker" / "conn.log", tmp_path / "packet_filter.log")  # #path conn inside
    (tmp_path / "stats.log").write_text("")  # a log's name, but no kind analyze reads
    found = find_logs([tmp_path])
    assert [p.name for p in found.files] == ["conn.log", "packet_filter.log", "stats.log"]
    assert {k: [p.name for p in v] for k, v in found.kinds.items()} == {"conn": ["conn.log", "packet_filter.log"]}
    assert found.size == 2 * (ZEEK7 / "bittorrent__tracker" / "conn.log").stat().st_size
    assert found.kinds == discover([tmp_path])


def test_analyze_walks_its_log_folders_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # The output check, the allocator's sizing and the loader all read one walk's result.
    from sensor_plugins.analysis import logfiles
    from sensor_plugins.cli import main

    shutil.copytree(ZEEK7 / "bittorrent__tracker", tmp_path / "logs")
    walked: list[Path] = []
    real_walk = logfiles._walk_logs

    def counting_walk(directory: Path) -> list[Path]:
        walked.append(directory)
        return real_walk(directory)

    monkeypatch.setattr(logfiles, "_walk_logs", counting_walk)
    code = main(["analyze", "--scope", "all", str(tmp_path / "logs"), "--format", "jsonl",
                 "--out", str(tmp_path / "findings.jsonl")])
    assert code == 1, capsys.readouterr().err
    assert (tmp_path / "findings.jsonl").read_text().count('"reason":"tracker-announce"') >= 1
    assert walked == [tmp_path / "logs"]
