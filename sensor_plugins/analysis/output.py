"""Findings out: JSON lines, CSV, a Zeek TSV log, or a rich table with a summary.

JSON lines, CSV and Zeek TSV are produced by polars expressions over the findings frame
(a million findings in seconds, not a Python object each). Every text that came from a
log is made safe for where it goes: JSON escapes itself, CSV quotes itself, the Zeek TSV
writer escapes backslashes, tabs, newlines and other control bytes as Zeek's own ASCII
writer does, and the table strips control characters and rich markup so a hostile URI
cannot repaint the terminal.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import polars as pl

from sensor_plugins.analysis.findings import FIELDS, FINDING_SCHEMA, format_ts, iter_findings
from sensor_plugins.atomic import open_atomic, write_text_atomic

ZEEK_PATH = "nk_findings"
ZEEK_TYPES = {
    "ts": "time", "uid": "string", "log": "string", "category": "string", "reason": "string",
    "orig_h": "addr", "orig_p": "port", "resp_h": "addr", "resp_p": "port", "range": "string",
    "severity": "string", "confidence": "string", "evidence": "string",
}
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Control bytes Zeek's ASCII writer escapes as \xNN (a backslash becomes two).
ZEEK_CONTROL = [*range(0x20), 0x7F]
TABLE_MAX_ROWS = 500


def choose_format(fmt: str | None, out_path: Path | None, stream: TextIO) -> str:
    """The format asked for; otherwise a table for a person at a terminal, JSON lines for anything else."""
    if fmt:
        return fmt
    return "table" if out_path is None and stream.isatty() else "jsonl"


def iso_ts(expr: pl.Expr) -> pl.Expr:
    return expr.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")


def jsonl_line() -> pl.Expr:
    """One JSON object per finding, ``evidence`` embedded as an object (it is JSON text)."""
    head = pl.struct(
        iso_ts(pl.col("ts")).alias("ts"), *[pl.col(n) for n in FIELDS if n not in ("ts", "evidence")]
    ).struct.json_encode()
    evidence = pl.col("evidence").fill_null("{}")
    return pl.concat_str(head.str.head(-1), pl.lit(',"evidence":'), evidence, pl.lit("}")).alias("line")


def jsonl_lines(frame: pl.DataFrame) -> pl.Series:
    return frame.select(jsonl_line()).to_series()


def zeek_escape_expr(expr: pl.Expr) -> pl.Expr:
    """A text column as Zeek writes it in a TSV log; null stays null (written as ``-``)."""
    out = expr.str.replace_all("\\", "\\\\", literal=True)
    for code in ZEEK_CONTROL:
        out = out.str.replace_all(chr(code), f"\\x{code:02x}", literal=True)
    # The unset and empty markers would be read back as no value at all.
    return (
        pl.when(out == "").then(pl.lit("(empty)"))
        .when(out == "-").then(pl.lit("\\x2d"))
        .when(out == "(empty)").then(pl.lit("\\x28empty)"))
        .otherwise(out)
    )


def zeek_escape(text: str) -> str:
    """``zeek_escape_expr`` for one Python string."""
    return pl.select(zeek_escape_expr(pl.lit(text, dtype=pl.Utf8))).item()


def zeek_columns() -> list[pl.Expr]:
    micros = pl.col("ts").dt.epoch("us")
    stamp = pl.concat_str(
        (micros // 1_000_000).cast(pl.Utf8), pl.lit("."), (micros % 1_000_000).cast(pl.Utf8).str.zfill(6)
    )
    columns = []
    for name, dtype in FINDING_SCHEMA.items():
        if name == "ts":
            columns.append(stamp.alias(name))
        elif dtype == pl.Utf8:
            columns.append(zeek_escape_expr(pl.col(name)).alias(name))
        else:
            columns.append(pl.col(name).cast(pl.Utf8).alias(name))
    return columns


def zeek_header(opened: dt.datetime) -> str:
    stamp = opened.strftime("%Y-%m-%d-%H-%M-%S")
    return "".join([
        "#separator \\x09\n",
        "#set_separator\t,\n",
        "#empty_field\t(empty)\n",
        "#unset_field\t-\n",
        f"#path\t{ZEEK_PATH}\n",
        f"#open\t{stamp}\n",
        "#fields\t" + "\t".join(FIELDS) + "\n",
        "#types\t" + "\t".join(ZEEK_TYPES[n] for n in FIELDS) + "\n",
    ])


def zeek_footer(closed: dt.datetime) -> str:
    return f"#close\t{closed.strftime('%Y-%m-%d-%H-%M-%S')}\n"


def csv_header() -> str:
    return ",".join(FIELDS) + "\n"


class CountingWriter(io.RawIOBase):
    """A binary stream that forwards writes and counts the bytes (polars sinks write here)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self.inner = inner
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.count += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()


def sink_rows(findings: pl.LazyFrame, fmt: str, out: BinaryIO) -> None:
    """The findings as rows of ``fmt`` (no header or footer), streamed by polars."""
    if fmt == "jsonl":
        findings.select(jsonl_line()).sink_csv(out, include_header=False, quote_style="never")
    elif fmt == "csv":
        findings.select(iso_ts(pl.col("ts")).alias("ts"), *FIELDS[1:]).sink_csv(out, include_header=False)
    elif fmt == "zeek":
        findings.select(zeek_columns()).sink_csv(out, separator="\t", quote_style="never", include_header=False,
                                                 null_value="-")
    else:
        raise ValueError(f"unknown row format {fmt!r}")


def write_rows(frame: pl.DataFrame, fmt: str, out: BinaryIO) -> None:
    sink_rows(frame.lazy(), fmt, out)


def write_head(fmt: str, out: BinaryIO, now: dt.datetime) -> None:
    if fmt == "csv":
        out.write(csv_header().encode())
    elif fmt == "zeek":
        out.write(zeek_header(now).encode())


def write_tail(fmt: str, out: BinaryIO, now: dt.datetime) -> None:
    if fmt == "zeek":
        out.write(zeek_footer(now).encode())


def write_stream(frame: pl.DataFrame, fmt: str, out: BinaryIO, now: dt.datetime | None = None) -> None:
    """A whole file of ``fmt``: header, rows, footer (table mode excepted)."""
    now = now or dt.datetime.now(dt.UTC)
    write_head(fmt, out, now)
    write_rows(frame, fmt, out)
    write_tail(fmt, out, now)


def safe_text(value: Any, limit: int = 80) -> str:
    """Terminal-safe text: no control or bidi characters, no rich markup, bounded length."""
    from rich.markup import escape

    text = "" if value is None else str(value)
    text = CONTROL_RE.sub("?", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)


def _evidence_summary(evidence: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in evidence.items() if v not in (None, [], ""))


def _endpoint(host: str | None, port: int | None) -> str:
    if host is None:
        return ""
    return f"{host}:{port}" if port is not None else host


def write_table(frame: pl.DataFrame, out: TextIO, width: int | None = None) -> None:
    """The findings as a table (the first TABLE_MAX_ROWS), then counts by reason and by host."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    shown = frame.head(TABLE_MAX_ROWS)
    caption = None
    if frame.height > shown.height:
        caption = f"first {shown.height} of {frame.height}; use --format jsonl or csv for all"
    table = Table(title=f"{frame.height} findings", caption=caption)
    for name in ("ts", "category", "reason", "severity", "orig_h", "resp_h", "range", "evidence"):
        table.add_column(name, overflow="fold", no_wrap=name in ("ts", "category", "reason", "severity"))
    for f in iter_findings(shown):
        table.add_row(
            safe_text(format_ts(f.ts), 30), f.category, f.reason, f.severity,
            safe_text(_endpoint(f.orig_h, f.orig_p)), safe_text(_endpoint(f.resp_h, f.resp_p)),
            safe_text(f.range or ""), safe_text(_evidence_summary(f.evidence), 160),
        )
    console.print(table)
    write_summary(frame, console)


def summary_counts(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(counts by category and reason, counts by host), both sorted by count then name."""
    by_reason = frame.group_by("category", "reason").len("findings").sort(
        ["category", "findings", "reason"], descending=[False, True, False]
    )
    hosts = pl.concat([
        frame.select(pl.col("orig_h").alias("host"), "category"),
        frame.select(pl.col("resp_h").alias("host"), "category"),
    ]).filter(pl.col("host").is_not_null())
    by_host = (
        hosts.group_by("host").agg(
            pl.len().alias("findings"),
            pl.col("category").unique().sort().str.join(",").alias("categories"),
        ).sort(["findings", "host"], descending=[True, False])
    )
    return by_reason, by_host


def write_summary(frame: pl.DataFrame, console: Any, max_hosts: int = 20) -> None:
    from rich.table import Table

    by_reason, by_host = summary_counts(frame)
    reasons = Table(title="Findings by category and reason")
    for name in ("category", "reason", "findings"):
        reasons.add_column(name, justify="right" if name == "findings" else "left")
    for category, reason, count in by_reason.iter_rows():
        reasons.add_row(category, reason, str(count))
    console.print(reasons)
    hosts = Table(title=f"Findings by host (top {max_hosts})")
    for name in ("host", "findings", "categories"):
        hosts.add_column(name, justify="right" if name == "findings" else "left")
    for host, count, categories in by_host.head(max_hosts).iter_rows():
        hosts.add_row(safe_text(host, 45), str(count), categories)
    console.print(hosts)


def render(frame: pl.DataFrame, fmt: str, width: int | None = None) -> str:
    """The findings in ``fmt`` as one string (for tests and small outputs)."""
    if fmt == "table":
        buffer = io.StringIO()
        write_table(frame, buffer, width=width)
        return buffer.getvalue()
    raw = io.BytesIO()
    write_stream(frame, fmt, raw)
    return raw.getvalue().decode("utf-8")


def write_findings(small: pl.DataFrame, nk: pl.LazyFrame, fmt: str, out_path: Path | None) -> bool:
    """Write an analysis' findings (see ``detect.analysis``) to ``out_path``, atomically, or
    to stdout; True when there was at least one."""
    if fmt == "table":
        findings = pl.concat([small, nk.collect(engine="streaming")]).sort("ts", maintain_order=True)
        if out_path is None:
            write_table(findings, sys.stdout)
            sys.stdout.flush()
        else:
            buffer = io.StringIO()
            write_table(findings, buffer, width=160)
            write_text_atomic(out_path, buffer.getvalue())
        return findings.height > 0
    if out_path is None:
        sys.stdout.flush()
        return _write_analysis(small, nk, fmt, sys.stdout.buffer)
    with open_atomic(out_path) as handle:
        return _write_analysis(small, nk, fmt, handle)


def _write_analysis(small: pl.DataFrame, nk: pl.LazyFrame, fmt: str, out: BinaryIO) -> bool:
    """Per-connection findings first (sorted by time), then nk-traffic streamed by polars."""
    now = dt.datetime.now(dt.UTC)
    write_head(fmt, out, now)
    write_rows(small, fmt, out)
    counted = CountingWriter(out)
    sink_rows(nk, fmt, counted)
    write_tail(fmt, out, now)
    out.flush()
    return small.height > 0 or counted.count > 0
