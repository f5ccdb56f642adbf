"""Faults logs really have: a header that changes inside a file, mixed JSON time forms, gzip bombs.

- Two Zeek logs concatenated (``cat a.log b.log``), the second with other columns: the
  rows after the second ``#fields`` block are read under it, by the local engine; the
  Spark engine, which takes one header per file, refuses the file naming the line.
- A JSON log whose ``ts`` is epoch seconds in some rows and ISO 8601 text in others:
  both forms are read; a time in neither form is refused with its line.
- Gzip is decompressed as a stream, within a ratio and a size limit: a bomb is refused in
  one line, quickly and in bounded memory (measured in a subprocess by its peak RSS).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.logfiles import next_comment_line, readable_layout, split_log
from sensor_plugins.analysis.logs import LogError, read_header, read_log
from sensor_plugins.cli import main

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT_CONN = FIX / "zat" / "conn.log"
JSON_CONN = FIX / "zat" / "json" / "conn.log"
GIB = 1 << 30


def header_and_rows(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines(keepends=True)
    return ([x for x in lines if x.startswith("#") and not x.startswith("#close")],
            [x for x in lines if not x.startswith("#")])


def without(lines: list[str], header: list[str], name: str) -> list[str]:
    """``lines`` (header lines or rows) with the column ``name`` taken out."""
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    idx = names.index(name)
    out = []
    for line in lines:
        if line.startswith(("#fields", "#types")):
            cells = line.rstrip("\n").split("\t")
            out.append("\t".join(cells[:idx + 1] + cells[idx + 2:]) + "\n")
        elif line.startswith("#"):
            out.append(line)
        else:
            cells = line.rstrip("\n").split("\t")
            out.append("\t".join(cells[:idx] + cells[idx + 1:]) + "\n")
    return out


@pytest.fixture
def concatenated(tmp_path: Path) -> tuple[Path, Path, Path]:
    """conn.log = a log, its #close footer, then a log whose header drops ``service``; and the two parts."""
    header, rows = header_and_rows(ZAT_CONN)
    first = "".join(header) + "".join(rows[:40]) + "#close\t2013-09-16-00-00-00\n"
    second = "".join(without(header, header, "service")) + "".join(without(rows[40:80], header, "service"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    part_a, part_b = tmp_path / "a" / "conn.log", tmp_path / "b" / "conn.log"
    part_a.write_text(first)
    part_b.write_text(second)
    whole = tmp_path / "conn.log"
    whole.write_text(first + second)
    return whole, part_a, part_b


def rows_of(frame: pl.LazyFrame) -> pl.DataFrame:
    return frame.collect().sort("uid").select(sorted(frame.collect_schema().names()))


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_header_changing_inside_a_file_reads_each_part_under_its_own_header(concatenated, gzipped):
    whole, part_a, part_b = concatenated
    if gzipped:
        whole = whole.with_name("conn.log.gz")
        whole.write_bytes(gzip.compress(concatenated[0].read_bytes()))
    got = rows_of(read_log([whole], "conn"))
    expected = rows_of(read_log([part_a, part_b], "conn"))
    second = got.filter(pl.col("uid").is_in(rows_of(read_log([part_b])).get_column("uid").to_list()))
    # The second part's rows keep their durations, and have no service (main read them
    # under the first header: service held the durations).
    assert (got.equals(expected), len(got), second.get_column("service").null_count(),
            second.get_column("duration").null_count() < len(second)) == (True, 80, 40, True)


def test_the_split_names_the_line_of_the_second_header(concatenated):
    whole = concatenated[0]
    layout = split_log(whole, read_header(whole))
    header, _ = header_and_rows(ZAT_CONN)
    fields_line = len(header) + 40 + 1 + next(i for i, h in enumerate(header) if h.startswith("#fields")) + 1
    assert ([s.line for s in layout.segments], "service" in layout.segments[1].header.fields) == (
        [next(i for i, h in enumerate(header) if h.startswith("#fields")) + 1, fields_line], False)


def test_a_second_header_lacking_a_needed_column_is_refused_with_its_line(tmp_path):
    header, rows = header_and_rows(ZAT_CONN)
    text = "".join(header) + "".join(rows[:5]) + "".join(without(header, header, "id.resp_h")) + "".join(
        without(rows[5:10], header, "id.resp_h"))
    log = tmp_path / "conn.log"
    log.write_text(text)
    with pytest.raises(LogError, match=rf"conn.log: line {len(header) + 5 + 7}: column 'id.resp_h' is missing"):
        read_log([log], "conn")


def test_the_same_header_repeated_is_one_schema(tmp_path):
    text = ZAT_CONN.read_text()
    log = tmp_path / "conn.log"
    log.write_text(text + text)
    assert (len(split_log(log, read_header(log)).segments), len(read_log([log], "conn").collect())) == (
        1, 2 * len(header_and_rows(ZAT_CONN)[1]))


def test_a_malformed_second_header_is_refused_with_its_line(tmp_path):
    # The first walk of a plain file counts no lines past the header; a fault further on is
    # still named by its line (the walk is made again, counting).
    header, rows = header_and_rows(ZAT_CONN)
    broken = [h + "\textra\n" if h.startswith("#types") else h for h in (x.rstrip("\n") for x in header)]
    broken = [h if h.endswith("\n") else h + "\n" for h in broken]
    log = tmp_path / "conn.log"
    log.write_text("".join(header) + "".join(rows[:30]) + "".join(broken) + "".join(rows[30:40]))
    types_line = len(header) + 30 + next(i for i, h in enumerate(header) if h.startswith("#fields")) + 1
    with pytest.raises(LogError, match=rf"conn.log: line {types_line}: #types has \d+ entries but #fields has"):
        read_log([log], "conn")


@pytest.mark.parametrize("tail", ["", "#close\t2013-09-16-00-00-00\n", "REPEAT", "CUT", "CUT#", "HASHES", "NOROWS"])
def test_the_walk_without_line_counts_finds_the_same_layout(tmp_path, tail):
    # The uncounted walk reads a plain file through a map of it, the counted one in chunks.
    header, rows = header_and_rows(ZAT_CONN)
    text = "".join(header) + "".join(rows)
    hashes = "".join(r.replace("\t", "\t#", 1) for r in rows[:40])  # "#" inside a field, line after line
    text = {"NOROWS": "".join(header)}.get(tail, text) + {
        "REPEAT": text, "CUT": rows[0][:20], "CUT#": "#close\t2013", "HASHES": hashes, "NOROWS": ""}.get(tail, tail)
    log = tmp_path / "conn.log"
    log.write_text(text)
    counted = split_log(log, read_header(log))
    assert split_log(log, read_header(log), lines=False) == counted
    if not tail.startswith("CUT"):  # a file with a cut-off last line is spooled, so its layout names other files
        assert readable_layout(log, read_header(log)) == counted


def test_the_comment_line_search_agrees_with_a_plain_search():
    # Rows with "#" inside fields (URIs, certificate subjects), and blocks made of little else.
    import random

    rng = random.Random(7)
    for _ in range(3000):
        body = bytes(rng.choice(b"#\na") for _ in range(rng.randint(1, 80)))
        for pos in range(len(body)):
            assert next_comment_line(body, pos) == body.find(b"\n#", pos), (body, pos)


@pytest.mark.spark
def test_the_spark_engine_refuses_a_changing_header_naming_the_line(concatenated, spark):
    from sensor_plugins.analysis.engines.zat_spark import LinkDir, find_sources

    whole = concatenated[0]
    line = split_log(whole, read_header(whole)).segments[1].line
    with LinkDir() as links, pytest.raises(LogError, match=rf"conn.log: line {line}: the header changes inside the "
                                                           "file .* the Spark engine reads one header per file"):
        find_sources(spark, [str(whole)], links)


# -- JSON time forms ---------------------------------------------------------------------


def mixed_json(tmp_path: Path, bad: str | None = None) -> tuple[Path, list[dt.datetime]]:
    """The zat JSON conn.log with every other ``ts`` as ISO 8601 text (and one ``bad`` value, if given)."""
    records = [json.loads(line) for line in JSON_CONN.read_text().splitlines() if line.strip()][:50]
    times = [dt.datetime.fromtimestamp(round(r["ts"] * 1e6) / 1e6, dt.UTC) for r in records]
    for i, r in enumerate(records):
        if i % 2:
            r["ts"] = times[i].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if bad is not None:
        records[30]["ts"] = bad
    path = tmp_path / "conn.log"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path, times


def test_json_ts_as_epoch_and_as_iso_text_both_read(tmp_path):
    path, times = mixed_json(tmp_path)
    got = read_log([path], "conn").collect().get_column("ts").to_list()
    assert got == times


@pytest.mark.parametrize("bad", ["yesterday", "2013-13-45T00:00:00Z"])
def test_a_json_ts_in_neither_form_is_refused_with_its_line(tmp_path, bad):
    path, _ = mixed_json(tmp_path, bad)
    with pytest.raises(LogError, match=rf"conn.log: line 31: ts '{bad}' is neither epoch seconds nor ISO 8601"):
        read_log([path], "conn").collect()


def test_a_json_field_first_set_on_the_last_line_is_read(tmp_path):
    # Zeek leaves unset fields out of a JSON line, so the columns are learnt from every line.
    records = [json.loads(line) for line in JSON_CONN.read_text().splitlines() if line.strip()][:50]
    for r in records:
        r.pop("service", None)
    records[-1]["service"] = "ssl"
    path = tmp_path / "conn.log"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    services = read_log([path], "conn").collect().get_column("service").to_list()
    assert services == [None] * 49 + ["ssl"]


def test_a_json_log_is_scanned_not_read_whole(tmp_path):
    # A day of JSON logs is not held in memory: the detections take the columns and rows
    # they need from a scan of the file (a TSV log is scanned the same way).
    path, _ = mixed_json(tmp_path)
    plan = read_log([path], "conn").select("uid").explain()
    assert "SCAN" in plan.upper() and "DF [" not in plan


# -- gzip bombs and size limits ----------------------------------------------------------


def bomb(path: Path, expanded: int, block: int = 64 << 20) -> Path:
    """A conn.log.gz, a header and a row, then ``expanded`` bytes of blank lines, which deflate
    about 1000 to 1: one compressed member repeated (a gzip file may hold many)."""
    header, rows = header_and_rows(ZAT_CONN)
    member = gzip.compress(b"\n" * block, compresslevel=9)
    with open(path, "wb") as out:
        out.write(gzip.compress(("".join(header) + rows[0]).encode()))
        for _ in range(expanded // block):
            out.write(member)
    return path


def peak_rss(argv: list[str]) -> tuple[int, str, int, float]:
    """Run the real program: exit code, stderr, its peak RSS in bytes (its own, by wait4), seconds taken."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "sensor_plugins", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, usage.ru_maxrss * 1024, time.monotonic() - started


def test_a_2_gib_gzip_bomb_is_refused_quickly_in_bounded_memory(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    gz = bomb(logs / "conn.log.gz", 2 * GIB)
    code, err, rss, took = peak_rss(["analyze", str(logs), "--scope", "all", "--format", "jsonl"])
    lines = err.strip().splitlines()
    assert (code, len(lines), "refused as a decompression bomb" in err, rss < 1.5 * GIB) == (2, 1, True, True), (
        err, rss)
    assert "gzip expands more than 100 times" in err
    print(f"bomb {gz.stat().st_size:,} bytes -> 2 GiB: exit {code} in {took:.1f} s, peak RSS {rss / 2**20:.0f} MiB")


def test_the_ratio_limit_is_an_option(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    bomb(logs / "conn.log.gz", 128 << 20, block=16 << 20)
    assert main(["analyze", str(logs), "--scope", "all", "--format", "jsonl", "--max-gzip-ratio", "5"]) == 2
    assert "more than 5 times" in capsys.readouterr().err


def test_the_size_limit_applies_to_plain_logs_too(tmp_path, capsys):
    code = main(["analyze", str(ZAT_CONN), "--format", "jsonl", "--max-log-bytes", "4096"])
    err = capsys.readouterr().err
    assert (code, "expands beyond 4,096 bytes (--max-log-bytes)" in err, len(err.strip().splitlines())) == (2, True, 1)


def test_gzip_within_the_limits_reads_as_the_plain_log(tmp_path):
    gz = tmp_path / "conn.log.gz"
    gz.write_bytes(gzip.compress(ZAT_CONN.read_bytes()))
    assert rows_of(read_log([gz], "conn")).equals(rows_of(read_log([ZAT_CONN], "conn")))


def test_an_option_s_limits_hold_for_its_run_only(tmp_path, capsys):
    main(["analyze", str(ZAT_CONN), "--format", "jsonl", "--max-log-bytes", "4096"])
    capsys.readouterr()
    assert len(read_log([ZAT_CONN], "conn").collect()) == len(header_and_rows(ZAT_CONN)[1])


@pytest.mark.spark
def test_the_spark_engine_refuses_the_same_bomb_in_one_line(tmp_path):
    # A process of its own: the command stops the Spark session it used, and in this process
    # that would be the session the other Spark tests share.
    logs = tmp_path / "logs"
    logs.mkdir()
    bomb(logs / "conn.log.gz", 256 << 20, block=16 << 20)
    proc = subprocess.run([sys.executable, "-m", "sensor_plugins", "analyze", str(logs), "--engine", "spark",
                           "--master", "local[1]", "--format", "jsonl", "--max-gzip-ratio", "20"],
                          capture_output=True, text=True, timeout=300, check=False)
    # The JVM prints its own start-up lines on stderr; ours are the ones that name the program.
    ours = [line for line in proc.stderr.splitlines() if line.startswith("sensor-plugins:")]
    assert (proc.returncode, len(ours), "Traceback" in proc.stderr) == (2, 1, False), proc.stderr
    assert "refused as a decompression bomb" in ours[0], ours


def test_zlib_garbage_inside_gzip_is_one_error(tmp_path):
    gz = tmp_path / "conn.log.gz"
    good = gzip.compress(ZAT_CONN.read_bytes())
    gz.write_bytes(good[:30] + zlib.compress(b"x")[:5] + good[35:])
    with pytest.raises(LogError, match=r"conn\.log\.gz"):
        read_log([gz], "conn").collect()


def test_tor_findings_survive_mixed_json_time_forms(tmp_path, capsys):
    """Connections to a listed exit on the day of the list: every one a finding, whichever form its ts has."""
    day = dt.datetime(2024, 2, 27, 12, tzinfo=dt.UTC)
    records = [{"ts": (day + dt.timedelta(minutes=i)).timestamp(), "uid": f"Ctor{i}", "id.orig_h": "192.0.2.10",
                "id.orig_p": 40000 + i, "id.resp_h": "101.99.92.179", "id.resp_p": 443, "proto": "tcp",
                "service": "ssl", "duration": 1.0, "orig_bytes": 100, "resp_bytes": 200, "conn_state": "SF"}
               for i in range(6)]
    counts = []
    for form in ("epoch", "mixed"):
        if form == "mixed":
            for i, r in enumerate(records):
                if i % 2:
                    r["ts"] = dt.datetime.fromtimestamp(r["ts"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        log = tmp_path / form / "conn.log"
        log.parent.mkdir()
        log.write_text("".join(json.dumps(r) + "\n" for r in records))
        main(["analyze", str(log), "--scope", "all", "--format", "jsonl"])
        found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        counts.append(sorted({u for f in found if f["category"] == "tor" for u in f.get("uids", [f.get("uid")])}))
    assert counts[0] == counts[1] and len(counts[0]) == 6, counts


def test_a_gzip_log_is_sized_as_it_expands_not_as_stored(tmp_path):
    """analyze keeps scoped logs in memory only below a size: a .gz must count as what it expands to."""
    from sensor_plugins.analysis.logfiles import input_bytes

    plain = ZAT_CONN.read_bytes()
    gz = tmp_path / "conn.log.gz"
    gz.write_bytes(gzip.compress(plain))
    hinted = input_bytes([gz])  # from the gzip trailer, before reading
    read_log([gz], "conn").collect()
    assert (hinted, input_bytes([gz]), gz.stat().st_size < len(plain)) == (len(plain), len(plain), True)
