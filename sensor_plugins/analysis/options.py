"""The choices the analyze command offers, kept free of polars.

The command builds its parser, and sizes its input, before polars loads (see
analysis/command.py); the detections, the writers and the report take the same values from here.
"""

from __future__ import annotations

import argparse

from sensor_plugins.analysis.logfiles import DEFAULT_MAX_GZIP_RATIO, DEFAULT_MAX_LOG_BYTES, ReadLimits
from sensor_plugins.inputs.options import positive_float, positive_int

# nk: only connections with an endpoint in the catalogue; all: every connection.
SCOPES = ("nk", "all")
FORMATS = ("jsonl", "csv", "zeek", "table")
# Up to this much input, the scoped logs are kept in memory (each parsed once) and the
# allocator keeps freed pages for reuse; above it, memory is what runs short.
IN_MEMORY_MAX_BYTES = 512 * 1024 * 1024


def add_read_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """How far one log may expand when read: the decompression-bomb limits (see analysis/logfiles.py)."""
    parser.add_argument("--max-gzip-ratio", type=positive_float, default=DEFAULT_MAX_GZIP_RATIO, metavar="R",
                        help="refuse a .gz log that expands more than R times, once past 16 MiB "
                             f"(default: {DEFAULT_MAX_GZIP_RATIO:g}; Zeek logs compress 5-20 times)")
    parser.add_argument("--max-log-bytes", type=positive_int, default=DEFAULT_MAX_LOG_BYTES, metavar="N",
                        help=f"refuse a log that expands beyond N bytes (default: {DEFAULT_MAX_LOG_BYTES} = 64 GiB)")


def read_limits_of(args: argparse.Namespace) -> ReadLimits:
    return ReadLimits(max_gzip_ratio=args.max_gzip_ratio, max_log_bytes=args.max_log_bytes)
