"""The finding model: one row of the analyzer's output, the same in every output format.

``FINDING_SCHEMA`` is the polars schema of the findings DataFrame that
``sensor_plugins.analysis.detect.detect`` returns; ``evidence`` is held there as JSON text and
becomes a dict in ``Finding``. ``Finding.to_dict`` / ``Finding.from_dict`` convert to and
from the JSON-lines form (``ts`` as ISO 8601 UTC with a ``Z``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sensor_plugins.errors import SensorPluginsError

CATEGORIES = ("weak-tls", "tor", "torrent", "nk-traffic", "client")
LEVELS = ("low", "medium", "high")
UTC_US = pl.Datetime("us", "UTC")

FINDING_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "uid": pl.Utf8(),
    "log": pl.Utf8(),
    "category": pl.Utf8(),
    "reason": pl.Utf8(),
    "orig_h": pl.Utf8(),
    "orig_p": pl.Int64(),
    "resp_h": pl.Utf8(),
    "resp_p": pl.Int64(),
    "range": pl.Utf8(),
    "severity": pl.Utf8(),
    "confidence": pl.Utf8(),
    "evidence": pl.Utf8(),
}
FIELDS = tuple(FINDING_SCHEMA)


@dataclass(frozen=True)
class Finding:
    """One finding. ``uid`` is None for per-host or per-day summaries (nk-traffic, tor-repeat)."""

    ts: dt.datetime
    uid: str | None
    log: str
    category: str
    reason: str
    orig_h: str | None
    orig_p: int | None
    resp_h: str | None
    resp_p: int | None
    range: str | None
    severity: str
    confidence: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines form: every field, ``ts`` as ISO 8601 UTC, evidence as an object."""
        out = {name: getattr(self, name) for name in FIELDS}
        out["ts"] = format_ts(self.ts)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of ``to_dict``; accepts ``evidence`` as an object or as JSON text."""
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise SensorPluginsError(f"finding: field {missing[0]!r} is missing")
        ts = data["ts"]
        if isinstance(ts, str):
            try:
                ts = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
            except ValueError as exc:
                raise SensorPluginsError(f"finding: field 'ts' is not ISO 8601: {ts[:40]!r}") from exc
        if isinstance(ts, dt.datetime) and ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        evidence = data["evidence"]
        if isinstance(evidence, str):
            evidence = json.loads(evidence) if evidence else {}
        values = {name: data[name] for name in FIELDS}
        values.update(ts=ts, evidence=dict(evidence or {}))
        return cls(**values)


def format_ts(ts: dt.datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


def iter_findings(frame: pl.DataFrame) -> Iterator[Finding]:
    """Findings from a findings DataFrame, in its row order."""
    for row in frame.select(FIELDS).iter_rows(named=True):
        yield Finding.from_dict(row)


def findings_frame(findings: list[Finding]) -> pl.DataFrame:
    """The inverse of ``iter_findings``."""
    rows = []
    for f in findings:
        row = {name: getattr(f, name) for name in FIELDS}
        row["evidence"] = json.dumps(f.evidence, sort_keys=True)
        rows.append(row)
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)
