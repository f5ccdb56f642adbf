"""Any bytes into the catalogue loader and the Tor list parsers: a value or a clean one-line error.

"Clean" means the suite's own error type, whose message names the file; any other
exception (a KeyError, a ValueError from a date, a RecursionError from YAML) would reach
the user as a traceback.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_plugins.inputs.catalogue import Catalogue, CatalogueError, load_catalogue
from sensor_plugins.inputs.feeds import FeedError, TorFeed, load_feed, parse_feed

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces a catalogue is made of, so that the fuzzer reaches past the YAML parser into the
# checks of ranges, dates, keys and sid blocks.
YAML_PIECES = st.sampled_from([
    "version: 1\n", "ranges:\n", "  - name: kp\n", "    cidr: 175.45.176.0/22\n", "    cidr: 10.0.0.0/8\n",
    "    country: KP\n", "    owner: o\n", "    source: s\n", "    confidence: high\n",
    "    first_seen: 2017-02-30\n",
    "    last_seen: 2017-04-01\n", "    asn: AS131279\n", "    allow_overlap: true\n",
    "sid_block: [1650000, 1659999]\n",
    "sid_block: [1, 2]\n", "description: d\n", "  - {name: x, cidr: '::/0'}\n", "&a ", "*a\n",
    "!!python/object:os.system\n",
    "? [a, b]\n", ": c\n", "- \n", "\t", "'", '"', "\\u202e", "\x00", "2017-13-40", "~\n", "{", "}", "[", "]",
])
FEED_PIECES = st.sampled_from([
    "# role: exit\n", "# role: relay\n", "# fetched: 2024-02-27\n", "# fetched: 2024-02-30\n", "# source: x\n",
    "185.220.101.1\n", "10.0.0.1\n", "::1\n", "2001:db8::1\n", "255.255.255.255\n", "1.2.3.4 # c\n", "not-an-ip\n",
    "ExitNode " + "A" * 40 + "\n", "Published 2024-02-27 00:00:00\n", "LastStatus 2024-02-27 01:00:00\n",
    "ExitAddress 185.220.101.2 2024-02-27 00:00:00\n", "ExitAddress 127.0.0.1 2024-02-31 00:00:00\n",
    '{"relays_published": "2024-02-27 00:00:00", "relays": [', '{"or_addresses": ["[::1]:9001"]}', "]}",
    '{"flags": ["Exit"], "nickname": "r1", "first_seen": "2024-13-01"}', ",", "\x00", "\ufeff",
])


def _write(data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".yaml")  # noqa: SIM115
    handle.write(data)
    handle.close()
    return Path(handle.name)


def _load(data: bytes, loader: Callable[[Path], object], value: type, error: type[Exception]) -> None:
    """``loader`` on a file of ``data`` gives a ``value`` or an ``error`` of one line naming the file."""
    path = _write(data)
    try:
        assert isinstance(loader(path), value)
    except error as exc:
        assert "\n" not in str(exc) and path.name in str(exc)
    finally:
        path.unlink()


def _load_catalogue(data: bytes) -> None:
    _load(data, load_catalogue, Catalogue, CatalogueError)


def _load_feed(data: bytes) -> None:
    _load(data, lambda p: load_feed(p, allow_empty=True), TorFeed, FeedError)


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_catalogue(data: bytes) -> None:
    _load_catalogue(data)


@SETTINGS
@given(st.lists(YAML_PIECES, max_size=40).map("".join))
def test_any_catalogue_shaped_text(text: str) -> None:
    _load_catalogue(text.encode("utf-8"))


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_tor_list(data: bytes) -> None:
    _load_feed(data)


@SETTINGS
@given(st.lists(FEED_PIECES, max_size=40).map("".join))
def test_any_tor_list_shaped_text(text: str) -> None:
    _load_feed(text.encode("utf-8"))
    try:
        parse_feed(text, "fuzz.lst", dt.date(2024, 2, 27))
    except FeedError as exc:
        assert "\n" not in str(exc)
