"""The known-client table: JA4 fingerprints of named TLS clients, for ``analyze``'s ``known-client``.

One bundled table (``sensor_plugins/data/ja4-clients.tsv``, provenance in
``data/PROVENANCE.md``) is always read; a site adds its own with ``--clients FILE``, in
the same format, the way it adds Tor lists. Each line is ``ja4<TAB>name<TAB>source``;
``#`` starts a comment line. A fingerprint listed under several names (two programs on
one TLS library look alike) keeps them all, in the order first seen.

The names end up in findings and in the HTML report, so they are held to printable text
here, and a line that does not fit the format stops the command with its file and line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.textfile import read_text

BUNDLED_NAME = "ja4-clients.tsv"
MAX_TABLE_BYTES = 8 * 1024 * 1024
MAX_NAME = 80
MAX_SOURCE = 200
# JA4: t/q/d, two version characters, d/i, two counts, two ALPN characters, two hashes.
JA4_RE = re.compile(r"[tqd][0-9a-z]{2}[di][0-9]{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}")


class ClientTableError(SensorPluginsError):
    """A known-client table that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ClientTable:
    """ja4 -> the client names listed for it, and the source of the first listing."""

    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def label(self, ja4: str) -> str | None:
        """The names of ``ja4`` joined with `` / ``, or None for an unknown fingerprint."""
        found = self.names.get(ja4)
        return " / ".join(found) if found else None


def _printable(text: str) -> bool:
    return text.isprintable() and text == text.strip()


def parse_line(line: str, where: str) -> tuple[str, str, str] | None:
    """(ja4, name, source) of one table line, None for a blank or comment line."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    parts = line.split("\t")
    if len(parts) != 3:
        raise ClientTableError(f"{where}: expected 3 tab-separated fields (ja4, name, source), found {len(parts)}")
    ja4, name, source = parts
    if not JA4_RE.fullmatch(ja4):
        raise ClientTableError(f"{where}: not a JA4 fingerprint: {ja4[:60]!r}")
    if not name or len(name) > MAX_NAME or not _printable(name):
        raise ClientTableError(f"{where}: the name must be 1-{MAX_NAME} printable characters")
    if not source or len(source) > MAX_SOURCE or not _printable(source):
        raise ClientTableError(f"{where}: the source must be 1-{MAX_SOURCE} printable characters")
    return ja4, name, source


def parse_table(text: str, origin: str, into: ClientTable | None = None) -> ClientTable:
    """The table of ``text`` (read from ``origin``) added to ``into``."""
    names = {k: list(v) for k, v in (into.names if into else {}).items()}
    sources = dict(into.sources if into else {})
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = parse_line(line, f"{origin}:{lineno}")
        if entry is None:
            continue
        ja4, name, source = entry
        listed = names.setdefault(ja4, [])
        if name not in listed:
            listed.append(name)
        sources.setdefault(ja4, source)
    return ClientTable({k: tuple(v) for k, v in names.items()}, sources,
                       (*(into.files if into else ()), origin))


@lru_cache(maxsize=1)
def bundled_table() -> ClientTable:
    """The bundled table, read once per process (detections run once per batch or poll)."""
    text = (resources.files("sensor_plugins") / "data" / BUNDLED_NAME).read_text(encoding="utf-8")
    return parse_table(text, f"(bundled) {BUNDLED_NAME}")


def load_client_table(paths: Sequence[Path] | None = None) -> ClientTable:
    """The bundled table, extended by each of ``paths`` in order."""
    table = bundled_table()
    for path in paths or ():
        table = parse_table(read_text(Path(path), "known-client table", MAX_TABLE_BYTES, ClientTableError),
                            str(path), table)
    return table
