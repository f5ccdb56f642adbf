"""Zeek logs into Spark DataFrames through zat's ``LogToSparkDF``, with its traps closed.

zat's Spark loader is the ecosystem's path to Spark, so the Spark engine reads with it, in
a thin subclass. Each trap of zat 0.4.9, and its answer here (each pinned by a test on a
real row in tests/analysis/test_spark_zat.py):

- ``fillna=True`` by default turns unset numbers into 0 and unset text into ``"-"``, so a
  missing byte count would read as zero: we always read with ``fillna=False``.
- ``double`` and ``interval`` become ``FloatType`` (32 bits: 7 digits, so a duration of
  1.234567 s comes back as 1.2345670461654663) and ``int``/``port`` 32-bit integers: the
  type map here gives 64-bit doubles and longs, the local reader's Float64 and Int64.
- ``spark.read.csv`` keeps its default quote character ``"``, so a field starting with
  ``"`` (a user agent, a URI) swallows the separators up to the next quote and shifts
  every later field: we read with the quote character switched off.
- ``set``/``vector`` stay one text column and ``(empty)`` stays the text ``"(empty)"``;
  ``time`` is cast from a double with Spark's truncating cast and ``bool`` by way of
  text: here every value is typed by the local reader's own expressions
  (``logs.zeek_type_expr``) on the Arrow batches, so both engines give the same values.
- the header reader (``zat.utils.field_info.get_field_info``) opens files as text, so it
  cannot read a ``.gz`` log (and loops on a file without ``#fields``): headers are read
  with ``logfiles.read_header``, gzip and a line limit included.
- column names with dots are renamed ``id.orig_h`` -> ``id_orig_h``, which loses the names
  the detections and findings use (and could collide with a real field): inside Spark a
  name is encoded reversibly (``spark_name``) and decoded at the Arrow boundary.

Spark itself adds one: Hadoop paths cannot hold ``:``, which every rotated zeekctl
archive name has (``conn.00:00:00-01:00:00.log.gz``). Local files are read through
symbolic links with plain names in a directory made for the run.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from zat.log_to_sparkdf import LogToSparkDF

from sensor_plugins.analysis.logfiles import (
    KINDS,
    KNOWN_TYPES,
    LOG_NAME_RE,
    MAX_HEADER_LINES,
    LogError,
    LogHeader,
    discover,
    parse_header_lines,
)

URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
GLOB_CHARS = re.compile(r"[*?\[]")


def spark_name(name: str) -> str:
    """A column name Spark's analyzer accepts everywhere (no dots), reversible by table."""
    return name.replace(".", "__")


@dataclass(frozen=True)
class Source:
    """Files of one log kind that share one header, as URIs Spark can read."""

    kind: str
    header: LogHeader
    uris: tuple[str, ...]


class ZatSparkReader(LogToSparkDF):
    """``LogToSparkDF`` with 64-bit numbers, no quote character, gzip headers and no fill."""

    def __init__(self, spark: SparkSession) -> None:
        super().__init__(spark)
        # zat maps double/interval to FloatType and int/port to IntegerType; times stay
        # doubles until the local reader's own conversion rounds them to microseconds.
        self.type_map.update({
            "double": T.DoubleType(), "interval": T.DoubleType(), "int": T.LongType(), "port": T.LongType(),
            "count": T.LongType(), "time": T.DoubleType(), "bool": T.StringType(),
        })

    def create_dataframe(self, log_filename: str | Sequence[str], fillna: bool = False,  # type: ignore[override]
                         header: LogHeader | None = None) -> DataFrame:
        """The rows of ``log_filename`` (one URI or several sharing ``header``), untyped
        beyond numbers: names encoded by ``spark_name``, unset values null."""
        if fillna:
            raise ValueError("fillna would turn unset values into 0 and '-'; detections need them null")
        uris = [log_filename] if isinstance(log_filename, str) else list(log_filename)
        if header is None:
            header = read_header_any(self.spark, uris[0])
            if header is None:
                raise LogError(f"{uris[0]}: not a Zeek log: no #fields header")
        schema = self.build_spark_schema([spark_name(n) for n in header.fields], list(header.types))
        return self.spark.read.csv(
            uris, schema=schema, sep=header.separator, comment="#", nullValue=header.unset_field,
            # "" switches the quote character off (Spark then uses U+0000, which Zeek escapes).
            quote="", escape="", mode="PERMISSIVE", encoding="UTF-8",
            ignoreLeadingWhiteSpace=False, ignoreTrailingWhiteSpace=False,
        )


def read_header_any(spark: SparkSession, uri: str) -> LogHeader | None:
    """The header of any URI Spark can read (gzip included), through Spark's own text reader."""
    lines = spark.sparkContext.textFile(uri).take(MAX_HEADER_LINES)
    return parse_header_lines((line.encode("utf-8") + b"\n" for line in lines), uri)


def _local_path(arg: str) -> Path | None:
    if arg.startswith("file://"):
        return Path(arg[len("file://"):])
    if URI_RE.match(arg):
        return None
    return Path(arg)


def _expand_local(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        text = str(path)
        if GLOB_CHARS.search(text) and not path.exists():
            matched = sorted(glob.glob(text, recursive=True))
            if not matched:
                raise LogError(f"{text}: no log file matches")
            out += [Path(m) for m in matched]
        else:
            out.append(path)
    return out


def _remote_files(spark: SparkSession, uri: str) -> list[str]:
    """Files under a Hadoop URI (a file, a directory tree or a glob), named like Zeek logs."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(conf)
    statuses = fs.globStatus(path) or []
    found: list[str] = []
    for status in statuses:
        if status.isDirectory():
            it = fs.listFiles(status.getPath(), True)
            while it.hasNext():
                name = it.next().getPath()
                if LOG_NAME_RE.match(name.getName()) and not name.getName().startswith("."):
                    found.append(name.toString())
        else:
            found.append(status.getPath().toString())
    if not found:
        raise LogError(f"{uri}: no such log file or directory")
    return sorted(found)


class LinkDir:
    """Plain-named symbolic links to local logs, because Hadoop paths cannot hold ':'."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sensor-plugins-spark-"))
        self._n = 0

    def uri(self, path: Path) -> str:
        self._n += 1
        suffix = ".gz" if path.name.endswith(".gz") else ""
        link = self.root / f"{self._n:06d}.log{suffix}"
        os.symlink(path.resolve(), link)
        return link.as_uri()

    def __enter__(self) -> LinkDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for link in self.root.iterdir():
            link.unlink()
        self.root.rmdir()


def find_sources(spark: SparkSession, args: Sequence[str], links: LinkDir) -> list[Source]:
    """Group every log under ``args`` by kind and header; only the kinds analyze reads."""
    groups: dict[tuple[str, LogHeader], list[str]] = {}
    local = [p for p in (_local_path(a) for a in args) if p is not None]
    if local:
        from sensor_plugins.analysis.logfiles import check_one_header, read_header

        for kind, files in discover(_expand_local(local)).items():
            if kind not in KINDS:
                continue
            for path in files:
                header = read_header(path)
                if header is not None:
                    # Spark's CSV reader takes one header for all of a file's rows, and
                    # decompresses without a limit: both are checked here, on the driver.
                    check_one_header(path, header, "the Spark engine")
                    groups.setdefault((kind, replace(header, top_lines=0)), []).append(links.uri(path))
    for arg in args:
        if _local_path(arg) is not None:
            continue
        for uri in _remote_files(spark, arg):
            if ":" in uri.split("://", 1)[1]:
                raise LogError(f"{uri}: Hadoop paths cannot hold ':'; copy or rename rotated logs first")
            header = read_header_any(spark, uri)
            if header is None:
                continue
            match = LOG_NAME_RE.match(uri.rsplit("/", 1)[-1])
            kind = header.path or (match.group(1) if match else "")
            if kind in KINDS:
                groups.setdefault((kind, replace(header, top_lines=0)), []).append(uri)
    return [Source(kind, header, tuple(uris)) for (kind, header), uris in groups.items()]


def spark_arrow(frame):
    """polars' Arrow (large and view types) as the plain types Spark's Arrow reader takes."""
    import polars as pl
    import pyarrow as pa

    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        return t

    return table.cast(pa.schema([pa.field(f.name, plain(f.type)) for f in table.schema]))



# --- typing on Arrow batches, with the local reader's own expressions ----------------------

def polars_to_spark(dtype: object) -> T.DataType:
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return T.TimestampType()
    if isinstance(dtype, pl.List):
        return T.ArrayType(T.StringType())
    return {pl.Int64: T.LongType(), pl.Float64: T.DoubleType(), pl.Boolean: T.BooleanType()}.get(
        dtype, T.StringType())  # type: ignore[call-overload]


def local_types(header: LogHeader) -> dict[str, object]:
    """The polars dtype the local reader gives each column of ``header``."""
    import polars as pl

    from sensor_plugins.analysis.logs import NUMERIC_TYPES, UTC_US

    out: dict[str, object] = {}
    for name, zeek_type in zip(header.fields, header.types, strict=True):
        if zeek_type == "time":
            out[name] = UTC_US
        elif zeek_type in NUMERIC_TYPES:
            out[name] = NUMERIC_TYPES[zeek_type]
        elif zeek_type == "bool":
            out[name] = pl.Boolean()
        elif zeek_type.startswith(("set[", "vector[", "table[")):
            out[name] = pl.List(pl.Utf8)
        else:
            out[name] = pl.Utf8()
    return out


def spark_schema(types: dict[str, object]) -> T.StructType:
    return T.StructType([T.StructField(spark_name(n), polars_to_spark(t), True) for n, t in types.items()])


def tsv_typer(header: LogHeader):
    """Batches of ``create_dataframe`` rows -> the local reader's typed columns."""

    def run(batches: Iterator) -> Iterator:
        import polars as pl

        from sensor_plugins.analysis.logs import RAW_TYPES, zeek_type_expr

        names = {spark_name(n): n for n in header.fields}
        for batch in batches:
            frame = pl.from_arrow(batch).rename(names)
            typed = frame.with_columns(
                zeek_type_expr(n, t, header) for n, t in zip(header.fields, header.types, strict=True)
                if t not in RAW_TYPES
            )
            yield from spark_arrow(typed.rename({v: k for k, v in names.items()})).to_batches()

    return run


def json_typer(columns: dict[str, object]):
    """Batches of JSON text lines -> the known Zeek fields, typed as the local reader types them."""

    def run(batches: Iterator) -> Iterator:

        from sensor_plugins.analysis.detect.frames import ensure
        from sensor_plugins.analysis.logs import json_lines_frame

        for batch in batches:
            lines = [v for v in batch.column(0).to_pylist() if v and v.strip()]
            if not lines:
                continue
            frame = json_lines_frame(("\n".join(lines) + "\n").encode("utf-8"), "JSON log").lazy()
            frame = ensure(frame, columns).select(list(columns)).collect()  # type: ignore[arg-type]
            yield from spark_arrow(frame.rename({n: spark_name(n) for n in columns})).to_batches()

    return run


def json_columns() -> dict[str, object]:
    """Every known Zeek field, with its local dtype: the columns of a JSON log in Spark.

    JSON lines leave unset fields out, so which fields a log has is only known after
    reading every line; a fixed set, null where absent, needs no such pass. Detections
    read only known fields, and ``ensure`` gives a missing one as nulls anyway.
    """
    fake = LogHeader(path="", fields=tuple(KNOWN_TYPES), types=tuple(KNOWN_TYPES.values()))
    return local_types(fake)


def typed_frame(spark: SparkSession, source: Source) -> tuple[DataFrame, dict[str, object]]:
    """One source as a Spark DataFrame with the local reader's types; and those types."""
    if source.header.is_json:
        columns = json_columns()
        text = spark.read.text(list(source.uris))
        return text.mapInArrow(json_typer(columns), spark_schema(columns)), columns
    raw = ZatSparkReader(spark).create_dataframe(list(source.uris), header=source.header)
    types = local_types(source.header)
    return raw.mapInArrow(tsv_typer(source.header), spark_schema(types)), types
