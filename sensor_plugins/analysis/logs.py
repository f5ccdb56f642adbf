"""Reading Zeek logs into typed polars LazyFrames: TSV, JSON, gzip-rotated archives, whole days.

Public interface (the report helper imports these):

- ``discover(paths) -> dict[str, list[Path]]``: log kind (``conn``, ``ssl``, ...) -> files,
  in name order. Directories are walked; rotated names like ``conn.00:00:00-01:00:00.log.gz``
  and ``.gz`` files are included. The kind is the TSV ``#path`` header when there is one,
  otherwise the file name up to its first dot, so ``tor_ssl.log`` (``#path ssl``) is ssl.
- ``read_log(files) -> pl.LazyFrame``: one lazy frame over all ``files`` of one kind, typed:
  ``time`` -> ``Datetime("us", "UTC")``, ``count``/``int``/``port`` -> Int64, ``double``/
  ``interval`` -> Float64 (seconds), ``bool`` -> Boolean, ``set``/``vector``/``table`` ->
  ``List(Utf8)``, everything else Utf8. Unset (``-``, or absent in JSON) is null;
  ``(empty)`` is ``""`` or ``[]``. Files whose columns differ are stacked with the union of
  their columns (missing ones null). Strings keep Zeek's own escaping (``\\x09``, ``\\\\``).
- ``LogSet`` and ``load_logset(paths) -> LogSet``: one attribute per supported kind, each a
  LazyFrame or None.

Reading goes through zat where zat is sound, and around it where it is not. zat's gaps,
each answered here (and each pinned by a test on a real row):

- ``zat.log_to_polars.LogToPolars`` calls ``pl.read_csv`` with the default quote character,
  so a ``"`` inside a field (user agents, URIs) opens a quoted field and the read fails or
  swallows rows: we scan with ``quote_char=None``. It is also eager; we scan lazily so a
  10M-row conn.log is streamed and only the columns a detection uses are parsed.
- ``zat.log_to_dataframe.LogToDataFrame`` passes ``comment="#"`` to pandas, which cuts a row
  at a ``#`` anywhere in it (URIs, certificate subjects): polars' ``comment_prefix`` only
  skips lines that *start* with ``#``, which is what Zeek's header and footer lines do.
- ``zat.zeek_log_reader.ZeekLogReader`` maps ``-`` to 0, False or 1970-01-02, and
  ``LogToPolars`` reads ``T``/``F`` as categories: we keep unset as null and bools as Boolean.
- zat gives naive local times (``datetime.fromtimestamp``): we give UTC-aware times.
- zat leaves ``(empty)`` as the text ``"(empty)"``: we map it to ``""`` or ``[]``.
- zat's header parser (``ZeekLogReader._parse_zeek_header``) opens files as text, so it
  cannot read gzip, and loops forever on a file without a ``#fields`` line: we parse the
  header ourselves (``logfiles.py``), from gzip too, with a line limit.
- zat's JSON loader (``JSONLogToDataFrame``) is pandas ``read_json``: eager, and it infers
  types per file; we use polars over every row and cast known Zeek fields to their types.
"""

from __future__ import annotations

import inspect
import io
import sys
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

import polars as pl

from sensor_plugins.analysis.logfiles import (  # noqa: F401  (discover: part of this module's interface)
    KINDS,
    KNOWN_TYPES,
    Layout,
    LogError,
    LogHeader,
    check_columns,
    discover,
    open_raw,
    parse_header_lines,
    read_header,
    readable_layout,
    spool_lines,
    whole_line_blocks,
)

UTC_US = pl.Datetime("us", "UTC")
# A row with fewer fields than the header (a cut-off or hand-edited line) must read as a
# row with nulls, not fail the whole file: polars 2 asks for that explicitly.
SHORT_ROWS: dict[str, str] = (
    {"missing_columns": "insert"} if "missing_columns" in inspect.signature(pl.scan_csv).parameters else {}
)
RAW_TYPES = ("addr", "subnet")


@dataclass
class LogSet:
    """One lazy frame per supported log kind; None when no file of that kind was given."""

    conn: pl.LazyFrame | None = None
    ssl: pl.LazyFrame | None = None
    x509: pl.LazyFrame | None = None
    http: pl.LazyFrame | None = None
    dns: pl.LazyFrame | None = None
    files: pl.LazyFrame | None = None
    notice: pl.LazyFrame | None = None
    weird: pl.LazyFrame | None = None
    intel: pl.LazyFrame | None = None

    def kinds(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


# Zeek's numeric types cast the same from TSV text and from JSON numbers; unset or
# malformed values become null rather than 0 (zat's pandas loader makes them 0).
NUMERIC_TYPES: dict[str, pl.DataType] = {
    "interval": pl.Float64(), "double": pl.Float64(), "count": pl.Int64(), "int": pl.Int64(), "port": pl.Int64(),
}


def zeek_type_expr(name: str, zeek_type: str, header: LogHeader) -> pl.Expr:
    """Cast one raw Utf8 TSV column to its typed form."""
    col = pl.col(name)
    if zeek_type == "time":
        return _epoch_to_utc(col.cast(pl.Float64, strict=False)).alias(name)
    if zeek_type in NUMERIC_TYPES:
        return col.cast(NUMERIC_TYPES[zeek_type], strict=False).alias(name)
    if zeek_type == "bool":
        return pl.when(col == "T").then(True).when(col == "F").then(False).otherwise(None).alias(name)
    if zeek_type.startswith(("set[", "vector[", "table[")):
        return (
            pl.when(col == header.empty_field)
            .then(pl.lit([], dtype=pl.List(pl.Utf8)))
            .otherwise(col.str.split(header.set_separator))
            .alias(name)
        )
    return pl.when(col == header.empty_field).then(pl.lit("")).otherwise(col).alias(name)


# The widest time kept: a number beyond it (1e300, inf, NaN) is as malformed as text would
# be, and becomes null rather than failing the whole read.
MAX_EPOCH_MICROS = 1 << 62


def _epoch_to_utc(seconds: pl.Expr) -> pl.Expr:
    # Epoch seconds with 6 decimals are below 2**53 microseconds until the year 2255, so
    # the float product rounds to the exact microsecond.
    micros = (seconds * 1_000_000).round()
    return (pl.when(micros.abs() <= MAX_EPOCH_MICROS).then(micros).cast(pl.Int64).cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"))


def _warn(message: str) -> None:
    print(f"sensor-plugins: warning: {message}", file=sys.stderr)


def reader_schema(header: LogHeader) -> dict[str, pl.DataType]:
    """The dtype the CSV reader gives each column: numbers and times as numbers, the rest text.

    The first column stays text whatever its type: header, footer and comment lines are
    told apart by a "#" at its start.
    """
    schema: dict[str, pl.DataType] = {}
    for i, (name, zeek_type) in enumerate(zip(header.fields, header.types, strict=True)):
        numeric = NUMERIC_TYPES.get(zeek_type, pl.Float64() if zeek_type == "time" else None)
        schema[name] = numeric if numeric is not None and i > 0 else pl.Utf8()
    return schema


def _scan_tsv(path: Path, header: LogHeader, layout: Layout) -> pl.LazyFrame:
    """Every segment of a TSV log, each typed by its own header, stacked (the union of their columns)."""
    if layout.dropped:
        # A log still being written ends in a partial row; reading it would give a row
        # with wrong or missing fields, so it is left out, and said so.
        _warn(f"{path}: last line is incomplete ({layout.dropped} bytes), skipped")
    if layout.direct:
        return _scan_rows(path, header, header.top_lines)
    frames = [_scan_rows(segment.rows or path, segment.header, 0) for segment in layout.segments]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _scan_rows(source: Path, header: LogHeader, skip: int) -> pl.LazyFrame:
    first = pl.col(header.fields[0])
    raw = pl.scan_csv(
        source,
        separator=header.separator,
        has_header=False,
        quote_char=None,
        # Skipping the header by count and dropping the other "#" lines (a footer, a
        # header of a file appended to this one) by their first field is the same as
        # comment_prefix="#", which costs a third of the scan's time on conn.log.
        skip_rows=skip,
        schema=reader_schema(header),
        # Numbers are parsed by the reader, which is cheaper than text then a cast; a
        # malformed one becomes null, as a non-strict cast would make it.
        ignore_errors=True,
        null_values=[header.unset_field],
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        raise_if_empty=False,
        **SHORT_ROWS,
    ).filter(~first.str.starts_with("#").fill_null(False))
    # Addresses are never "(empty)" and need no cast; leaving them untouched lets polars push
    # an address filter (the NK prefilter) down into the scan, ahead of every other cast.
    return raw.with_columns(
        zeek_type_expr(n, t, header)
        for n, t in zip(header.fields, header.types, strict=True)
        if t not in RAW_TYPES
    )


def _read_json(path: Path) -> pl.LazyFrame:
    # Streamed through the same bounded, bomb-checked decoder as TSV, and spooled as whole
    # lines of valid UTF-8 (a bad byte becomes U+FFFD rather than failing the file).
    spooled, dropped = spool_lines(path, lambda body: body.decode("utf-8", "replace").encode("utf-8"))
    if dropped:
        _warn(f"{path}: last line is incomplete ({dropped} bytes), skipped")
    if not spooled.stat().st_size:
        return pl.LazyFrame()
    # Scanned, not read: the detections take only the columns and rows they need, and a
    # large input streams as TSV does (3M conn rows with their ssl, x509 and http logs,
    # 2.3 GB of JSON: 1.4 GB at the peak against 2.5 GB read whole, in about the same
    # time; bench B3j). Every line is still read once to learn the columns: Zeek leaves
    # unset fields out, so any line may add one.
    schema = json_schema_in_chunks(spooled)
    if schema is None:
        raw = _json_checked(lambda: pl.scan_ndjson(spooled, infer_schema_length=None), str(path))
    else:
        raw = pl.scan_ndjson(spooled, schema=schema)
    return _typed_json(raw, raw.collect_schema(), spooled, str(path))


# polars infers a JSON file's schema on one thread (3.2 s for 1M conn rows, 400 MB, where
# the parse itself takes under 1 s on 2 cores), so a file of more than one chunk is
# inferred a chunk per core. Chunks are small so that those in flight add little to the
# peak (B3j).
JSON_INFER_CHUNK = 16 << 20


def json_schema_in_chunks(path: Path, chunk: int = JSON_INFER_CHUNK,
                          threads: int | None = None) -> dict[str, pl.DataType] | None:
    """The schema that polars' inference over the whole of ``path`` gives, inferred chunk by
    chunk on every core; None when that cannot be told apart from the chunks' schemas
    (their types differ, a chunk fails to parse, or there is one chunk or one core), for
    the caller to infer over the whole file, which also words any error.
    """
    threads = threads or pl.thread_pool_size()
    if threads < 2 or path.stat().st_size <= chunk:
        return None

    def infer(piece: bytes | bytearray) -> pl.Schema | None:
        try:
            return pl.scan_ndjson(io.BytesIO(piece), infer_schema_length=None).collect_schema()
        except pl.exceptions.PolarsError:
            return None

    schemas: list[pl.Schema | None] = []
    # Read, not mapped: the pages of a mapped file count in the peak RSS. At most one
    # chunk a core is in flight, plus the one being read.
    with open(path, "rb") as handle, ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[Future[pl.Schema | None]] = deque()
        for piece in whole_line_blocks(iter(lambda: handle.read(chunk), b"")):
            pending.append(pool.submit(infer, piece))
            if len(pending) >= threads:
                schemas.append(pending.popleft().result())
        schemas.extend(future.result() for future in pending)
    if any(schema is None for schema in schemas):
        return None
    return merge_json_schemas(schemas)


def merge_json_schemas(schemas: Sequence[Mapping[str, pl.DataType]]) -> dict[str, pl.DataType] | None:
    """The schema of the chunks together, as inference over all of them gives it: columns in
    order of first appearance; a column null in some chunks (``Null``, or ``List(Null)``
    for empty lists) takes the type the others give it. None when two chunks give one
    column two other types: polars' own widening then decides, and it is left to it.
    """
    merged: dict[str, pl.DataType] = {}
    for schema in schemas:
        for name, dtype in schema.items():
            have = merged.get(name)
            if have is None or _refines(have, dtype):
                merged[name] = dtype
            elif not (have == dtype or _refines(dtype, have)):
                return None
    return merged


def _refines(vague: pl.DataType, dtype: pl.DataType) -> bool:
    """Whether ``dtype`` is what a column inferred as ``vague`` becomes once a value is seen."""
    if vague == pl.Null:
        return True
    return vague == pl.List(pl.Null) and isinstance(dtype, pl.List)


def json_lines_frame(data: bytes, where: str) -> pl.DataFrame:
    """Zeek JSON lines -> a typed DataFrame (known fields cast to their Zeek types).

    A time that is neither epoch seconds nor ISO 8601 text is refused, naming its line.
    """
    # Non-UTF-8 bytes become U+FFFD rather than failing the whole file.
    data = data.decode("utf-8", "replace").encode("utf-8")
    if not data.strip():
        return pl.DataFrame()
    raw = _json_checked(lambda: pl.read_ndjson(io.BytesIO(data), infer_schema_length=None), where)
    return _typed_json(raw.lazy(), raw.schema, data, where).collect()


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def _json_checked(read: Callable[[], FrameT], where: str) -> FrameT:
    """What ``read`` gives; a polars error in reading JSON lines becomes one naming ``where``."""
    try:
        frame = read()
        if isinstance(frame, pl.LazyFrame):
            frame.collect_schema()  # a scan reads every line here, to learn the columns
        return frame
    except pl.exceptions.PolarsError as exc:  # ComputeError, SchemaError, ... all derive from it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogError(f"{where}: invalid JSON log line: {first[:200]}") from exc


def _typed_json(raw: pl.LazyFrame, schema: Mapping[str, pl.DataType], data: bytes | Path,
                where: str) -> pl.LazyFrame:
    """Known fields cast to their Zeek types; a column with no value at all typed as text."""
    casts = {name: _json_cast(name, dtype) for name, dtype in schema.items() if name in KNOWN_TYPES}
    _check_json_lines(raw, schema, casts, data, where)
    # A column whose every value is null or [] has no inferable type; give it Utf8 so that
    # stacking it with a TSV file of the same log works.
    typed = raw.with_columns(casts.values())
    return typed.with_columns(
        pl.col(name).cast(pl.List(pl.Utf8) if isinstance(dtype, pl.List) else pl.Utf8)
        for name, dtype in typed.collect_schema().items()
        if dtype == pl.Null or dtype == pl.List(pl.Null)
    )


def _check_json_lines(raw: pl.LazyFrame, schema: Mapping[str, pl.DataType], casts: Mapping[str, pl.Expr],
                      data: bytes | Path, where: str) -> None:
    """Read the time columns of every line once: a line that is not a JSON object, or a
    time that is neither epoch seconds nor ISO 8601 (the cast makes it null), is refused
    here, naming the file, and the line for a time."""
    times = [n for n, dtype in schema.items() if KNOWN_TYPES.get(n) == "time" and dtype != pl.Null]
    # With no time column the first column still makes polars read every line.
    columns = times or list(schema)[:1]
    if not columns:
        return
    unreadable = [pl.col(n).is_not_null() & casts[n].is_null() for n in times]
    query = raw.select(columns).with_row_index("_row")
    lost = _json_checked(lambda: query.filter(pl.any_horizontal(unreadable) if unreadable else pl.lit(False))
                         .head(1).collect(engine="streaming"), where)
    for name in times if lost.height else ():
        value = lost[name][0]
        if value is not None and lost.select(casts[name]).item() is None:
            raise LogError(f"{where}: line {_json_line(data, lost['_row'][0])}: {name} {str(value)[:40]!r} is "
                           "neither epoch seconds nor ISO 8601 time")


def _json_line(data: bytes | Path, row: int) -> int:
    """The line number of the ``row``-th JSON record (blank lines hold none): only an error needs it."""
    with io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb") as handle:
        seen = -1
        for number, line in enumerate(handle, 1):
            seen += bool(line.strip())
            if seen == row:
                return number
    return row + 1


def _json_time(col: pl.Expr) -> pl.Expr:
    """A JSON time given as epoch seconds (a number, or its text) or as ISO 8601 text, in one column.

    Zeek writes epoch numbers by default and ISO 8601 text under
    LogAscii::json_timestamps=JSON::TS_ISO8601; logs merged from sensors set up either way
    hold both, and JSON then gives the column as text.
    """
    text = col.cast(pl.Utf8)
    number = text.cast(pl.Float64, strict=False)
    iso = pl.when(number.is_null()).then(text).str.to_datetime(time_zone="UTC", strict=False)
    return pl.when(number.is_not_null()).then(_epoch_to_utc(number)).otherwise(iso.dt.cast_time_unit("us"))


def _json_cast(name: str, dtype: pl.DataType) -> pl.Expr:
    zeek_type = KNOWN_TYPES[name]
    col = pl.col(name)
    if zeek_type == "time":
        if dtype == pl.Utf8:
            return _json_time(col).alias(name)
        return _epoch_to_utc(col.cast(pl.Float64, strict=False)).alias(name)
    if zeek_type in NUMERIC_TYPES:
        return col.cast(NUMERIC_TYPES[zeek_type], strict=False).alias(name)
    if zeek_type == "bool":
        return col.cast(pl.Boolean, strict=False).alias(name)
    if zeek_type.startswith(("set[", "vector[", "table[")):
        if isinstance(dtype, pl.List):
            return col.cast(pl.List(pl.Utf8), strict=False).alias(name)
        return col.cast(pl.Utf8, strict=False).str.split(",").alias(name)
    return col.cast(pl.Utf8, strict=False).alias(name)


def read_file(path: Path, kind: str | None = None) -> pl.LazyFrame | None:
    """One file as a typed lazy frame; None when it holds no header and no rows.

    With ``kind``, a file lacking a column that every detection of that kind needs is
    refused, and one lacking a column some detections read gives a warning.
    """
    header = read_header(path)
    if header is None:
        if _has_data(path):
            raise LogError(f"{path}: not a Zeek log: no #fields header and not JSON")
        return None
    if header.is_json:
        frame = _read_json(path)
    else:
        layout = readable_layout(path, header)
        frame = _scan_tsv(path, header, layout)
    if kind is not None:
        if not header.is_json:
            # Rows under a header that changed inside the file are checked against that header.
            for i, segment in enumerate(layout.segments):
                where = f"{path}: line {segment.line}" if i else str(path)
                for warning in check_columns(where, kind, segment.header.fields):
                    _warn(warning)
        elif columns := frame.collect_schema().names():
            # Zeek's JSON writer leaves unset fields out, so only a column every detection
            # needs is checked; a JSON log with no rows has no columns and nothing to miss.
            check_columns(path, kind, columns, warn=False)
    return frame


def _has_data(path: Path) -> bool:
    try:
        with open_raw(path) as handle:
            return bool(handle.read(4096).strip())
    except (OSError, EOFError, zlib.error) as exc:
        raise LogError(f"{path}: cannot read log: {exc}") from exc


def read_log(files: Sequence[Path], kind: str | None = None) -> pl.LazyFrame:
    """All ``files`` of one kind as one typed lazy frame (the union of their columns)."""
    frames = [f for f in (read_file(Path(p), kind) for p in files) if f is not None]
    frames = [f for f in frames if f.collect_schema().len() > 0]
    if not frames:
        return pl.LazyFrame(schema={"ts": UTC_US, "uid": pl.Utf8})
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal_relaxed")


def load_logset(paths: Sequence[Path], found: Mapping[str, Sequence[Path]] | None = None) -> LogSet:
    """One lazy frame per supported kind of the logs under ``paths``; ``found`` is what
    ``logfiles.find_logs`` already found there, so the folders are not walked again."""
    if found is None:
        found = discover([Path(p) for p in paths])
    return LogSet(**{kind: read_log(files, kind) for kind, files in found.items() if kind in KINDS})
