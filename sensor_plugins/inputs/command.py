"""`sensor-plugins feeds update --url URL --out FILE`: fetch a Tor list, validate it, write it atomically.

The only part of the suite that touches the network, and it is optional: every other
command reads local files, and the tests never call this.
"""

from __future__ import annotations

import argparse
import urllib.request
from pathlib import Path

from sensor_plugins.atomic import check_output_file, write_bytes_atomic
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.feeds import MAX_FEED_BYTES, parse_feed

ALLOWED_SCHEMES = ("https://", "http://", "file://")


def fetch(url: str, timeout: float = 60.0) -> bytes:
    if not url.startswith(ALLOWED_SCHEMES):
        raise SensorPluginsError(f"feeds update: unsupported URL scheme in {url[:80]!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(MAX_FEED_BYTES + 1)
    except OSError as exc:
        raise SensorPluginsError(f"feeds update: cannot fetch {url[:80]}: {exc}") from exc
    if len(data) > MAX_FEED_BYTES:
        raise SensorPluginsError(f"feeds update: {url[:80]} is larger than {MAX_FEED_BYTES} bytes")
    return data


def update(url: str, out: Path) -> str:
    """Fetch ``url`` into ``out`` only if it parses as a Tor list; returns a one-line summary."""
    check_output_file(out)
    data = fetch(url)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SensorPluginsError(f"feeds update: {url[:80]} is not UTF-8 text") from exc
    feed = parse_feed(text, out.name)
    if not feed.entries:
        raise SensorPluginsError(f"feeds update: {url[:80]} holds no addresses; {out} was left as it was")
    write_bytes_atomic(out, data)
    roles = sorted({e.role for e in feed.entries})
    return f"{out}: {len(feed.entries)} addresses ({', '.join(roles)}), {feed.format}, fetched {feed.fetched}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("feeds", help="manage Tor relay/exit lists")
    actions = parser.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    upd = actions.add_parser("update", help="download a Tor list and install it after validating it")
    upd.add_argument("--url", required=True, help="the list's URL (exit-addresses, plain list or Onionoo)")
    upd.add_argument("--out", type=Path, required=True, help="where to write the list")
    upd.set_defaults(func=run_update)


def run_update(args: argparse.Namespace) -> int:
    print(update(args.url, args.out))
    return 0
