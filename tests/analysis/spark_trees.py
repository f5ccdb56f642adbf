"""Log sets for the Spark tests: a zeekctl archive tree built from generated logs, and the
comparison both engines' findings must pass."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import polars as pl

MAKE_LOGS = Path(__file__).resolve().parents[2] / "bench" / "make_logs.py"
KEY_FIELDS = {"x509": "fingerprint"}


def make_logs(out: Path, rows: int, days: int, seed: int) -> Path:
    subprocess.run([sys.executable, str(MAKE_LOGS), "--rows", str(rows), "--days", str(days), "--seed", str(seed),
                    "--out", str(out)], check=True, capture_output=True)
    return out


def _split(path: Path) -> tuple[list[str], list[str], list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    return header, names, [x for x in lines if not x.startswith("#")]


def _set(row: str, names: list[str], **values: str) -> str:
    cells = row.rstrip("\n").split("\t")
    for name, value in values.items():
        cells[names.index(name)] = value
    return "\t".join(cells) + "\n"


def add_cross_day_rows(logs: Path, tor_uids: list[str], nk_host: str) -> None:
    """Rows whose detections span files: each Tor connection again a day later (tor-repeat),
    and a DHT node on an NK host querying 12 peers over two days (the DHT fan-out)."""
    header, names, rows = _split(logs / "conn.log")
    uid = names.index("uid")
    extra = []
    for row in rows:
        cells = row.split("\t")
        if cells[uid] in tor_uids:
            extra.append(_set(row, names, ts=f"{float(cells[0]) + 86400:.6f}", uid=cells[uid] + "r"))
    template = next(r for r in rows if r.split("\t")[names.index("proto")] == "udp")
    start = float(rows[0].split("\t")[0])
    for i in range(12):
        extra.append(_set(template, names, ts=f"{start + i * 43200:.6f}", uid=f"CdhtNode{i:04d}x",
                          **{"id.orig_h": nk_host, "id.orig_p": "51413", "id.resp_h": f"198.51.100.{10 + i}",
                             "id.resp_p": str(20000 + 7 * i), "proto": "udp", "service": "-",
                             "orig_bytes": "97", "resp_bytes": "120", "orig_pkts": "1", "resp_pkts": "1"}))
    (logs / "conn.log").write_text("".join(header) + "".join(rows + extra), encoding="utf-8")


def zeekctl_tree(logs: Path, out: Path, sensors: tuple[str, ...] = ("tap-a", "tap-b"), hours: int = 6) -> Path:
    """``<sensor>/<YYYY-MM-DD>/<kind>.HH:MM:SS-HH:MM:SS.log.gz``, rows spread over sensors by
    uid (x509.log by fingerprint, so a certificate often sits on another sensor than its
    connection), rotated every ``hours``; the newest file of each kind stays plain text."""
    written: dict[Path, list[str]] = {}
    headers: dict[Path, list[str]] = {}
    for path in sorted(logs.glob("*.log")):
        kind = path.name.split(".")[0]
        header, names, rows = _split(path)
        key = names.index(KEY_FIELDS.get(kind, "uid"))
        for row in rows:
            cells = row.split("\t")
            when = dt.datetime.fromtimestamp(float(cells[0]), dt.UTC)
            sensor = sensors[zlib.crc32(cells[key].encode()) % len(sensors)]
            slot = when.hour // hours * hours
            name = f"{kind}.{slot:02d}:00:00-{(slot + hours) % 24:02d}:00:00.log"
            target = out / sensor / when.date().isoformat() / name
            written.setdefault(target, []).append(row)
            headers[target] = header
    newest = {}
    for target in written:
        kind = target.name.split(".")[0]
        newest[kind] = max(newest.get(kind, target), target, key=lambda p: (p.parent.name, p.name))
    for target, rows in written.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(headers[target]) + "".join(rows) + "#close\t2026-01-01-00-00-00\n"
        if target in newest.values():
            target.write_text(text, encoding="utf-8")
        else:
            with gzip.open(target.with_name(target.name + ".gz"), "wt", encoding="utf-8") as handle:
                handle.write(text)
    return out


def comparable(findings: pl.DataFrame) -> list[tuple]:
    """Every finding as a tuple, evidence parsed (key order aside), sorted: a multiset."""
    rows = []
    for row in findings.iter_rows(named=True):
        evidence = json.dumps(json.loads(row["evidence"]), sort_keys=True)
        rows.append((row["uid"], row["category"], row["reason"], row["range"], evidence, str(row["ts"]),
                     row["log"], row["orig_h"], row["orig_p"], row["resp_h"], row["resp_p"], row["severity"],
                     row["confidence"]))
    return sorted(rows, key=repr)
