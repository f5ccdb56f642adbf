"""The choices the analyze command offers, kept free of polars.

The command builds its parser, and sizes its input, before polars loads (see
analysis/command.py); the detections, the writers and the report take the same values from here.
"""

from __future__ import annotations

# nk: only connections with an endpoint in the catalogue; all: every connection.
SCOPES = ("nk", "all")
FORMATS = ("jsonl", "csv", "zeek", "table")
# Up to this much input, the scoped logs are kept in memory (each parsed once) and the
# allocator keeps freed pages for reuse; above it, memory is what runs short.
IN_MEMORY_MAX_BYTES = 512 * 1024 * 1024
