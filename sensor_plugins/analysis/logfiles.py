"""Finding Zeek log files and reading their headers, without polars.

A command can size its input here before polars loads, which matters because polars'
allocator is configured from the environment when its library loads (see analysis/command.py).
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import io
import mmap
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sensor_plugins.atomic import make_locked_temp_dir
from sensor_plugins.errors import SensorPluginsError

KINDS = ("conn", "ssl", "x509", "http", "dns", "files", "notice", "weird", "intel")
MAX_HEADER_LINES = 64
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
    "ja4": "string", "nk_client_ciphers": "vector[string]",
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


# Columns without which no detection of a kind can run: a log lacking one is refused,
# naming the file and the column, rather than giving a fraction of the findings.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "conn": ("ts", "id.orig_h", "id.resp_h"),
    "ssl": ("ts", "id.orig_h", "id.resp_h"),
    "http": ("ts", "id.orig_h", "id.resp_h"),
    "notice": ("ts", "note"),
}
# Columns some detections read: without one those detections see it unset, which is said.
USEFUL_COLUMNS: dict[str, dict[str, str]] = {
    "conn": {"uid": "evidence links", "id.orig_p": "bittorrent ports", "id.resp_p": "bittorrent ports",
             "proto": "dht", "service": "bittorrent service and nk-traffic",
             "orig_bytes": "dht and nk-traffic volumes", "resp_bytes": "nk-traffic volumes"},
    "ssl": {"version": "weak-tls versions", "cipher": "weak-tls ciphers", "server_name": "tor-cert and SNI checks"},
    "http": {"uri": "tracker announces", "host": "tracker announces"},
    "x509": {"certificate.subject": "certificate checks", "certificate.not_valid_after": "expiry checks"},
}
# How far into two files the bytes are compared when deciding they hold the same log.
SAME_LOG_PROBE = 64 * 1024


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
    # How many lines at the top of the file start with "#" (the header itself and any
    # comment lines right after it), so a reader can skip them without a comment test.
    top_lines: int = 0


def open_raw(path: Path) -> io.BufferedIOBase:
    try:
        return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")
    except OSError as exc:
        raise LogError(f"{path}: cannot open log: {exc.strerror}") from exc


def is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise LogError(f"{path}: cannot open log: {exc.strerror}") from exc


def _unescape_separator(text: str) -> str:
    # The #separator line spells the separator as an escape such as "\x09".
    if text.startswith("\\x") and len(text) == 4:
        try:
            return chr(int(text[2:], 16))
        except ValueError:
            # Not hex: left as it is, and refused as a separator of more than one character.
            return text
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
        with open_raw(path) as handle:
            lines = []
            size = 0
            for _ in range(MAX_HEADER_LINES):
                line = handle.readline(MAX_HEADER_BYTES)
                if not line:
                    break
                lines.append(line)
                size += len(line)
                if size > MAX_HEADER_BYTES or not line.startswith(b"#"):
                    break
    except (OSError, EOFError, zlib.error) as exc:
        raise LogError(f"{path}: cannot read log header: {exc}") from exc
    header = parse_header_lines(lines, str(path))
    if header is None:
        return None
    top = next((i for i, line in enumerate(lines) if not line.startswith(b"#")), len(lines))
    return replace(header, top_lines=top)


def log_kind(path: Path, header: LogHeader | None) -> str:
    if header is not None and header.path:
        return header.path
    match = LOG_NAME_RE.match(path.name)
    return match.group(1) if match else path.name.split(".", 1)[0]


def check_columns(path: Path | str, kind: str, columns: Sequence[str], warn: bool = True) -> list[str]:
    """Refuse a log lacking a column every detection of its kind needs; warnings for the rest."""
    have = set(columns)
    for name in REQUIRED_COLUMNS.get(kind, ()):
        if name not in have:
            raise LogError(f"{path}: column {name!r} is missing, and every {kind} detection needs it")
    missing: dict[str, list[str]] = {}
    for name, used_by in USEFUL_COLUMNS.get(kind, {}).items() if warn else ():
        if name not in have:
            missing.setdefault(used_by, []).append(name)
    return [f"{path}: no column {', '.join(repr(n) for n in names)}: {used_by} see it unset"
            for used_by, names in missing.items()]


def _walk_logs(directory: Path) -> list[Path]:
    """The log files under ``directory``; an unreadable folder is an error, never skipped."""
    def fail(exc: OSError) -> None:
        raise LogError(f"{exc.filename}: cannot read folder: {exc.strerror}") from exc

    found = []
    for root, dirs, names in os.walk(directory, onerror=fail, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or not LOG_NAME_RE.match(name):
                continue
            if path.is_file():
                found.append(path)
            else:
                # A FIFO or socket with a log's name would block or fail a reader: left out, and said.
                print(f"sensor-plugins: warning: {path} is not a regular file; skipped", file=sys.stderr)
    return sorted(found)


def _candidate_files(paths: Sequence[Path], warn: bool = True) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found.extend(_walk_logs(path))
        elif path.is_file():
            found.append(path)
        elif path.exists():
            raise LogError(f"{path}: not a regular file or directory (a FIFO, socket or device)")
        else:
            raise LogError(f"{path}: no such log file or directory")
    return _refuse_duplicates(found, warn)


def _refuse_duplicates(files: list[Path], warn: bool = True) -> list[Path]:
    """The files, once each; the same file reached twice (a link, a path given twice, a
    directory and a file in it) is read once, and the same log plain and gzipped is refused."""
    seen: dict[tuple[int, int], Path] = {}
    unique: list[Path] = []
    for path in files:
        try:
            st = path.stat()
        except OSError as exc:
            raise LogError(f"{path}: cannot read log: {exc.strerror}") from exc
        key = (st.st_dev, st.st_ino)
        if key in seen:
            if warn and path != seen[key]:
                print(f"sensor-plugins: warning: {path} is the same file as {seen[key]}; read once",
                      file=sys.stderr)
            continue
        seen[key] = path
        unique.append(path)
    by_name = {str(p): p for p in unique}
    for path in unique:
        plain = by_name.get(str(path)[:-3]) if path.name.endswith(".gz") else None
        if plain is not None and _same_start(plain, path):
            raise LogError(f"{path}: holds the same log as {plain} (gzipped); give one of them, "
                           "or every count doubles")
    return unique


def _same_start(plain: Path, gz: Path) -> bool:
    try:
        with open(plain, "rb") as a, gzip.open(gz, "rb") as b:
            head_a, head_b = a.read(SAME_LOG_PROBE), b.read(SAME_LOG_PROBE)
    except (OSError, EOFError, zlib.error):
        return False
    size = min(len(head_a), len(head_b))
    return size > 0 and head_a[:size] == head_b[:size]


@dataclass(frozen=True)
class LogInventory:
    """What one walk of the given paths found: every candidate log file, and the files by kind.

    A command walks its log folders once and hands this on: to the output check (no
    ``--out`` may be one of the logs), to the allocator (sized by the logs it will
    read) and to the loader.
    """

    files: tuple[Path, ...]  # every file a log's name or an explicit path brought in, any kind
    kinds: dict[str, list[Path]]  # the files analyze reads, by kind (see ``discover``)

    @property
    def size(self) -> int:
        """Total bytes of the files analyze reads, as read (see ``input_bytes``)."""
        return sum(_read_size(p) for files in self.kinds.values() for p in files)


def find_logs(paths: Sequence[Path], warn: bool = True) -> LogInventory:
    """Walk ``paths`` once; the files found and their kinds.

    Files named explicitly are always read; files found by walking a directory are kept
    only when their kind is one the analyzer uses. An empty file has no kind of its own,
    so its name decides.
    """
    paths = [Path(p) for p in paths]
    candidates = _candidate_files(paths, warn)
    explicit = {p.resolve() for p in paths if p.is_file()}
    kinds: dict[str, list[Path]] = {}
    for path in candidates:
        kind = log_kind(path, read_header(path))
        if kind in KINDS or path.resolve() in explicit:
            kinds.setdefault(kind, []).append(path)
    ordered = {k: sorted(set(v), key=lambda p: (p.name, str(p))) for k, v in kinds.items()}
    return LogInventory(tuple(candidates), ordered)


def discover(paths: Sequence[Path], warn: bool = True) -> dict[str, list[Path]]:
    """Log kind -> its files (rotated and gzip ones included), each list in name order."""
    return find_logs(paths, warn).kinds


def log_files(paths: Sequence[Path]) -> list[Path]:
    """Every file under ``paths`` that analyze would read, whatever its kind (said once, by discover)."""
    return list(find_logs(paths, warn=False).files)


def input_bytes(paths: Sequence[Path]) -> int:
    """Total size of the logs under ``paths`` as read, not as stored: analyze sizes its memory
    use and progress display by it.

    A gzip log counts as what it expanded to once it has been read, and before that as
    what its trailer says (the size of its last member, modulo 4 GiB: a hint, never less
    than the file).
    """
    return find_logs(paths, warn=False).size


def _read_size(path: Path) -> int:
    stored = path.stat().st_size
    if str(path) in _expanded:
        return _expanded[str(path)]
    if stored < 18 or not is_gzip(path):
        return stored
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return max(stored, int.from_bytes(handle.read(4), "little"))


# What each log expanded to when it was last read whole (by decoded_chunks).
_expanded: dict[str, int] = {}


# -- reading a whole log in bounded memory ---------------------------------------------
#
# A log is read in chunks, never whole: gzip is decompressed as a stream, and the rows go
# to polars through a file. Two faults are found on the way:
#
# - a decompression bomb: a small .gz that expands to gigabytes. Real Zeek logs compress
#   5-20 times; one that expands more than ``max_gzip_ratio`` times (once past
#   ``RATIO_FLOOR``, since a tiny file of repeated rows compresses wildly), or beyond
#   ``max_bytes`` in all, is refused;
# - a header that changes inside a file: two logs concatenated (``cat a.log b.log``), the
#   second with other columns. The rows after a second ``#fields`` block that differs
#   belong to that block's schema, so the file is split there into segments.

READ_CHUNK = 1 << 20
RATIO_FLOOR = 16 << 20
DEFAULT_MAX_GZIP_RATIO = 100.0
DEFAULT_MAX_LOG_BYTES = 64 << 30


@dataclass(frozen=True)
class ReadLimits:
    """How far one log file may expand when it is read (see the comment above)."""

    max_gzip_ratio: float = DEFAULT_MAX_GZIP_RATIO
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES


_limits = ReadLimits()


@contextlib.contextmanager
def using_read_limits(limits: ReadLimits) -> Iterator[None]:
    """The limits every read inside uses (analyze and report take them from their options)."""
    global _limits
    saved, _limits = _limits, limits
    try:
        yield
    finally:
        _limits = saved


def read_limits() -> ReadLimits:
    return _limits


def refuse_oversize(path: Path, total: int, limits: ReadLimits) -> None:
    if total > limits.max_log_bytes:
        raise LogError(f"{path}: expands beyond {limits.max_log_bytes:,} bytes (--max-log-bytes); "
                       "refused as a possible decompression bomb")


def decoded_chunks(path: Path, limits: ReadLimits | None = None) -> Iterator[bytes]:
    """The bytes of ``path`` (gunzipped as a stream when it is gzip), a chunk at a time, within ``limits``.

    The ratio is taken over the compressed bytes read so far, so a bomb is refused after
    ``RATIO_FLOOR`` of output, not after expanding the whole of it.
    """
    limits = limits or _limits
    gz = is_gzip(path)
    try:
        with open_raw(path) as handle:
            compressed = getattr(handle, "fileobj", None)
            total = 0
            while chunk := handle.read(READ_CHUNK):
                total += len(chunk)
                refuse_oversize(path, total, limits)
                if compressed is not None and total > RATIO_FLOOR:
                    read = max(compressed.tell(), 1)
                    if total > limits.max_gzip_ratio * read:
                        raise LogError(f"{path}: gzip expands more than {limits.max_gzip_ratio:g} times "
                                       f"({total:,} bytes from its first {read:,}; --max-gzip-ratio); refused as "
                                       "a decompression bomb")
                yield chunk
        _expanded[str(path)] = total
    except (OSError, EOFError, zlib.error) as exc:
        what = "broken gzip archive" if gz else "cannot read log"
        raise LogError(f"{path}: {what}: {exc}") from exc


@dataclass(frozen=True)
class Segment:
    """Rows of one log file that share one header: the whole file, or the part after a changed header."""

    header: LogHeader
    line: int  # the line of the file where its #fields is
    rows: Path | None = None  # its rows, spooled; None: read them from the file itself


@dataclass(frozen=True)
class Layout:
    segments: tuple[Segment, ...]
    dropped: int = 0  # bytes of a cut-off last line, left out

    @property
    def direct(self) -> bool:
        """Whether polars can scan the original file as it is (one header, nothing cut off)."""
        return len(self.segments) == 1 and self.segments[0].rows is None


def same_schema(a: LogHeader, b: LogHeader) -> bool:
    return (a.fields, a.types, a.separator, a.set_separator, a.empty_field, a.unset_field) == (
        b.fields, b.types, b.separator, b.set_separator, b.empty_field, b.unset_field)


def next_comment_line(body: bytes | bytearray, pos: int) -> int:
    """``body.find(b"\\n#", pos)``, found sooner: a one-byte search runs at memory speed, a
    two-byte one at a fraction of it (0.12 s against 0.01 s on a 128 MB conn.log).

    A "#" inside a field (a URI, a certificate subject) is passed over; after a few of
    those in a row the two-byte search takes over, so a hostile block full of "#" costs
    what it did before.
    """
    at = body.find(b"#", pos + 1)
    for _ in range(16):
        if at < 0 or body[at - 1] == 0x0A:
            return at - 1 if at >= 0 else -1
        at = body.find(b"#", at + 1)
    return -1 if at < 0 else body.find(b"\n#", at - 1)


def newlines(body: bytes | bytearray | mmap.mmap, start: int, stop: int) -> int:
    # A map has no count(); the slice copies, but an uncounted walk over a map counts only
    # what comes before the first header.
    return body[start:stop].count(b"\n") if isinstance(body, mmap.mmap) else body.count(b"\n", start, stop)


class _LinesUncounted(Exception):
    """A line number was wanted from a walk that did not count lines (see ``split_log``)."""


class _Splitter:
    """Feeds complete lines through; starts a new segment at a header block that changes the schema."""

    def __init__(self, path: Path, header: LogHeader, spool: Path | None, lines: bool = True) -> None:
        self.path, self.spool, self.lines = path, spool, lines
        self.pending: list[tuple[int | None, bytes]] = []  # the run of "#" lines since the last row
        # Lines read so far; None once rows have gone by uncounted (``lines`` False).
        self.line: int | None = 0
        self.segments: list[Segment] = []
        self.out: io.BufferedWriter | None = None
        self.current = header
        self._start(header, 0)

    def _start(self, header: LogHeader, line: int) -> None:
        rows = None
        if self.spool is not None:
            if self.out is not None:
                self.out.close()
            rows = self.spool / f"{len(self.segments)}.tsv"
            self.out = open(rows, "wb")  # noqa: SIM115 (closed at the next segment or by close())
        self.segments.append(Segment(replace(header, top_lines=0), line, rows))
        self.current = header

    def feed(self, body: bytes | bytearray | mmap.mmap, end: int | None = None) -> None:
        """Take the whole lines of ``body`` up to ``end`` (all of it when None)."""
        pos, end = 0, len(body) if end is None else end
        while pos < end:
            if body[pos] == 0x23:  # "#": a header, footer or comment line
                stop = body.find(b"\n", pos) + 1
                if self.line is not None:
                    self.line += 1
                self.pending.append((self.line, body[pos:stop]))
                del self.pending[:-MAX_HEADER_LINES]
                pos = stop
                continue
            found = next_comment_line(body, pos)
            stop = end if found < 0 else found + 1
            if self.pending:
                self._resolve()
            if self.out is not None:
                self.out.write(body[pos:stop])
            if self.line is not None:
                # Until the first header is placed its line is still wanted, whatever ``lines`` says.
                if self.lines or not self.segments[0].line:
                    self.line += newlines(body, pos, stop)
                else:
                    self.line = None
            pos = stop

    def _resolve(self) -> None:
        lines = [text for _, text in self.pending]
        at = max((i for i, text in enumerate(lines) if text.startswith(b"#fields")), default=None)
        if at is not None:
            start = max((i for i, text in enumerate(lines[: at + 1]) if text.startswith(b"#separator")), default=at)
            line = self.pending[at][0]
            try:
                header = parse_header_lines(lines[start:], f"{self.path}: line {line}")
            except LogError:
                if line is None:
                    raise _LinesUncounted from None
                raise
            if header is not None and not same_schema(header, self.current):
                if line is None:
                    raise _LinesUncounted
                self._start(header, line)
            elif len(self.segments) == 1 and not self.segments[0].line:
                self.segments[0] = replace(self.segments[0], line=self.pending[at][0])
        self.pending = []

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def split_log(path: Path, header: LogHeader, spool: Path | None = None, limits: ReadLimits | None = None,
              lines: bool = True) -> Layout:
    """Walk the whole of a TSV log in chunks: its segments, and how much of a cut-off last line was left out.

    With ``spool`` (a directory), every segment's rows are written to a file there; without
    it, nothing is written, and the layout says whether the file can be read as it is.
    ``lines=False`` counts lines only up to the first header (counting them all is a third
    of the walk) and raises ``_LinesUncounted`` where a later line number is needed: a
    header that changes the columns, or one that is malformed.
    """
    splitter = _Splitter(path, header, spool, lines)
    dropped = 0
    try:
        if spool is None and not lines and not is_gzip(path):
            dropped = _walk_mapped(path, splitter, limits or _limits)
        else:
            for block in line_blocks(path, limits):
                if block.endswith(b"\n"):
                    splitter.feed(block)
                else:
                    dropped = len(block)
    except OSError as exc:
        raise LogError(f"{path}: cannot spool the log: {exc.strerror or exc}") from exc
    finally:
        splitter.close()
    return Layout(tuple(splitter.segments), dropped)


def _walk_mapped(path: Path, splitter: _Splitter, limits: ReadLimits) -> int:
    """Feed a plain file's whole lines to ``splitter`` from a read-only map of it; the bytes
    of a cut-off last line are the result.

    The walk that only looks for "#" lines reads nothing into Python: the one-byte search
    runs over the page cache itself, where reading and cutting 1 MiB chunks copied every
    byte twice (334 MB of logs: 0.06 s against 0.35 s). polars maps the file the same way
    when it scans it, so a file cut short under both is no new hazard.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            refuse_oversize(path, size, limits)
            if size == 0:
                return 0
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as body:
                end = body.rfind(b"\n") + 1
                splitter.feed(body, end)
                return len(body) - end
    except (OSError, ValueError) as exc:
        raise LogError(f"{path}: cannot read log: {exc}") from exc


def line_blocks(path: Path, limits: ReadLimits | None = None) -> Iterator[bytes | bytearray]:
    """``decoded_chunks`` cut at line ends (``whole_line_blocks``)."""
    yield from whole_line_blocks(decoded_chunks(path, limits))


def whole_line_blocks(chunks: Iterable[bytes]) -> Iterator[bytes | bytearray]:
    """``chunks`` cut at line ends: blocks of whole lines, then a cut-off last line, if any.

    Each block is a new buffer, the line cut off the last one copied in front of the next
    chunk: one copy of the data, where slicing a block off a joined string made two.
    """
    carry = b""
    for chunk in chunks:
        data = bytearray(carry)
        data += chunk
        cut = data.rfind(b"\n") + 1
        carry = bytes(data[cut:])
        if cut:
            del data[cut:]
            yield data
    if carry:
        yield carry


def spool_lines(path: Path, transform: Callable[[bytes], bytes] | None = None) -> tuple[Path, int]:
    """The whole lines of ``path`` (each block passed through ``transform``) in a spooled file;
    and how many bytes of a cut-off last line were left out (0 for mere trailing blanks)."""
    target = Path(tempfile.mkdtemp(dir=spool_dir())) / path.name.removesuffix(".gz")
    dropped = 0
    try:
        with open(target, "wb") as out:
            for block in line_blocks(path):
                if block.endswith(b"\n"):
                    out.write(transform(block) if transform else block)
                elif block.strip():
                    dropped = len(block)
    except OSError as exc:
        raise LogError(f"{path}: cannot spool the log: {exc.strerror or exc}") from exc
    return target, dropped


SPOOL_PREFIX = "sensor-plugins-spool-"


def spool_dir() -> Path:
    """A private directory for spooled rows, removed when the process exits; one that a
    process killed outright left behind is removed by the next one that spools."""
    global _spool
    if _spool is None:
        # The descriptor stays open, and the lock held, for the life of the process.
        _spool, _fd = make_locked_temp_dir(SPOOL_PREFIX)
        atexit.register(shutil.rmtree, _spool, True)
    return _spool


_spool: Path | None = None


def readable_layout(path: Path, header: LogHeader) -> Layout:
    """The segments of ``path`` in a form polars can scan: the file itself when it is plain,
    one-headed and whole; otherwise spooled files, each with only its rows."""
    gz = is_gzip(path)
    if not gz:
        try:
            # Lines uncounted: a file polars can scan as it is needs no line number past its header.
            first = split_log(path, header, lines=False)
        except _LinesUncounted:
            pass  # a header changes inside the file: the walk below counts, and spools
        else:
            if len(first.segments) == 1 and not first.dropped:
                return first
    target = Path(tempfile.mkdtemp(dir=spool_dir()))
    return split_log(path, header, target)


def check_one_header(path: Path, header: LogHeader, reader: str) -> None:
    """For a reader that takes one header per file: refuse a header that changes inside ``path``.

    The walk is the local reader's, so a decompression bomb is refused here the same way.
    """
    if header.is_json:
        for _ in decoded_chunks(path):
            pass
        return
    segments = split_log(path, header).segments
    if len(segments) > 1:
        raise LogError(f"{path}: line {segments[1].line}: the header changes inside the file (a second #fields "
                       f"block with other columns); {reader} reads one header per file: split the file, or "
                       "use --engine local")
