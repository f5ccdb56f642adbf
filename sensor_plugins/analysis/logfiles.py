"""Finding Zeek log files and reading their headers, without polars.

A command can size its input here before polars loads, which matters because polars'
allocator is configured from the environment when its library loads (see analysis/command.py).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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
        """Total bytes on disk of the files analyze reads."""
        return sum(p.stat().st_size for files in self.kinds.values() for p in files)


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
    """Total size on disk of the logs under ``paths``: analyze sizes its memory use and
    progress display by it before polars loads."""
    return find_logs(paths, warn=False).size
