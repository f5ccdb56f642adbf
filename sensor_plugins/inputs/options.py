"""The two inputs every command starts from, the catalogue and the Tor lists, as CLI options.

generate, analyze and report must agree on how a user names these files, so the options
and their defaults (the bundled catalogue and lists) are defined once, here.
"""

from __future__ import annotations

import argparse
import bisect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sensor_plugins.inputs.catalogue import Catalogue, load_catalogue
from sensor_plugins.inputs.feeds import FeedError, TorList, load_tor_list, parse_address
from sensor_plugins.inputs.limits import DEFAULT_MIN_PREFIX_V4, DEFAULT_MIN_PREFIX_V6, RangeLimits, check_catalogue

N = TypeVar("N", int, float)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalogue", type=Path, metavar="FILE",
                        help="range catalogue YAML (default: the bundled one)")
    parser.add_argument(
        "--tor-list", type=Path, action="append", dest="tor_lists", metavar="FILE",
        help="a Tor relay/exit list (exit-addresses, plain or Onionoo JSON); repeatable; "
             "default: the bundled lists",
    )
    parser.add_argument("--allow-empty", action="store_true",
                        help="accept a Tor list with no addresses (Tor detection is then off for it)")


def add_range_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The prefix floor every catalogued range is held to (see inputs/limits.py), per IP version."""
    parser.add_argument("--min-prefix-v4", type=prefix_length(32), default=DEFAULT_MIN_PREFIX_V4, metavar="LEN",
                        help="refuse an IPv4 range shorter than /LEN (default: "
                             f"{DEFAULT_MIN_PREFIX_V4}, at most 65,536 addresses)")
    parser.add_argument("--min-prefix-v6", type=prefix_length(128), default=DEFAULT_MIN_PREFIX_V6, metavar="LEN",
                        help=f"refuse an IPv6 range shorter than /LEN (default: {DEFAULT_MIN_PREFIX_V6})")


def range_limits(args: argparse.Namespace) -> RangeLimits:
    return RangeLimits(min_prefix_v4=args.min_prefix_v4, min_prefix_v6=args.min_prefix_v6)


def prefix_length(bits: int) -> Callable[[str], int]:
    """An argparse type for a prefix length of an IP version with ``bits`` bits (1 to ``bits``)."""
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not 1 <= int(text) <= bits:
            raise argparse.ArgumentTypeError(f"must be a prefix length from 1 to {bits}, got {text[:40]!r}")
        return int(text)

    return parse


def finite_float(text: str) -> float:
    """An argparse type for a number option: NaN and infinity are refused, not compared false forever."""
    value = _converted(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type for a duration or ratio: a finite number above zero."""
    return _above_zero(finite_float(text), text)


def positive_int(text: str) -> int:
    """An argparse type for a count or size limit: a whole number above zero."""
    return _above_zero(_converted(text, int, "a whole number"), text)


def _converted(text: str, convert: Callable[[str], N], what: str) -> N:
    try:
        return convert(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not {what}: {text[:40]!r}") from exc


def _above_zero(value: N, text: str) -> N:
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero, got {text[:40]!r}")
    return value


def load_from_paths(
    catalogue: Path | None, tor_lists: Sequence[Path] | None, allow_empty: bool = False,
    limits: RangeLimits | None = None,
) -> tuple[Catalogue, TorList]:
    """The catalogue and the merged Tor lists; the bundled ones for what is not given.

    With ``limits``, the catalogue's ranges are held to them (see inputs/limits.py) before
    any Tor list is read, so an implausible range is named as such.
    """
    loaded = load_catalogue(catalogue)
    if limits is not None:
        check_catalogue(loaded, limits)
    tor = load_tor_list(tor_lists or None, allow_empty)
    check_tor_outside_catalogue(loaded, tor)
    return loaded, tor


def check_tor_outside_catalogue(catalogue: Catalogue, tor: TorList) -> None:
    """Refuse a Tor address inside a catalogued range: one flow cannot be both, and a list that
    claims so has been tampered with or mixed up, and would hide NK traffic as Tor."""
    outer = outermost_spans(catalogue)
    starts = {v: [s[0] for s in outer[v]] for v in outer}
    for address, entry in tor.entries.items():
        if not starts[6 if ":" in address else 4]:
            continue
        parsed = parse_address(address)
        if parsed is None:
            continue
        _, version, value = parsed
        i = bisect.bisect_right(starts[version], value) - 1
        if i >= 0 and value <= outer[version][i][1]:
            name = outer[version][i][2]
            raise FeedError(f"{entry.origin or entry.feed}: {address} is in the catalogue's range "
                            f"{name} ({catalogue.path}); a Tor list must not hold catalogued addresses")


def outermost_spans(catalogue: Catalogue) -> dict[int, list[tuple[int, int, str]]]:
    """Per IP version, the (first, last, name) of ranges not inside another, in address order.

    Catalogued ranges only ever nest (the loader refuses partial overlaps), so these are
    disjoint and one bisect finds the range holding an address.
    """
    spans: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
    ordered = sorted(catalogue.ranges, key=lambda r: (r.cidr.version, int(r.cidr.network_address),
                                                      r.cidr.prefixlen))
    for r in ordered:
        first, last = int(r.cidr.network_address), int(r.cidr.broadcast_address)
        out = spans[r.cidr.version]
        if not out or first > out[-1][1]:
            out.append((first, last, r.name))
    return spans


def input_files(args: argparse.Namespace) -> list[Path]:
    """The catalogue and Tor list files a command was given (for refusing them as outputs)."""
    return [p for p in [getattr(args, "catalogue", None), *(getattr(args, "tor_lists", None) or [])] if p]


def load_inputs(args: argparse.Namespace) -> tuple[Catalogue, TorList]:
    """The catalogue and merged Tor list named by ``add_input_arguments``'s options."""
    return load_from_paths(args.catalogue, args.tor_lists, getattr(args, "allow_empty", False))
