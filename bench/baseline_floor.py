"""B1h floor: the least work any analyze built on polars must do on a log set.

    python bench/baseline_floor.py LOG_DIR COLUMNS_JSON OUT_FILE BYTES

Starts Python, imports polars, parses from each TSV log the columns analyze's detections
read (COLUMNS_JSON: {"conn": [...], ...}, as bench/figures/b1.py takes them from the
package), numbers as numbers and the rest as text, every row: no filter, no tagging, no
join, no detection. Then writes BYTES bytes (as many as analyze's findings) to OUT_FILE
and fsyncs them. It prints the rows parsed from each log (a footer line counts as one: the
floor does not spend a filter on it). Whatever analyze does on top of this is its own cost; the floor is what
no tuning of the detections can take away while the logs are read with polars.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl

NUMBERS: dict[str, type[pl.DataType]] = {
    "count": pl.Int64, "int": pl.Int64, "port": pl.Int64, "time": pl.Float64, "double": pl.Float64,
    "interval": pl.Float64,
}


def header(path: Path) -> tuple[int, list[str], list[str]]:
    """(header lines, field names, Zeek types) of a TSV log."""
    fields: list[str] = []
    types: list[str] = []
    lines = 0
    with path.open() as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines += 1
            key, _, rest = line.rstrip("\n").partition("\t")
            if key == "#fields":
                fields = rest.split("\t")
            elif key == "#types":
                types = rest.split("\t")
    return lines, fields, types


def scan(path: Path, columns: list[str]) -> pl.LazyFrame:
    skip, fields, types = header(path)
    schema = {name: NUMBERS.get(kind, pl.Utf8)() for name, kind in zip(fields, types, strict=True)}
    return pl.scan_csv(path, separator="\t", has_header=False, quote_char=None, skip_rows=skip, schema=schema,
                       ignore_errors=True, truncate_ragged_lines=True).select([c for c in columns if c in schema])


def main(argv: list[str]) -> int:
    log_dir, columns, out, size = Path(argv[1]), json.loads(argv[2]), Path(argv[3]), int(argv[4])
    names = [name for name in columns if (log_dir / f"{name}.log").exists()]
    frames = pl.collect_all([scan(log_dir / f"{name}.log", columns[name]) for name in names])
    block = b"x" * (1 << 20)
    with out.open("wb") as handle:
        for start in range(0, size, len(block)):
            handle.write(block[: size - start])
        handle.flush()
        os.fsync(handle.fileno())
    print(" ".join(f"{name}={frame.height}" for name, frame in zip(names, frames, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
