"""B1 baseline: the obvious script. zat's LogToDataFrame loads conn, ssl and x509 into pandas.

    python bench/baseline_zat.py LOG_DIR

Loading only: no join, no lookup, no analysis. Whatever analyze does on top of this, it
must still finish in a fifth of this time to meet B1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zat.log_to_dataframe import LogToDataFrame


def main(argv: list[str]) -> int:
    log_dir = Path(argv[1])
    loader = LogToDataFrame()
    sizes = {name: len(loader.create_dataframe(str(log_dir / f"{name}.log"))) for name in ("conn", "ssl", "x509")}
    print(" ".join(f"{name}={rows}" for name, rows in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
