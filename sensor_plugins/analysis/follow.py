"""``analyze --follow DIR``: tail the live Zeek logs, survive rotation, resume from a checkpoint.

Why not ``zat.zeek_log_reader.ZeekLogReader(tail=True)``, which the issue suggests:

- it prints "Successfully monitoring ..." and "File closed ... Retrying" to stdout, which
  would corrupt a JSON-lines stream of findings;
- after a rotation it sleeps 5 s and re-reads the new file from its header, but it never
  finishes the rotated file, so rows written between its last read and the rename are lost;
- it keeps no offset, so a restart re-reads (and re-reports) everything;
- it builds one Python dict per row and maps ``-`` to 0/False, too slow for 50k rows/s
  and wrong for unset fields.

So each log is tailed here by (device, inode) and byte offset, reading only whole lines in
large chunks that polars parses in one go with the same column typing as batch mode
(``logs.zeek_type_expr``), and the same detections run on each chunk.

Exactly once: after each batch the findings are written (and fsynced when ``--out`` is a
file), then the checkpoint is replaced atomically. The checkpoint records the output
file's size, so a crash between the two steps is repaired on restart by cutting the
output back to that size and reading the same rows again. On stdout, such a crash can
repeat one batch.

Summaries need whole days: an nk-traffic finding for a UTC day is emitted once conn.log
has reached the next day plus DAY_CLOSE_GRACE (rows for a day that closed already give a
second finding with ``evidence.late``); tor-repeat is emitted when a host's second day with
the same Tor address is seen. Their running state lives in the checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import os
import signal
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from sensor_plugins.analysis.detect import (
    detection_plan,
    finalise,
    materialise,
    merge_nk_groups,
    nk_groups,
    nk_traffic_findings,
    prepare,
    tor_matches,
)
from sensor_plugins.analysis.detect.traffic import NK_TRAFFIC_ORDER
from sensor_plugins.analysis.findings import Finding, findings_frame, iter_findings
from sensor_plugins.analysis.logs import (
    KINDS,
    SHORT_ROWS,
    LogHeader,
    LogSet,
    json_lines_frame,
    parse_header_lines,
    zeek_type_expr,
)
from sensor_plugins.analysis.output import csv_header, write_rows, zeek_header
from sensor_plugins.atomic import STOP_SIGNALS, check_output_file, locked, write_text_atomic
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import Catalogue
from sensor_plugins.inputs.clients import ClientTable, load_client_table
from sensor_plugins.inputs.feeds import TorList
from sensor_plugins.inputs.options import input_files, load_inputs

CHECKPOINT_VERSION = 1
MAX_CHUNK = 32 * 1024 * 1024
HEADER_PROBE = 64 * 1024
DAY_CLOSE_GRACE = dt.timedelta(hours=1)
X509_CACHE_ROWS = 200_000
# Long enough to hold several rows, each with its unique uid: the tail of one Zeek row
# ("-\tT\t-..."), like 64 bytes of it, recurs at the same offset of another file.
ANCHOR_BYTES = 1024
FOLLOW_FORMATS = ("jsonl", "csv", "zeek")


def _warn(message: str) -> None:
    print(f"sensor-plugins: warning: {message}", file=sys.stderr)


@dataclass
class FileState:
    """Where reading stopped in one log: the file by device and inode, and the byte offset.

    ``anchor`` is the last bytes read before ``offset``: when they are no longer there, the
    file was truncated in place (logrotate's copytruncate) even if it has grown back past
    the offset since. ``header`` is the header its rows are typed with when the file has
    none of its own, as after copytruncate (Zeek goes on writing rows, not a new header).
    ``done`` marks a rotated file read to its end: what comes next is the oldest rotated
    file written after it, or else the live file.
    """

    path: str
    dev: int
    inode: int
    offset: int
    anchor: bytes = b""
    header: bytes = b""
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "dev": self.dev, "inode": self.inode, "offset": self.offset,
                "anchor": self.anchor.hex(), "header": self.header.decode("utf-8", "replace"),
                "done": self.done}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FileState:
        try:
            fields = {k: data[k] for k in ("path", "dev", "inode", "offset")}
            if not isinstance(fields["path"], str) or not all(
                isinstance(fields[k], int) and not isinstance(fields[k], bool) for k in ("dev", "inode", "offset")
            ):
                raise TypeError("wrong field type")
            anchor = bytes.fromhex(_typed(data.get("anchor", ""), str))
            header = _typed(data.get("header", ""), str).encode("utf-8")
            done = _typed(data.get("done", False), bool)
        except (KeyError, TypeError, ValueError) as exc:
            raise SensorPluginsError(f"{where}: malformed file entry in checkpoint ({exc})") from exc
        state = cls(fields["path"], fields["dev"], fields["inode"], fields["offset"], anchor, header, done)
        if state.offset < 0 or len(anchor) > ANCHOR_BYTES:
            raise SensorPluginsError(f"{where}: malformed file entry in checkpoint (offset or anchor)")
        return state


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _header_from_handle(handle: BinaryIO) -> LogHeader | None:
    head = os.pread(handle.fileno(), HEADER_PROBE, 0)
    lines = head.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines = lines[:-1]
    return parse_header_lines(lines, getattr(handle, "name", "log"))


def find_copy(directory: Path, live: Path, state: FileState) -> Path | None:
    """The copy logrotate's copytruncate made of ``live``: a plain file holding, at the same
    place, the bytes we read last before the offset. Of several (older rotations begin
    with the same header when little was read), the newest is the copy just made."""
    if not state.anchor:
        return None
    start = state.offset - len(state.anchor)
    found: list[tuple[int, str, Path]] = []
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            if path == live or name.endswith(".gz"):
                continue
            try:
                with open(path, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    if st.st_size >= state.offset and \
                            os.pread(handle.fileno(), len(state.anchor), start) == state.anchor:
                        found.append((st.st_mtime_ns, name, path))
            except OSError:
                continue
    return max(found)[2] if found else None


def find_by_inode(directory: Path, dev: int, inode: int) -> Path | None:
    """A file under ``directory`` with this (device, inode): where a rotated log went."""
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (dev, inode):
                return path
    return None


def _header_value(header: bytes, key: str) -> str:
    """``#key`` from a TSV header's lines ("" when absent); Zeek's separator is a tab."""
    for line in header.splitlines():
        name, _, value = line.decode("utf-8", "replace").rstrip("\r").partition("\t")
        if name == f"#{key}":
            return value
    return ""


def _rotation_key(header: bytes, mtime_ns: int) -> tuple[str, int]:
    """Where a file stands in a log's rotation order: Zeek's ``#open`` stamp
    (YYYY-MM-DD-HH-MM-SS sorts as text), then the time of its last write."""
    return _header_value(header, "open"), mtime_ns


def _stat(path: Path | None) -> os.stat_result | None:
    try:
        return path.stat() if path is not None else None
    except OSError:
        return None


def find_next_rotated(directory: Path, live: Path, state: FileState) -> Path | None:
    """The oldest rotated sibling of ``state``'s file written after it, if any.

    When the log rotated twice or more while we were not reading (the follower was down,
    or busy for a whole rotation period), the files between the one we finished and the
    live one hold rows nobody read. They are found by their header's ``#path`` and put in
    order by ``#open`` and last write; the one we finished and the live file are left out.
    """
    kind = _header_value(state.header, "path")
    if not kind:
        return None
    finished = _stat(find_by_inode(directory, state.dev, state.inode))
    after = _rotation_key(state.header, finished.st_mtime_ns if finished else 0)
    live_stat = _stat(live)
    live_id = (live_stat.st_dev, live_stat.st_ino) if live_stat else None
    found: list[tuple[tuple[str, int], Path]] = []
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            path = Path(root) / name
            if path == live:
                continue
            try:
                with open(path, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    if (st.st_dev, st.st_ino) in {(state.dev, state.inode), live_id}:
                        continue
                    header = _gzip_header(handle) if name.endswith(".gz") else _header_bytes(handle)
            except (OSError, EOFError, zlib.error):
                continue
            key = _rotation_key(header, st.st_mtime_ns)
            if _header_value(header, "path") == kind and key > after:
                found.append((key, path))
    # A rotated file compressed before we read it cannot be tailed; say so, never skip it quietly.
    for _, path in found:
        if path.name.endswith(".gz"):
            _warn(f"{path}: rotated and compressed before it was read; its rows are not analysed here "
                  f"(run `sensor-plugins analyze {path}`)")
    plain = [item for item in found if not item[1].name.endswith(".gz")]
    return min(plain)[1] if plain else None


def _gzip_header(handle: BinaryIO) -> bytes:
    """The header lines at the top of a gzipped log (compressed rotations keep Zeek's header)."""
    with gzip.GzipFile(fileobj=handle) as unzipped:
        return _header_lines(unzipped.read(HEADER_PROBE))


class Tail:
    """One live log (``DIR/<kind>.log``), followed across rotations by inode and offset."""

    def __init__(self, directory: Path, kind: str, state: FileState | None) -> None:
        self.directory = directory
        self.kind = kind
        self.path = directory / f"{kind}.log"
        self.state = state
        self.handle: BinaryIO | None = None
        self.header: LogHeader | None = None
        self.rotated_source = False
        self.more = False

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def _open(self) -> bool:
        if self.state is not None and self.state.done:
            following = find_next_rotated(self.directory, self.path, self.state)
            if following is not None:
                return self._open_rotated(following)
            if not self.path.exists():
                # Rotated and not recreated yet: keep the finished file's place, so the
                # files rotated after it are still found once the next one appears.
                return False
            self.state = None
        if self.state is not None:
            try:
                st = self.path.stat()
                current = (st.st_dev, st.st_ino)
            except OSError:
                current = None
            if current != (self.state.dev, self.state.inode):
                # The checkpointed file was rotated while we were not reading it.
                found = find_by_inode(self.directory, self.state.dev, self.state.inode)
                if found is None:
                    _warn(f"{self.state.path}: rotated away and not found under {self.directory}; "
                          f"rows after byte {self.state.offset} of it are not analysed")
                    self.state = None
                else:
                    self.handle = open(found, "rb")  # noqa: SIM115
                    self.handle.seek(self.state.offset)
                    self.header = _header_from_handle(self.handle)
                    self.rotated_source = True
                    return True
        try:
            handle = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SensorPluginsError(f"{self.path}: cannot open log: {exc.strerror}") from exc
        st = os.fstat(handle.fileno())
        if self.state is None or (st.st_dev, st.st_ino) != (self.state.dev, self.state.inode):
            self.state = FileState(str(self.path), st.st_dev, st.st_ino, 0)
        handle.seek(self.state.offset)
        self.handle = handle
        self.header = self._header()
        self.rotated_source = False
        return True

    def _open_rotated(self, path: Path) -> bool:
        """Read a rotated file nobody has read from its start, before the live one."""
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise SensorPluginsError(f"{path}: cannot open rotated log: {exc.strerror}") from exc
        st = os.fstat(handle.fileno())
        self.state = FileState(str(path), st.st_dev, st.st_ino, 0, header=_header_bytes(handle))
        self.handle = handle
        self.header = _header_from_handle(handle)
        self.rotated_source = True
        return True

    def _header(self) -> LogHeader | None:
        """The file's own header, or the one its rows were written under before a copytruncate."""
        assert self.handle is not None and self.state is not None
        own = _header_from_handle(self.handle)
        if own is not None:
            self.state.header = _header_bytes(self.handle)
            return own
        if not self.state.header:
            return None
        first = os.pread(self.handle.fileno(), 1, 0)
        if first and first != b"#":
            return parse_header_lines(self.state.header.splitlines(keepends=True), str(self.path))
        return None

    def _truncated(self) -> bool:
        """Whether the open file lost the bytes we read (copytruncate), grown back or not."""
        assert self.handle is not None and self.state is not None
        if self.rotated_source or self.state.offset == 0:
            return False
        fd = self.handle.fileno()
        if os.fstat(fd).st_size < self.state.offset:
            return True
        anchor = self.state.anchor
        return bool(anchor) and os.pread(fd, len(anchor), self.state.offset - len(anchor)) != anchor

    def _recover_truncated(self) -> bytes:
        """The rows the copy holds past our offset; then read the live file from its start."""
        assert self.handle is not None and self.state is not None
        copy = find_copy(self.directory, self.path, self.state)
        rest = b""
        if copy is None:
            _warn(f"{self.path}: truncated in place (copytruncate) and its copy was not found under "
                  f"{self.directory}; rows after byte {self.state.offset} of it are not analysed")
        else:
            with open(copy, "rb") as handle:
                handle.seek(self.state.offset)
                data = handle.read()
            cut = data.rfind(b"\n") + 1
            if data[cut:].strip():
                _warn(f"{copy}: copy ends with an incomplete line ({len(data) - cut} bytes), skipped")
            rest = data[:cut]
        self.state.offset = 0
        self.state.anchor = b""
        self.handle.seek(0)
        return rest

    def _is_rotated(self) -> bool:
        if self.rotated_source:
            return True
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return True
        assert self.state is not None
        return (st.st_dev, st.st_ino) != (self.state.dev, self.state.inode)

    def _read_lines(self, limit: int) -> bytes:
        """Whole new lines, at most about ``limit`` bytes; a partial last line stays unread."""
        assert self.handle is not None and self.state is not None
        if self.header is None:
            self.header = self._header()
            if self.header is None:
                return b""
        data = self.handle.read(limit)
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            self.handle.seek(self.state.offset + cut)
        self.state.offset += cut
        self.state.anchor = (self.state.anchor + data[:cut])[-ANCHOR_BYTES:]
        self.more = len(data) >= limit
        return data[:cut]

    def read(self) -> Iterator[tuple[LogHeader, bytes]]:
        """New whole lines, with the header that types them; finishes a rotated file first."""
        self.more = False
        budget = MAX_CHUNK
        while budget > 0:
            if self.handle is None and not self._open():
                return
            if self._truncated():
                header = parse_header_lines(self.state.header.splitlines(keepends=True), str(self.path))
                rest = self._recover_truncated()
                if rest and header is not None:
                    budget -= len(rest)
                    yield header, rest
                self.header = self._header()
            data = self._read_lines(budget)
            if data and self.header is not None:
                budget -= len(data)
                yield self.header, data
            if self.more:
                return
            if not self._is_rotated():
                return
            self._drain_rotated()

    def _drain_rotated(self) -> None:
        """Close a rotated file read to its end; the checkpoint keeps it, marked done, so
        that a restart, too, goes on with the rotated files written after it."""
        assert self.handle is not None and self.state is not None
        rest = self.handle.read()
        if rest.strip():
            _warn(f"{self.state.path}: rotated with an incomplete last line ({len(rest)} bytes), skipped")
        self.close()
        self.state.offset += len(rest)
        self.state.done = True
        self.header = None

    def history(self) -> bytes:
        """The bytes already read from the current file (to rebuild caches after a restart)."""
        if self.handle is None or self.state is None or self.state.offset == 0:
            return b""
        return os.pread(self.handle.fileno(), self.state.offset, 0)


def _header_bytes(handle: BinaryIO) -> bytes:
    """The raw header lines at the top of a file (to type rows written after a copytruncate)."""
    return _header_lines(os.pread(handle.fileno(), HEADER_PROBE, 0))


def _header_lines(head: bytes) -> bytes:
    lines = []
    for line in head.splitlines(keepends=True):
        if not line.startswith(b"#") or not line.endswith(b"\n"):
            break
        lines.append(line)
        if line.startswith(b"#types"):
            break
    return b"".join(lines)


def frame_from_chunk(header: LogHeader, data: bytes, where: str) -> pl.DataFrame:
    """Whole log lines -> a typed DataFrame, exactly as batch mode types them."""
    if header.is_json:
        return json_lines_frame(data, where)
    raw = pl.read_csv(
        io.BytesIO(data), separator=header.separator, has_header=False, quote_char=None,
        comment_prefix="#", schema=dict.fromkeys(header.fields, pl.Utf8), null_values=[header.unset_field],
        encoding="utf8-lossy", truncate_ragged_lines=True, raise_if_empty=False, **SHORT_ROWS,
    )
    return raw.with_columns(
        zeek_type_expr(n, t, header) for n, t in zip(header.fields, header.types, strict=True)
        if t not in ("addr", "subnet")
    )


class Follower:
    """The state of a follow run: tails, caches, summaries, and their checkpoint."""

    def __init__(self, directory: Path, catalogue: Catalogue, tor: TorList, scope: str,
                 checkpoint: Path | None, clients: ClientTable | None = None) -> None:
        if not directory.is_dir():
            raise SensorPluginsError(f"{directory}: --follow needs a directory of live Zeek logs")
        self.directory = directory
        self.catalogue = catalogue
        self.tor = tor
        self.scope = scope
        # Parsed once for the run, not again at every poll.
        self.clients = clients if clients is not None else load_client_table()
        self.checkpoint = checkpoint
        saved = load_checkpoint(checkpoint) if checkpoint else {}
        if saved and saved.get("directory") != str(directory.resolve()):
            raise SensorPluginsError(f"{checkpoint}: checkpoint belongs to {saved.get('directory')}, "
                                     f"not to {directory.resolve()}")
        self.saved = bool(saved)
        # Checkpoints written before the output path was recorded carry no "out" at all.
        self.out_path: str | None = saved.get("out") if saved else None
        self.out_known = "out" in saved
        files = saved.get("files", {})
        self.tails = {k: Tail(directory, k, FileState.from_dict(files[k], str(checkpoint)) if k in files else None)
                      for k in KINDS}
        try:
            self.out_size: int | None = _optional(saved.get("out_size"), int)
            self.watermark: dt.datetime | None = _parse_dt(_optional(saved.get("watermark"), str))
            self.closed_through: dt.date | None = _parse_date(_optional(saved.get("closed_through"), str))
            self.nk_state = _groups_from_json(_typed(saved.get("nk_groups", []), list))
            self.tor_days: dict[str, list[str]] = {
                _typed(k, str): [_typed(d, str) for d in _typed(v, list)]
                for k, v in _typed(saved.get("tor_days", {}), dict).items()
            }
            self.tor_repeat_done: set[str] = {_typed(k, str) for k in _typed(saved.get("tor_repeat_done", []), list)}
        except (KeyError, TypeError, ValueError, AttributeError, pl.exceptions.PolarsError) as exc:
            raise SensorPluginsError(f"{checkpoint}: malformed checkpoint: {str(exc).splitlines()[0][:120]}") from exc
        if self.out_size is not None and self.out_size < 0:
            raise SensorPluginsError(f"{checkpoint}: malformed checkpoint: negative out_size")
        self.x509_cache: pl.DataFrame | None = None
        self._rebuild_x509_cache()

    def _rebuild_x509_cache(self) -> None:
        tail = self.tails["x509"]
        if tail.state is None or tail.state.offset == 0 or not tail._open():
            return
        history = tail.history()
        if history and tail.header is not None:
            self._remember_x509(frame_from_chunk(tail.header, history, str(tail.path)))

    def _remember_x509(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        merged = frame if self.x509_cache is None else pl.concat([self.x509_cache, frame], how="diagonal_relaxed")
        self.x509_cache = merged.tail(X509_CACHE_ROWS)

    @property
    def more_pending(self) -> bool:
        return any(t.more for t in self.tails.values())

    def read_batch(self) -> dict[str, pl.DataFrame]:
        frames: dict[str, list[pl.DataFrame]] = {}
        for kind, tail in self.tails.items():
            for header, data in tail.read():
                frame = frame_from_chunk(header, data, str(tail.path))
                if frame.height:
                    frames.setdefault(kind, []).append(frame)
        return {k: pl.concat(v, how="diagonal_relaxed") for k, v in frames.items()}

    def poll(self) -> list[Finding]:
        """Read what the logs gained and return the findings it makes."""
        batch = self.read_batch()
        if "x509" in batch:
            self._remember_x509(batch["x509"])
        if not any(k in batch for k in KINDS if k != "x509"):
            return []
        logs = LogSet(**{k: v.lazy() for k, v in batch.items() if k != "x509"})
        logs.x509 = self.x509_cache.lazy() if self.x509_cache is not None else None
        prepared = materialise(prepare(logs, self.catalogue, self.tor, self.scope))
        conn_is_live = self.tails["conn"].state is not None or (self.directory / "conn.log").exists()
        plan = detection_plan(logs, self.catalogue, self.tor, self.scope, prepared=prepared,
                              summaries=False, tor_from_ssl=not conn_is_live, clients=self.clients)
        found = finalise(plan.collect())
        out = list(iter_findings(found))
        source = prepared.conn if prepared.conn is not None else (None if conn_is_live else prepared.tls)
        if source is not None:
            out += self._tor_repeats(source)
        if prepared.nk is not None:
            out += self._nk_traffic(prepared.nk)
        return out

    def _nk_traffic(self, conn: pl.LazyFrame) -> list[Finding]:
        groups = nk_groups(conn).collect()
        if groups.height == 0:
            return []
        latest = groups["_last"].max()
        if latest is not None and (self.watermark is None or latest > self.watermark):
            self.watermark = latest
        late = pl.lit(False)
        if self.closed_through is not None:
            late = pl.col("_day") <= self.closed_through
        groups = groups.with_columns(late.alias("_late"))
        state = groups if self.nk_state is None else pl.concat([self.nk_state, groups], how="diagonal_relaxed")
        merged = self._merge(state)
        if self.watermark is None:
            self.nk_state = merged
            return []
        closed_day = (self.watermark - DAY_CLOSE_GRACE).date() - dt.timedelta(days=1)
        done = merged.filter(pl.col("_day") <= closed_day).sort(NK_TRAFFIC_ORDER, nulls_last=True)
        self.nk_state = merged.filter(pl.col("_day") > closed_day)
        if self.closed_through is None or closed_day > self.closed_through:
            self.closed_through = closed_day
        if done.height == 0:
            return []
        frame = nk_traffic_findings(done.lazy(), self.catalogue).collect()
        findings = list(iter_findings(frame))
        late_flags = done["_late"].to_list()
        return [
            Finding(**{**f.__dict__, "evidence": {**f.evidence, "late": True}}) if is_late else f
            for f, is_late in zip(findings, late_flags, strict=True)
        ]

    @staticmethod
    def _merge(state: pl.DataFrame) -> pl.DataFrame:
        """Fold group rows per key, keeping late rows (for days already reported) apart."""
        state = state.with_columns(pl.col("_late").fill_null(False))
        parts = []
        for late in (False, True):
            rows = state.filter(pl.col("_late") == late).drop("_late")
            if rows.height:
                parts.append(merge_nk_groups(rows.lazy()).collect().with_columns(pl.lit(late).alias("_late")))
        return pl.concat(parts, how="diagonal_relaxed") if parts else state

    def _tor_repeats(self, source: pl.LazyFrame) -> list[Finding]:
        matches = tor_matches(source, self.tor).select(
            "ts", "_host", "_tor_addr", "_tor_role", "_tor_feed", "nk_range"
        ).collect()
        out = []
        for row in matches.sort("ts").iter_rows(named=True):
            key = f"{row['_host']}|{row['_tor_addr']}"
            day = row["ts"].date().isoformat()
            days = self.tor_days.setdefault(key, [])
            if day not in days:
                days.append(day)
                days.sort()
                del days[:-60]
            if len(days) >= 2 and key not in self.tor_repeat_done:
                self.tor_repeat_done.add(key)
                out.append(Finding(
                    ts=row["ts"], uid=None, log="conn", category="tor", reason="tor-repeat",
                    orig_h=row["_host"], orig_p=None, resp_h=row["_tor_addr"], resp_p=None,
                    range=row["nk_range"], severity="high", confidence="high",
                    evidence={"tor_addr": row["_tor_addr"], "role": row["_tor_role"], "list": row["_tor_feed"],
                              "days": list(days), "day_count": len(days)},
                ))
        return out

    def save(self, out_size: int | None, out: Path | None) -> None:
        if self.checkpoint is None:
            return
        data = {
            "version": CHECKPOINT_VERSION,
            "directory": str(self.directory.resolve()),
            "out": str(out.resolve()) if out is not None else None,
            "files": {k: t.state.to_dict() for k, t in self.tails.items() if t.state is not None},
            "out_size": out_size,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "closed_through": self.closed_through.isoformat() if self.closed_through else None,
            "nk_groups": _groups_to_json(self.nk_state),
            "tor_days": self.tor_days,
            "tor_repeat_done": sorted(self.tor_repeat_done),
        }
        write_text_atomic(self.checkpoint, json.dumps(data, sort_keys=True) + "\n")

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else _typed(value, kind)


def _parse_dt(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _parse_date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _groups_to_json(groups: pl.DataFrame | None) -> list[dict[str, Any]]:
    if groups is None or groups.height == 0:
        return []
    rows = []
    for row in groups.iter_rows(named=True):
        row = dict(row)
        row["_day"] = row["_day"].isoformat()
        row["ts"] = row["ts"].isoformat()
        row["_last"] = row["_last"].isoformat()
        rows.append(row)
    return rows


GROUP_SCHEMA = {
    "nk_host": pl.Utf8, "peer_h": pl.Utf8, "service": pl.Utf8, "_day": pl.Date,
    "ts": pl.Datetime("us", "UTC"), "_last": pl.Datetime("us", "UTC"), "_connections": pl.Int64,
    "_orig_bytes": pl.Int64, "_resp_bytes": pl.Int64, "_outbound": pl.Int64, "nk_range": pl.Utf8,
    "_proto": pl.Int8, "_port_min": pl.Int64, "_port_max": pl.Int64, "_late": pl.Boolean,
}


def _groups_from_json(rows: list[dict[str, Any]]) -> pl.DataFrame | None:
    if not rows:
        return None
    fixed = []
    for row in rows:
        row = dict(row)
        row["_day"] = dt.date.fromisoformat(row["_day"])
        row["ts"] = dt.datetime.fromisoformat(row["ts"])
        row["_last"] = dt.datetime.fromisoformat(row["_last"])
        fixed.append(row)
    return pl.DataFrame(fixed, schema=GROUP_SCHEMA)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SensorPluginsError(f"{path}: unreadable checkpoint: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        raise SensorPluginsError(f"{path}: not a version {CHECKPOINT_VERSION} analyze checkpoint")
    if not isinstance(data.get("files", {}), dict):
        raise SensorPluginsError(f"{path}: checkpoint 'files' must be an object")
    return data


class Sink:
    """Where follow-mode findings go: stdout, or a file appended to and fsynced per batch."""

    def __init__(self, fmt: str, out_path: Path | None, restore_size: int | None) -> None:
        self.fmt = fmt
        self.out_path = out_path
        self.handle: Any = None
        if out_path is not None:
            try:
                out_path.parent.mkdir(parents=True, exist_ok=True)
                self.handle = open(out_path, "ab")  # noqa: SIM115
            except OSError as exc:
                raise SensorPluginsError(f"{out_path}: cannot write findings: {exc.strerror}") from exc
            size = self.handle.tell()
            if restore_size is not None and size < restore_size:
                raise SensorPluginsError(
                    f"{out_path}: holds {size} bytes but the checkpoint recorded {restore_size}; it was changed "
                    "by something else, so resuming would lose or repeat findings"
                )
            if restore_size is not None and size > restore_size:
                # Findings (or part of one) written after the last checkpoint: they will be
                # made again from the same rows, so they go, whole or partial.
                self.handle.truncate(restore_size)
                self.handle.seek(restore_size)
                os.fsync(self.handle.fileno())
            if self.handle.tell() == 0:
                self._write_text(self._preamble())

    def _preamble(self) -> str:
        if self.fmt == "csv":
            return csv_header()
        if self.fmt == "zeek":
            return zeek_header(dt.datetime.now(dt.UTC))
        return ""

    def _write_text(self, text: str) -> None:
        if text:
            self._write_bytes(text.encode("utf-8"))

    def _write_bytes(self, data: bytes) -> None:
        if self.handle is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        try:
            self.handle.write(data)
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as exc:
            raise SensorPluginsError(f"{self.out_path}: cannot write findings: {exc.strerror or exc}") from exc

    def start_stdout(self) -> None:
        if self.handle is None:
            self._write_text(self._preamble())

    def write(self, findings: list[Finding]) -> None:
        if not findings:
            return
        buffer = io.BytesIO()
        write_rows(findings_frame(findings), self.fmt, buffer)
        self._write_bytes(buffer.getvalue())

    def size(self) -> int | None:
        return self.handle.tell() if self.handle is not None else None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def check_follow_paths(args: argparse.Namespace) -> None:
    """--out and --checkpoint: regular files of their own, apart, never one of the live logs."""
    logs = [args.follow / f"{k}.log" for k in KINDS]
    outputs = [(flag, p) for flag, p in (("--out", args.out), ("--checkpoint", args.checkpoint)) if p is not None]
    for flag, path in outputs:
        check_output_file(path, [*logs, *input_files(args)], flag)
    if len(outputs) == 2 and args.out.resolve() == args.checkpoint.resolve():
        raise SensorPluginsError(f"{args.out}: --out and --checkpoint name the same file")
    for flag, path in outputs:
        if path.resolve().parent == args.follow.resolve() and path.name.endswith(".log"):
            raise SensorPluginsError(f"{path}: {flag} inside the followed directory would be read as a log")


def run_follow(args: argparse.Namespace) -> int:
    fmt = args.fmt or "jsonl"
    if fmt not in FOLLOW_FORMATS:
        raise SensorPluginsError(f"--follow writes {', '.join(FOLLOW_FORMATS)}, not {fmt}")
    if args.paths:
        raise SensorPluginsError("--follow DIR takes no other log paths")
    if not 0 < args.poll <= 3600:
        raise SensorPluginsError(f"--poll must be between 0 and 3600 seconds, got {args.poll:g}")
    if not args.follow.is_dir():
        raise SensorPluginsError(f"{args.follow}: --follow needs a directory of live Zeek logs")
    check_follow_paths(args)
    catalogue, tor = load_inputs(args)
    clients = load_client_table(args.clients)
    # One follower per checkpoint (or per output without one): a second would interleave
    # its findings and checkpoints with the first's.
    guarded = [p for p in (args.checkpoint, args.out) if p is not None]
    with locked(guarded, 0):
        return _follow_locked(args, fmt, catalogue, tor, clients)


def _follow_locked(args: argparse.Namespace, fmt: str, catalogue: Catalogue, tor: TorList,
                   clients: ClientTable) -> int:
    follower = Follower(args.follow, catalogue, tor, args.scope, args.checkpoint, clients)
    out: Path | None = args.out
    if follower.out_known and follower.out_path != (str(out.resolve()) if out is not None else None):
        raise SensorPluginsError(f"{args.checkpoint}: checkpoint was written for --out "
                                 f"{follower.out_path or 'stdout'}, not {out or 'stdout'}")
    if out is not None and not follower.saved and out.exists() and out.stat().st_size > 0:
        how = "its checkpoint is missing" if args.checkpoint else "there is no --checkpoint"
        raise SensorPluginsError(f"{out}: already holds findings and {how}, so this run would repeat them; "
                                 "give a new --out or the checkpoint it was written with")
    if args.checkpoint is not None and not follower.saved:
        # Saved before the first byte of output: a crash from here on finds a checkpoint
        # that says how much of --out is committed (none yet), so nothing is doubled.
        follower.save(0 if out is not None else None, out)
    sink = Sink(fmt, out, follower.out_size)
    sink.start_stdout()
    stop = {"now": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    # Every stop signal ends the loop after the batch under way, as on a sensor service;
    # one ignored from the start (nohup's SIGHUP) stays ignored.
    previous = {s: signal.signal(s, request_stop) for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    total = 0
    try:
        while not stop["now"]:
            try:
                findings = follower.poll()
            except pl.exceptions.PolarsError as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SensorPluginsError(f"{args.follow}: cannot read the live logs: {first[:200]}") from exc
            # Findings first (fsynced), then the checkpoint that counts them: a crash between
            # the two leaves findings past the recorded size, which a restart cuts off.
            sink.write(findings)
            follower.save(sink.size(), out)
            total += len(findings)
            if follower.more_pending:
                continue
            if args.once:
                break
            time.sleep(args.poll)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        follower.close()
        sink.close()
    return 1 if total else 0
