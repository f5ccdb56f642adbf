"""B2 baseline: the floor for reading the logs at all. A bare ``polars.read_csv`` of each file.

    python bench/baseline_polars.py LOG_DIR

Every log analyze reads (conn, dns, http, ssl, x509) is read whole into memory, every
column as text: no types, no joins, no analysis. polars uses every core for this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

LOGS = ("conn", "dns", "http", "ssl", "x509")


def main(argv: list[str]) -> int:
    log_dir = Path(argv[1])
    sizes = {}
    for name in LOGS:
        # Zeek's header and footer lines start with '#'; its fields are never quoted.
        frame = pl.read_csv(log_dir / f"{name}.log", separator="\t", comment_prefix="#", has_header=False,
                            quote_char=None, infer_schema=False)
        sizes[name] = frame.height
    print(" ".join(f"{name}={rows}" for name, rows in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
