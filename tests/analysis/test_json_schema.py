"""A JSON log's schema, inferred a chunk per core, is the one polars infers over the whole file, or none at all."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_plugins.analysis import logs
from sensor_plugins.analysis.logs import LogError, json_schema_in_chunks, merge_json_schemas, read_log

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8), st.lists(st.integers(0, 99), max_size=3), st.lists(st.text(max_size=4), max_size=3),
    st.just([]),
)
LINES = st.lists(st.dictionaries(st.sampled_from(["ts", "uid", "a", "b", "c.d"]), VALUES, min_size=1), min_size=1,
                 max_size=40)


def whole_file(path: Path) -> dict[str, pl.DataType]:
    return dict(pl.scan_ndjson(path, infer_schema_length=None).collect_schema())


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@settings(max_examples=300, deadline=None)
@given(rows=LINES, chunk=st.integers(1, 200))
def test_chunked_inference_agrees_with_the_whole_file_or_declines(rows: list[dict], chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp) / "conn.log", rows)
        try:
            expected = whole_file(path)
        except pl.exceptions.PolarsError:
            expected = None  # polars cannot read it at all; the chunks must not claim a schema
        assert json_schema_in_chunks(path, chunk=chunk, threads=2) in (None, expected)


def zeek_like_rows(count: int) -> list[dict]:
    """Conn-like lines: an unset field is left out, as Zeek does, so columns come and go."""
    rows = []
    for i in range(count):
        row: dict = {"ts": 1708992000.25 + i, "uid": f"C{i:07d}", "id.orig_h": "10.0.0.1", "proto": "tcp"}
        if i % 3:
            row["service"] = "ssl"
        if i % 5 == 0:
            row["tunnel_parents"] = []
        if i > count // 2:
            row["orig_bytes"] = i
        rows.append(row)
    rows.append({**rows[-1], "uid": "Clast", "late_field": ["x", "y"]})  # first set on the last line
    return rows


def test_a_zeek_like_log_is_inferred_in_chunks_and_gives_the_whole_files_schema(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "conn.log", zeek_like_rows(2000))
    chunked = json_schema_in_chunks(path, chunk=4096, threads=2)
    assert chunked is not None
    assert chunked == whole_file(path)
    assert list(chunked)[-1] == "late_field"


def test_chunks_that_give_a_column_two_types_leave_the_choice_to_polars(tmp_path: Path) -> None:
    rows = [{"ts": 1.0 + i, "a": i} for i in range(500)] + [{"ts": 600.0 + i, "a": f"x{i}"} for i in range(500)]
    path = write_lines(tmp_path / "conn.log", rows)
    assert json_schema_in_chunks(path, chunk=2048, threads=2) is None
    assert merge_json_schemas([{"a": pl.Int64()}, {"a": pl.Utf8()}]) is None
    assert merge_json_schemas([{"a": pl.Null()}, {"a": pl.List(pl.Null())}, {"a": pl.List(pl.Utf8())},
                               {"b": pl.Int64()}]) == {"a": pl.List(pl.Utf8()), "b": pl.Int64()}


def test_a_log_read_in_chunks_is_the_log_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_lines(tmp_path / "conn.log", zeek_like_rows(3000))
    whole = read_log([path]).collect()
    monkeypatch.setattr(logs, "JSON_INFER_CHUNK", 8192)
    monkeypatch.setattr(logs.pl, "thread_pool_size", lambda: 2)
    chunked = read_log([path]).collect()
    assert chunked.equals(whole)
    assert chunked["late_field"].to_list()[-1] == ["x", "y"]


def test_a_bad_line_in_a_later_chunk_is_refused_naming_the_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conn.log"
    write_lines(path, zeek_like_rows(3000))
    with path.open("a") as handle:
        handle.write('["not", "an", "object"]\n')
    monkeypatch.setattr(logs, "JSON_INFER_CHUNK", 8192)
    monkeypatch.setattr(logs.pl, "thread_pool_size", lambda: 2)
    with pytest.raises(LogError, match=r"conn\.log: invalid JSON log line"):
        read_log([path]).collect()
