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
import io
import json
import os
import signal
import sys
import time
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
from sensor_plugins.analysis.logs import KINDS, LogHeader, LogSet, json_lines_frame, parse_header_lines, zeek_type_expr
from sensor_plugins.analysis.output import csv_header, write_rows, zeek_header
from sensor_plugins.atomic import write_text_atomic
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import Catalogue
from sensor_plugins.inputs.feeds import TorList
from sensor_plugins.inputs.options import load_inputs

CHECKPOINT_VERSION = 1
MAX_CHUNK = 32 * 1024 * 1024
HEADER_PROBE = 64 * 1024
DAY_CLOSE_GRACE = dt.timedelta(hours=1)
X509_CACHE_ROWS = 200_000
FOLLOW_FORMATS = ("jsonl", "csv", "zeek")


def _warn(message: str) -> None:
    print(f"sensor-plugins: warning: {message}", file=sys.stderr)


@dataclass
class FileState:
    """Where reading stopped in one log: the file by device and inode, and the byte offset."""

    path: str
    dev: int
    inode: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "dev": self.dev, "inode": self.inode, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FileState:
        try:
            state = cls(str(data["path"]), int(data["dev"]), int(data["inode"]), int(data["offset"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SensorPluginsError(f"{where}: malformed file entry in checkpoint") from exc
        if state.offset < 0:
            raise SensorPluginsError(f"{where}: negative offset in checkpoint")
        return state


def _header_from_handle(handle: BinaryIO) -> LogHeader | None:
    head = os.pread(handle.fileno(), HEADER_PROBE, 0)
    lines = head.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines = lines[:-1]
    return parse_header_lines(lines, getattr(handle, "name", "log"))


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
        if self.state is not None and (st.st_dev, st.st_ino) == (self.state.dev, self.state.inode):
            if st.st_size < self.state.offset:
                _warn(f"{self.path}: shorter than the checkpoint offset (truncated); reading it from the start")
                self.state.offset = 0
        else:
            self.state = FileState(str(self.path), st.st_dev, st.st_ino, 0)
        handle.seek(self.state.offset)
        self.handle = handle
        self.header = _header_from_handle(handle)
        self.rotated_source = False
        return True

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
            self.header = _header_from_handle(self.handle)
            if self.header is None:
                return b""
        data = self.handle.read(limit)
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            self.handle.seek(self.state.offset + cut)
        self.state.offset += cut
        self.more = len(data) >= limit
        return data[:cut]

    def read(self) -> Iterator[tuple[LogHeader, bytes]]:
        """New whole lines, with the header that types them; finishes a rotated file first."""
        self.more = False
        budget = MAX_CHUNK
        while budget > 0:
            if self.handle is None and not self._open():
                return
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
        assert self.handle is not None and self.state is not None
        rest = self.handle.read()
        if rest.strip():
            _warn(f"{self.state.path}: rotated with an incomplete last line ({len(rest)} bytes), skipped")
        self.close()
        self.state = None
        self.header = None

    def history(self) -> bytes:
        """The bytes already read from the current file (to rebuild caches after a restart)."""
        if self.handle is None or self.state is None or self.state.offset == 0:
            return b""
        return os.pread(self.handle.fileno(), self.state.offset, 0)


def frame_from_chunk(header: LogHeader, data: bytes, where: str) -> pl.DataFrame:
    """Whole log lines -> a typed DataFrame, exactly as batch mode types them."""
    if header.is_json:
        return json_lines_frame(data, where)
    raw = pl.read_csv(
        io.BytesIO(data), separator=header.separator, has_header=False, quote_char=None,
        comment_prefix="#", schema=dict.fromkeys(header.fields, pl.Utf8), null_values=[header.unset_field],
        encoding="utf8-lossy", truncate_ragged_lines=True, raise_if_empty=False,
    )
    return raw.with_columns(
        zeek_type_expr(n, t, header) for n, t in zip(header.fields, header.types, strict=True)
        if t not in ("addr", "subnet")
    )


class Follower:
    """The state of a follow run: tails, caches, summaries, and their checkpoint."""

    def __init__(self, directory: Path, catalogue: Catalogue, tor: TorList, scope: str,
                 checkpoint: Path | None) -> None:
        if not directory.is_dir():
            raise SensorPluginsError(f"{directory}: --follow needs a directory of live Zeek logs")
        self.directory = directory
        self.catalogue = catalogue
        self.tor = tor
        self.scope = scope
        self.checkpoint = checkpoint
        saved = load_checkpoint(checkpoint) if checkpoint else {}
        if saved and saved.get("directory") != str(directory.resolve()):
            raise SensorPluginsError(f"{checkpoint}: checkpoint belongs to {saved.get('directory')}, "
                                     f"not to {directory.resolve()}")
        files = saved.get("files", {})
        self.tails = {k: Tail(directory, k, FileState.from_dict(files[k], str(checkpoint)) if k in files else None)
                      for k in KINDS}
        self.out_size: int | None = saved.get("out_size")
        self.watermark: dt.datetime | None = _parse_dt(saved.get("watermark"))
        self.closed_through: dt.date | None = _parse_date(saved.get("closed_through"))
        self.nk_state = _groups_from_json(saved.get("nk_groups", []))
        self.tor_days: dict[str, list[str]] = dict(saved.get("tor_days", {}))
        self.tor_repeat_done: set[str] = set(saved.get("tor_repeat_done", []))
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
                              summaries=False, tor_from_ssl=not conn_is_live)
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

    def save(self, out_size: int | None) -> None:
        if self.checkpoint is None:
            return
        data = {
            "version": CHECKPOINT_VERSION,
            "directory": str(self.directory.resolve()),
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
            out_path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(out_path, "ab")  # noqa: SIM115
            size = self.handle.tell()
            if restore_size is not None and size > restore_size:
                # Findings written after the last checkpoint: they will be made again.
                self.handle.truncate(restore_size)
                self.handle.seek(restore_size)
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
        else:
            self.handle.write(data)
            self.handle.flush()
            os.fsync(self.handle.fileno())

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


def run_follow(args: argparse.Namespace) -> int:
    fmt = args.fmt or "jsonl"
    if fmt not in FOLLOW_FORMATS:
        raise SensorPluginsError(f"--follow writes {', '.join(FOLLOW_FORMATS)}, not {fmt}")
    if args.paths:
        raise SensorPluginsError("--follow DIR takes no other log paths")
    catalogue, tor = load_inputs(args)
    follower = Follower(args.follow, catalogue, tor, args.scope, args.checkpoint)
    sink = Sink(fmt, args.out, follower.out_size)
    sink.start_stdout()
    stop = {"now": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    total = 0
    try:
        while not stop["now"]:
            try:
                findings = follower.poll()
            except pl.exceptions.PolarsError as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SensorPluginsError(f"{args.follow}: cannot read the live logs: {first[:200]}") from exc
            sink.write(findings)
            follower.save(sink.size())
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
