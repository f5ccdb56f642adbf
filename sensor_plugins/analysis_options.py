"""The choices the analyze command offers, kept free of polars.

The command builds its parser, and sizes its input, before polars loads (see
analyze.py); the detections and the writers take the same names from here.
"""

from __future__ import annotations

# nk: only connections with an endpoint in the catalogue; all: every connection.
SCOPES = ("nk", "all")
FORMATS = ("jsonl", "csv", "zeek", "table")
