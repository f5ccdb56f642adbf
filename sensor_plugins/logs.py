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
  header ourselves, from gzip too, with a line limit.
- zat's JSON loader (``JSONLogToDataFrame``) is pandas ``read_json``: eager, and it infers
  types per file; we use polars over every row and cast known Zeek fields to their types.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import polars as pl

from sensor_plugins.errors import SensorPluginsError

KINDS = ("conn", "ssl", "x509", "http", "dns", "files", "notice", "weird", "intel")
UTC_US = pl.Datetime("us", "UTC")
MAX_HEADER_LINES = 64
RAW_TYPES = ("addr", "subnet")
MAX_HEADER_BYTES = 1 << 20
LOG_NAME_RE = re.compile(r"^([A-Za-z0-9_]+)\..*log(\.gz)?$")
SEPARATOR_RE = re.compile(r"^#separator\s+(\S+)")

# The Zeek type of every field a detection reads. JSON logs carry no #types line, and a
# TSV file may lack a column (schema drift), so these give both cases the right dtype.
KNOWN_TYPES: dict[str, str] = {
    "ts": "time", "uid": "string", "id.orig_h": "addr", "id.orig_p": "port",
    "id.resp_h": "addr", "id.resp_p": "port", "proto": "enum", "service": "string",
    "duration": "interval", "orig_bytes": "count", "resp_bytes": "count", "conn_state": "string",
    "orig_pkts": "count", "resp_pkts": "count", "nk_range": "string", "nk_side": "string",
    "version": "string", "cipher": "string", "server_name": "string", "established": "bool",
    "cert_chain_fps": "vector[string]", "cert_chain_fuids": "vector[string]",
    "sni_matches_cert": "bool", "validation_status": "string", "subject": "string",
    "issuer": "string", "issuer_subject": "string", "not_valid_before": "time",
    "not_valid_after": "time", "dh_param_size": "count",
    "fingerprint": "string", "id": "string", "certificate.subject": "string",
    "certificate.issuer": "string", "certificate.not_valid_before": "time",
    "certificate.not_valid_after": "time", "certificate.key_alg": "string",
    "certificate.sig_alg": "string", "certificate.key_type": "string",
    "certificate.key_length": "count", "san.dns": "vector[string]",
    "host": "string", "uri": "string", "user_agent": "string", "method": "string",
    "status_code": "count", "orig_mime_types": "vector[string]", "resp_mime_types": "vector[string]",
    "fuid": "string", "mime_type": "string", "filename": "string", "tx_hosts": "set[addr]",
    "rx_hosts": "set[addr]", "conn_uids": "set[string]", "source": "string",
    "note": "enum", "msg": "string", "sub": "string", "src": "addr", "dst": "addr", "p": "port",
    "name": "string", "addl": "string", "query": "string",
    "seen.indicator": "string", "seen.indicator_type": "enum", "seen.where": "enum",
    "sources": "set[string]", "matched": "set[enum]",
}


class LogError(SensorPluginsError):
    """A log file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class LogHeader:
    """What a Zeek TSV header says about the rows below it."""

    path: str
    fields: tuple[str, ...]
    types: tuple[str, ...]
    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    is_json: bool = False


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


def _open_raw(path: Path) -> io.BufferedIOBase:
    try:
        return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    except OSError as exc:
        raise LogError(f"{path}: cannot open log: {exc.strerror}") from exc


def _is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise LogError(f"{path}: cannot open log: {exc.strerror}") from exc


def _unescape_separator(text: str) -> str:
    # The #separator line spells the separator as an escape such as "\x09".
    if text.startswith("\\x") and len(text) == 4:
        return chr(int(text[2:], 16))
    return text


def parse_header_lines(lines: Iterable[bytes], where: str) -> LogHeader | None:
    """The header of a TSV log from its first lines; None when they hold no ``#fields``.

    A JSON log (first non-blank line starts with ``{``) gives a header with ``is_json``.
    """
    values: dict[str, str] = {}
    separator = "\t"
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            return LogHeader(path="", fields=(), types=(), is_json=True)
        if not line.startswith("#"):
            break
        match = SEPARATOR_RE.match(line)
        if match:
            separator = _unescape_separator(match.group(1))
            continue
        key, _, rest = line[1:].partition(separator)
        values[key] = rest
        if key == "types":
            break
    if "fields" not in values:
        return None
    names = tuple(values["fields"].split(separator))
    types = tuple(values.get("types", "").split(separator)) if "types" in values else ()
    if len(separator) != 1:
        raise LogError(f"{where}: #separator must be one character")
    if types and len(types) != len(names):
        raise LogError(f"{where}: #types has {len(types)} entries but #fields has {len(names)}")
    if len(set(names)) != len(names):
        raise LogError(f"{where}: #fields names a column twice")
    return LogHeader(
        path=values.get("path", "").strip(),
        fields=names,
        types=types or tuple(KNOWN_TYPES.get(n, "string") for n in names),
        separator=separator,
        set_separator=values.get("set_separator", ","),
        empty_field=values.get("empty_field", "(empty)"),
        unset_field=values.get("unset_field", "-"),
    )


def read_header(path: Path) -> LogHeader | None:
    """The header of ``path`` (gzip or plain); None for an empty file or one without ``#fields``."""
    try:
        with _open_raw(path) as handle:
            lines = []
            size = 0
            for _ in range(MAX_HEADER_LINES):
                line = handle.readline(MAX_HEADER_BYTES)
                if not line:
                    break
                lines.append(line)
                size += len(line)
                if size > MAX_HEADER_BYTES or not line.startswith(b"#") or line.startswith(b"#types"):
                    break
    except (OSError, EOFError, zlib.error) as exc:
        raise LogError(f"{path}: cannot read log header: {exc}") from exc
    return parse_header_lines(lines, str(path))


def log_kind(path: Path, header: LogHeader | None) -> str:
    if header is not None and header.path:
        return header.path
    match = LOG_NAME_RE.match(path.name)
    return match.group(1) if match else path.name.split(".", 1)[0]


def _candidate_files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".") and LOG_NAME_RE.match(p.name)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise LogError(f"{path}: no such log file or directory")
    return found


def discover(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """Log kind -> its files (rotated and gzip ones included), each list in name order.

    Files named explicitly are always read; files found by walking a directory are kept
    only when their kind is one the analyzer uses. An empty file has no kind of its own,
    so its name decides.
    """
    explicit = {Path(p) for p in paths if Path(p).is_file()}
    kinds: dict[str, list[Path]] = {}
    for path in _candidate_files(paths):
        kind = log_kind(path, read_header(path))
        if kind in KINDS or path in explicit:
            kinds.setdefault(kind, []).append(path)
    return {k: sorted(set(v), key=lambda p: (p.name, str(p))) for k, v in kinds.items()}


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


def _epoch_to_utc(seconds: pl.Expr) -> pl.Expr:
    # Epoch seconds with 6 decimals are below 2**53 microseconds until the year 2255, so
    # the float product rounds to the exact microsecond.
    return (seconds * 1_000_000).round().cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _complete_bytes(path: Path) -> tuple[bytes | None, int]:
    """For a gzip file, or a file whose last line is cut off, the bytes up to the last newline.

    Returns (None, 0) for a whole plain file, which polars then scans straight from disk.
    The second value is how many bytes of a cut-off last line were left out.
    """
    gz = _is_gzip(path)
    if not gz:
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() == 0:
                    return None, 0
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) == b"\n":
                    return None, 0
                handle.seek(0)
                data = handle.read()
        except OSError as exc:
            raise LogError(f"{path}: cannot read log: {exc.strerror}") from exc
    else:
        try:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise LogError(f"{path}: broken gzip archive: {exc}") from exc
    cut = data.rfind(b"\n") + 1
    return data[:cut], len(data) - cut


def _warn(message: str) -> None:
    print(f"sensor-plugins: warning: {message}", file=sys.stderr)


def _scan_tsv(path: Path, header: LogHeader) -> pl.LazyFrame:
    data, dropped = _complete_bytes(path)
    if dropped:
        # A log still being written ends in a partial row; reading it would give a row
        # with wrong or missing fields, so it is left out, and said so.
        _warn(f"{path}: last line is incomplete ({dropped} bytes), skipped")
    source: Path | bytes = path if data is None else data
    raw = pl.scan_csv(
        source,
        separator=header.separator,
        has_header=False,
        quote_char=None,
        comment_prefix="#",
        schema=dict.fromkeys(header.fields, pl.Utf8),
        null_values=[header.unset_field],
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        raise_if_empty=False,
    )
    # Addresses are never "(empty)" and need no cast; leaving them untouched lets polars push
    # an address filter (the NK prefilter) down into the scan, ahead of every other cast.
    return raw.with_columns(
        zeek_type_expr(n, t, header)
        for n, t in zip(header.fields, header.types, strict=True)
        if t not in RAW_TYPES
    )


def _read_json(path: Path) -> pl.LazyFrame:
    try:
        with _open_raw(path) as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise LogError(f"{path}: cannot read JSON log: {exc}") from exc
    cut = data.rfind(b"\n") + 1
    if data[cut:].strip():
        _warn(f"{path}: last line is incomplete ({len(data) - cut} bytes), skipped")
        data = data[:cut]
    return json_lines_frame(data, str(path)).lazy()


def json_lines_frame(data: bytes, where: str) -> pl.DataFrame:
    """Zeek JSON lines -> a typed DataFrame (known fields cast to their Zeek types)."""
    # Non-UTF-8 bytes become U+FFFD rather than failing the whole file.
    text = data.decode("utf-8", "replace").encode("utf-8")
    if not text.strip():
        return pl.DataFrame()
    try:
        frame = pl.read_ndjson(io.BytesIO(text), infer_schema_length=None)
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogError(f"{where}: invalid JSON log line: {first[:200]}") from exc
    frame = frame.with_columns(
        _json_cast(name, frame.schema[name]) for name in frame.columns if name in KNOWN_TYPES
    )
    # A column whose every value is null or [] has no inferable type; give it Utf8 so that
    # stacking it with a TSV file of the same log works.
    return frame.with_columns(
        pl.col(name).cast(pl.List(pl.Utf8) if isinstance(dtype, pl.List) else pl.Utf8)
        for name, dtype in frame.schema.items()
        if dtype == pl.Null or dtype == pl.List(pl.Null)
    )


def _json_cast(name: str, dtype: pl.DataType) -> pl.Expr:
    zeek_type = KNOWN_TYPES[name]
    col = pl.col(name)
    if zeek_type == "time":
        if dtype == pl.Utf8:
            # LogAscii::json_timestamps=JSON::TS_ISO8601 writes times as ISO 8601 text.
            return col.str.to_datetime(time_zone="UTC", strict=False).dt.cast_time_unit("us").alias(name)
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


def read_file(path: Path) -> pl.LazyFrame | None:
    """One file as a typed lazy frame; None when it holds no header and no rows."""
    header = read_header(path)
    if header is None:
        if _has_data(path):
            raise LogError(f"{path}: not a Zeek log: no #fields header and not JSON")
        return None
    if header.is_json:
        return _read_json(path)
    return _scan_tsv(path, header)


def _has_data(path: Path) -> bool:
    try:
        with _open_raw(path) as handle:
            return bool(handle.read(4096).strip())
    except (OSError, EOFError, zlib.error) as exc:
        raise LogError(f"{path}: cannot read log: {exc}") from exc


def read_log(files: Sequence[Path]) -> pl.LazyFrame:
    """All ``files`` of one kind as one typed lazy frame (the union of their columns)."""
    frames = [f for f in (read_file(Path(p)) for p in files) if f is not None]
    frames = [f for f in frames if f.collect_schema().len() > 0]
    if not frames:
        return pl.LazyFrame(schema={"ts": UTC_US, "uid": pl.Utf8})
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal_relaxed")


def load_logset(paths: Sequence[Path]) -> LogSet:
    """Discover the logs under ``paths`` and open one lazy frame per supported kind."""
    found = discover([Path(p) for p in paths])
    return LogSet(**{kind: read_log(files) for kind, files in found.items() if kind in KINDS})


def input_bytes(paths: Sequence[Path]) -> int:
    """Total size on disk of the logs under ``paths`` (used to decide on a progress display)."""
    total = 0
    for files in discover([Path(p) for p in paths]).values():
        total += sum(p.stat().st_size for p in files)
    return total
