"""Findings out: JSON lines, CSV, a Zeek TSV log, or a rich table with a summary.

Every text that came from a log is made safe for where it goes: JSON escapes itself,
CSV quotes itself, the Zeek TSV writer escapes tabs, newlines, backslashes and other
control bytes as ``\\xNN`` (as Zeek's own ASCII writer does), and the table strips
control characters and rich markup so a hostile URI cannot repaint the terminal.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable
from typing import Any, TextIO

import polars as pl

from sensor_plugins.findings import FIELDS, Finding, format_ts, iter_findings

FORMATS = ("jsonl", "csv", "zeek", "table")
ZEEK_PATH = "nk_findings"
ZEEK_TYPES = {
    "ts": "time", "uid": "string", "log": "string", "category": "string", "reason": "string",
    "orig_h": "addr", "orig_p": "port", "resp_h": "addr", "resp_p": "port", "range": "string",
    "severity": "string", "confidence": "string", "evidence": "string",
}
# Zeek escapes these in its ASCII logs; the separators must never appear raw in a value.
ZEEK_ESCAPE_RE = re.compile(r"[\x00-\x1f\x7f\\]")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def finding_json(f: Finding) -> str:
    return json.dumps(f.to_dict(), ensure_ascii=False, separators=(",", ":"))


def write_jsonl(findings: Iterable[Finding], out: TextIO) -> None:
    for f in findings:
        out.write(finding_json(f) + "\n")


def csv_cell(name: str, value: Any) -> Any:
    if name == "ts":
        return format_ts(value)
    if name == "evidence":
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else value


def write_csv(findings: Iterable[Finding], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for f in findings:
        writer.writerow([csv_cell(n, getattr(f, n)) for n in FIELDS])


def _zeek_escape_char(match: re.Match[str]) -> str:
    char = match.group()
    # Zeek writes a backslash as two backslashes and every other control byte as \\xNN.
    return "\\\\" if char == "\\" else f"\\x{ord(char):02x}"


def zeek_escape(text: str) -> str:
    """A value as Zeek writes it in a TSV log: control bytes, tab and backslash as \\xNN."""
    escaped = ZEEK_ESCAPE_RE.sub(_zeek_escape_char, text)
    if escaped in ("-", "(empty)", ""):
        # The unset and empty markers would be read back as no value at all.
        return "".join(f"\\x{ord(c):02x}" for c in escaped) if escaped else "(empty)"
    return escaped


def zeek_cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "ts":
        stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
        return f"{stamp.timestamp():.6f}"
    if name == "evidence":
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return zeek_escape(str(value))


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


def write_zeek(findings: Iterable[Finding], out: TextIO, now: dt.datetime | None = None) -> None:
    now = now or dt.datetime.now(dt.UTC)
    out.write(zeek_header(now))
    for f in findings:
        out.write("\t".join(zeek_cell(n, getattr(f, n)) for n in FIELDS) + "\n")
    out.write(f"#close\t{now.strftime('%Y-%m-%d-%H-%M-%S')}\n")


def safe_text(value: Any, limit: int = 80) -> str:
    """Terminal-safe text: no control or bidi characters, no rich markup, bounded length."""
    from rich.markup import escape

    text = "" if value is None else str(value)
    text = CONTROL_RE.sub("?", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)


def _evidence_summary(evidence: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in evidence.items() if v not in (None, [], "")]
    return ", ".join(parts)


def write_table(frame: pl.DataFrame, out: TextIO, width: int | None = None) -> None:
    """The findings as a table, then counts by category and reason, then by host."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    table = Table(title=f"{frame.height} findings", show_lines=False)
    for name in ("ts", "category", "reason", "severity", "orig_h", "resp_h", "range", "evidence"):
        table.add_column(name, overflow="fold", no_wrap=name in ("ts", "category", "reason", "severity"))
    for f in iter_findings(frame):
        table.add_row(
            safe_text(format_ts(f.ts), 30), f.category, f.reason, f.severity,
            safe_text(_endpoint(f.orig_h, f.orig_p)), safe_text(_endpoint(f.resp_h, f.resp_p)),
            safe_text(f.range or ""), safe_text(_evidence_summary(f.evidence), 160),
        )
    console.print(table)
    write_summary(frame, console)


def _endpoint(host: str | None, port: int | None) -> str:
    if host is None:
        return ""
    return f"{host}:{port}" if port is not None else host


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
    for row in by_reason.iter_rows():
        reasons.add_row(row[0], row[1], str(row[2]))
    console.print(reasons)
    hosts = Table(title=f"Findings by host (top {max_hosts})")
    for name in ("host", "findings", "categories"):
        hosts.add_column(name, justify="right" if name == "findings" else "left")
    for host, count, categories in by_host.head(max_hosts).iter_rows():
        hosts.add_row(safe_text(host, 45), str(count), categories)
    console.print(hosts)


def render(frame: pl.DataFrame, fmt: str, width: int | None = None) -> str:
    """The findings in ``fmt`` as one string (for ``--out`` and for tests)."""
    buffer = io.StringIO()
    write(frame, fmt, buffer, width=width)
    return buffer.getvalue()


def write(frame: pl.DataFrame, fmt: str, out: TextIO, width: int | None = None) -> None:
    if fmt == "jsonl":
        write_jsonl(iter_findings(frame), out)
    elif fmt == "csv":
        write_csv(iter_findings(frame), out)
    elif fmt == "zeek":
        write_zeek(iter_findings(frame), out)
    elif fmt == "table":
        write_table(frame, out, width=width)
    else:
        raise ValueError(f"unknown format {fmt!r}")
