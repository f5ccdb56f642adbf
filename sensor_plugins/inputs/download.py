"""Downloading a feed whole or not at all.

A connection cut part-way still hands ``read()`` a short body without an error, and a
mirror trickling one byte at a time never trips a per-read timeout. A list installed
from either would silently switch off detection for most of its addresses, so:

- the body must be exactly as long as the announced ``Content-Length``;
- a chunked body must end with its last (zero-length) chunk;
- the whole download must finish within a deadline, beside the per-read timeout.

Any of these failing is one error naming the URL, and the caller installs nothing.
"""

from __future__ import annotations

import http.client
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from sensor_plugins.errors import SensorPluginsError

ALLOWED_SCHEMES = ("https://", "http://", "file://")
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class DownloadLimits:
    """How long and how large a download may be."""

    max_bytes: int
    timeout: float = 60.0  # seconds one read may wait for data
    deadline: float = 600.0  # seconds the whole download may take


def shown(url: str) -> str:
    """The URL as errors quote it: bounded, so a hostile one cannot flood a terminal."""
    return url[:80]


def fetch(url: str, limits: DownloadLimits, what: str = "feeds update") -> bytes:
    """The complete body at ``url``; SensorPluginsError when it is cut, too slow, or too large."""
    if not url.startswith(ALLOWED_SCHEMES):
        raise SensorPluginsError(f"{what}: unsupported URL scheme in {shown(url)!r}")
    due = time.monotonic() + limits.deadline
    try:
        with urllib.request.urlopen(url, timeout=limits.timeout) as response:
            announced = announced_length(response, url, what)
            if announced is not None and announced > limits.max_bytes:
                raise SensorPluginsError(f"{what}: {shown(url)} announces {announced} bytes, more than "
                                         f"{limits.max_bytes}")
            data = read_body(response, url, limits, due, what)
    except http.client.IncompleteRead as exc:
        # A chunked body whose connection closed before the last chunk.
        raise SensorPluginsError(f"{what}: {shown(url)}: the download was cut short after "
                                 f"{len(exc.partial)} bytes of a chunk (incomplete chunked body)") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SensorPluginsError(f"{what}: cannot fetch {shown(url)}: {reason[:200]}") from exc
    if announced is not None and len(data) != announced:
        raise SensorPluginsError(f"{what}: {shown(url)}: the download was cut short: {len(data)} of the "
                                 f"{announced} bytes its Content-Length announces")
    return data


def announced_length(response: Any, url: str, what: str) -> int | None:
    """The Content-Length the server announced, or None (chunked or not said)."""
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise SensorPluginsError(f"{what}: {shown(url)}: Content-Length is not a number: {value[:40]!r}")
    return int(value)


def read_body(response: Any, url: str, limits: DownloadLimits, due: float, what: str) -> bytes:
    """Read with ``read1`` (one receive each), so the deadline is checked however slowly data comes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > due:
            raise SensorPluginsError(f"{what}: {shown(url)}: the download did not finish within "
                                     f"{limits.deadline:g} s ({size} bytes so far); is the mirror stalling?")
        chunk = response.read1(READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limits.max_bytes:
            raise SensorPluginsError(f"{what}: {shown(url)} is larger than {limits.max_bytes} bytes")
        chunks.append(chunk)
