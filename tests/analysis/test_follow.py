"""Follow mode: tailing live logs across rotation and restarts without losing or repeating."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from sensor_plugins.cli import main

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"
CATALOGUE = (
    "ranges:\n  - name: test-lab\n    cidr: {cidr}\n    country: ZZ\n    owner: test\n"
    "    source: test catalogue covering a real log\n    confidence: low\n"
)


def header_and_rows(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text().splitlines(keepends=True)
    header = "".join(x for x in lines if x.startswith("#") and not x.startswith("#close"))
    return header, [x for x in lines if not x.startswith("#")]


@pytest.fixture()
def setup(tmp_path: Path) -> dict[str, Path]:
    live = tmp_path / "live"
    live.mkdir()
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(CATALOGUE.format(cidr="10.0.0.0/8"))
    return {"live": live, "catalogue": catalogue, "checkpoint": tmp_path / "cp.json", "out": tmp_path / "out.jsonl",
            "tmp": tmp_path}


def follow(s: dict[str, Path], capsys=None, *extra: str) -> int:
    return main(["analyze", "--follow", str(s["live"]), "--checkpoint", str(s["checkpoint"]), "--once",
                 "--catalogue", str(s["catalogue"]), "--out", str(s["out"]), *extra])


def emitted(s: dict[str, Path]) -> Counter:
    rows = [json.loads(x) for x in s["out"].read_text().splitlines()]
    return Counter((r["uid"], r["reason"]) for r in rows)


def batch(s: dict[str, Path], log: Path) -> Counter:
    out = s["tmp"] / "batch.jsonl"
    main(["analyze", "--catalogue", str(s["catalogue"]), "--out", str(out), str(log)])
    return Counter((r["uid"], r["reason"]) for r in map(json.loads, out.read_text().splitlines()))


def read_part_then_grow(s: dict[str, Path]) -> tuple[str, list[str], Path]:
    """ssl.log with 300 rows, followed once, then 150 more rows not read yet."""
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    live = s["live"] / "ssl.log"
    live.write_text(header + "".join(rows[:300]))
    follow(s)
    with live.open("a") as handle:
        handle.write("".join(rows[300:450]))
    return header, rows, live


def test_rotation_mid_stream_loses_and_repeats_nothing(setup) -> None:
    s = setup
    # More rows, then Zeek rotates before we read them, then a new file fills up.
    header, rows, live = read_part_then_grow(s)
    os.rename(live, s["live"] / "ssl.2013-12-30-12-00-00.log")
    live.write_text(header + "".join(rows[450:]))
    follow(s)
    whole = s["tmp"] / "whole.log"
    whole.write_text(header + "".join(rows))
    assert emitted(s) == batch(s, whole)


def test_rotated_file_is_finished_even_after_a_restart(setup) -> None:
    s = setup
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    live = s["live"] / "ssl.log"
    live.write_text(header + "".join(rows[:200]))
    follow(s)
    with live.open("a") as handle:
        handle.write("".join(rows[200:]))
    os.rename(live, s["live"] / "ssl.old.log")
    whole = s["tmp"] / "whole.log"
    whole.write_text(header + "".join(rows))
    follow(s)
    assert emitted(s) == batch(s, whole)


def opened(header: str, stamp: str) -> str:
    """The header Zeek writes on a new file: the same one with its own #open time."""
    return header.replace("#open\t2017-10-21-13-04-55", f"#open\t{stamp}")


def one_more_rotation_then_the_rest(header: str, rows: list[str], live: Path, rotated_name: str) -> None:
    """Rows 450-600 in a new file that is rotated in turn, then the rest in the live one."""
    live.write_text(opened(header, "2017-10-21-14-00-00") + "".join(rows[450:600]))
    os.rename(live, live.with_name(rotated_name))
    live.write_text(opened(header, "2017-10-21-15-00-00") + "".join(rows[600:]))


def whole_log(s: dict[str, Path], header: str, rows: list[str]) -> Path:
    whole = s["tmp"] / "whole.log"
    whole.write_text(header + "".join(rows))
    return whole


def test_two_rotations_while_the_follower_is_down_lose_nothing(setup) -> None:
    s = setup
    header, rows, live = read_part_then_grow(s)
    # Down for two rotation periods: the file we were reading, then one we never saw,
    # each renamed away; an unrelated older rotation of the same log lies beside them.
    (s["live"] / "ssl.2017-10-20-00-00-00.log").write_text(opened(header, "2017-10-20-00-00-00") + rows[0])
    os.rename(live, s["live"] / "ssl.2017-10-21-13-04-55.log")
    one_more_rotation_then_the_rest(header, rows, live, "ssl.2017-10-21-14-00-00.log")
    follow(s)
    assert emitted(s) == batch(s, whole_log(s, header, rows))


def test_a_restart_after_a_finished_rotated_file_goes_on_with_the_next_one(setup) -> None:
    s = setup
    header, rows, live = read_part_then_grow(s)
    # Rotated, and the follower finishes the old file before the new one exists.
    os.rename(live, s["live"] / "ssl.1.log")
    follow(s)
    saved = json.loads(s["checkpoint"].read_text())["files"]["ssl"]
    assert (saved["done"], saved["offset"]) == (True, (s["live"] / "ssl.1.log").stat().st_size)
    # Down again while the next file is written and rotated in turn.
    one_more_rotation_then_the_rest(header, rows, live, "ssl.2.log")
    follow(s)
    assert emitted(s) == batch(s, whole_log(s, header, rows))


def test_a_rotated_file_compressed_before_it_was_read_is_named_not_skipped_quietly(setup, capsys) -> None:
    s = setup
    header, rows, live = read_part_then_grow(s)
    os.rename(live, s["live"] / "ssl.1.log")
    one_more_rotation_then_the_rest(header, rows, live, "ssl.2.log")
    middle = s["live"] / "ssl.2.log"
    with gzip.open(middle.with_name("ssl.2.log.gz"), "wb") as handle:
        handle.write(middle.read_bytes())
    middle.unlink()
    capsys.readouterr()
    follow(s)
    err = capsys.readouterr().err
    assert f"{middle}.gz: rotated and compressed before it was read" in err
    # Everything else is analysed: the rows before and after the compressed file.
    assert emitted(s) == batch(s, whole_log(s, header, rows[:450] + rows[600:]))


def test_restart_without_new_rows_emits_nothing_more(setup) -> None:
    s = setup
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    (s["live"] / "ssl.log").write_text(header + "".join(rows))
    follow(s)
    before = s["out"].read_text()
    assert follow(s) == 0 and s["out"].read_text() == before


def test_partial_last_line_waits_until_it_is_whole(setup) -> None:
    s = setup
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    live = s["live"] / "ssl.log"
    row = next(r for r in rows if "\tTLSv10\t" in r)
    live.write_text(header + row[:30])
    follow(s)
    with live.open("a") as handle:
        handle.write(row[30:])
    follow(s)
    assert emitted(s) == batch(s, live)


def test_crash_after_writing_before_checkpoint_does_not_repeat(setup) -> None:
    s = setup
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    live = s["live"] / "ssl.log"
    live.write_text(header + "".join(rows[:300]))
    follow(s)
    checkpoint = s["checkpoint"].read_text()
    with live.open("a") as handle:
        handle.write("".join(rows[300:]))
    follow(s)
    # Simulate a crash: the findings of the second batch were written, its checkpoint was not.
    s["checkpoint"].write_text(checkpoint)
    follow(s)
    assert emitted(s) == batch(s, live)


def nk_conn(tmp: Path, days: list[int]) -> tuple[str, list[str]]:
    """Real zat conn.log rows of 192.168.33.10, shifted onto the given day offsets."""
    header, rows = header_and_rows(ZAT / "conn.log")
    picked = [r for r in rows if r.split("\t")[2] == "192.168.33.10" and "\t54.230.86.87\t" in r][: len(days)]
    out = []
    for row, day in zip(picked, days, strict=True):
        cells = row.split("\t")
        cells[0] = f"{float(cells[0]) + day * 86400:.6f}"
        out.append("\t".join(cells))
    return header, out


def nk_reasons(s: dict[str, Path]) -> list[tuple[str, int]]:
    rows = [json.loads(x) for x in s["out"].read_text().splitlines()]
    return [(r["evidence"]["day"], r["evidence"]["connections"]) for r in rows if r["reason"] == "nk-traffic"]


def test_nk_traffic_day_is_emitted_once_when_the_day_is_over(setup) -> None:
    s = setup
    s["catalogue"].write_text(CATALOGUE.format(cidr="54.230.86.0/24"))
    header, rows = nk_conn(s["tmp"], [0, 0, 0, 1, 2])
    live = s["live"] / "conn.log"
    live.write_text(header + "".join(rows[:2]))
    follow(s)
    with live.open("a") as handle:
        handle.write(rows[2])
        handle.write(rows[3])
    follow(s)
    follow(s)
    with live.open("a") as handle:
        handle.write(rows[4])
    follow(s)
    assert nk_reasons(s) == [("2013-09-15", 3), ("2013-09-16", 1)]


def test_a_closed_days_nk_traffic_comes_out_in_time_order(setup) -> None:
    s = setup
    s["catalogue"].write_text(CATALOGUE.format(cidr="192.168.0.0/16"))
    header, rows = header_and_rows(ZAT / "conn.log")
    # A row two days later closes the day of the real rows.
    later = rows[-1].split("\t")
    later[0] = f"{float(later[0]) + 2 * 86400:.6f}"
    (s["live"] / "conn.log").write_text(header + "".join(rows) + "\t".join(later))
    follow(s)
    times = [json.loads(x)["ts"] for x in s["out"].read_text().splitlines() if '"nk-traffic"' in x]
    assert len(times) > 50 and times == sorted(times)


def test_checkpoint_of_another_directory_is_refused(setup, capsys) -> None:
    s = setup
    (s["live"] / "ssl.log").write_text(header_and_rows(ZAT / "tor_ssl.log")[0])
    other = s["tmp"] / "other"
    other.mkdir()
    s["checkpoint"].write_text(json.dumps({"version": 1, "directory": str(other), "files": {}}))
    assert follow(s) == 2 and "checkpoint belongs to" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_one_line_error(setup, capsys) -> None:
    s = setup
    s["checkpoint"].write_text("{not json")
    assert follow(s) == 2 and "unreadable checkpoint" in capsys.readouterr().err


def test_table_format_is_refused_in_follow_mode(setup, capsys) -> None:
    assert follow(setup, None, "--format", "table") == 2


def test_copytruncate_rotation_loses_and_repeats_nothing(setup) -> None:
    s = setup
    header, rows, live = read_part_then_grow(s)
    # logrotate copytruncate: copy, then cut the live file; Zeek goes on writing rows only.
    (s["live"] / "ssl.1.log").write_bytes(live.read_bytes())
    with live.open("r+") as handle:
        handle.truncate(0)
    with live.open("a") as handle:
        handle.write("".join(rows[450:]))
    assert follow(s) == 1
    whole = s["tmp"] / "whole.log"
    whole.write_text(header + "".join(rows))
    assert emitted(s) == batch(s, whole)


def test_a_second_run_into_the_same_out_without_its_checkpoint_is_refused(setup, capsys) -> None:
    s = setup
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    (s["live"] / "ssl.log").write_text(header + "".join(rows))
    follow(s)
    before = s["out"].read_bytes()
    s["checkpoint"].unlink()
    assert follow(s) == 2 and "already holds findings" in capsys.readouterr().err
    assert s["out"].read_bytes() == before


def test_a_checkpoint_written_for_another_out_is_refused(setup, capsys) -> None:
    s = setup
    (s["live"] / "ssl.log").write_text((ZAT / "tor_ssl.log").read_text())
    follow(s)
    s["out"] = s["tmp"] / "other.jsonl"
    assert follow(s) == 2 and "checkpoint was written for --out" in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [
    ("out_size", "12"), ("watermark", 5), ("tor_days", [1]), ("tor_repeat_done", "x"),
    ("files", {"ssl": {"path": "p", "dev": "1", "inode": 2, "offset": 3}}), ("nk_groups", [{"_day": 1}]),
])
def test_a_checkpoint_field_of_the_wrong_type_is_a_one_line_error(setup, capsys, field, value) -> None:
    s = setup
    (s["live"] / "ssl.log").write_text((ZAT / "tor_ssl.log").read_text())
    follow(s)
    data = json.loads(s["checkpoint"].read_text())
    data[field] = value
    s["checkpoint"].write_text(json.dumps(data))
    err = (follow(s), capsys.readouterr().err)
    assert (err[0], "malformed" in err[1], len(err[1].strip().splitlines())) == (2, True, 1)
