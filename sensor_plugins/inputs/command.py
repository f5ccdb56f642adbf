"""The input commands.

`sensor-plugins feeds update --url URL --out FILE`: fetch a Tor list, validate it, write
it atomically. The only part of the suite that touches the network, and it is optional:
every other command reads local files, and the tests never call it.

`sensor-plugins catalogue update|show|lookup`: keep the range catalogue current from
RIR delegation files, pfx2as tables and a GeoIP database (local files the operator
mirrors), and show what it holds and why.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from sensor_plugins.atomic import check_output_file, write_bytes_atomic
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import (
    ASN_RE,
    COUNTRY_RE,
    MAX_FILE_BYTES,
    Catalogue,
    CatalogueError,
    Range,
    default_catalogue_path,
    load_catalogue,
    parse_catalogue,
)
from sensor_plugins.inputs.download import DownloadLimits, fetch
from sensor_plugins.inputs.feeds import MAX_FEED_BYTES, parse_feed
from sensor_plugins.inputs.limits import DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_CHANGES, ChangeLimits
from sensor_plugins.inputs.options import add_range_limit_arguments, positive_float, positive_int, range_limits
from sensor_plugins.inputs.textfile import read_text


def update(url: str, out: Path, timeout: float = 60.0, deadline: float = 600.0) -> str:
    """Fetch ``url`` into ``out`` only if it arrived whole and parses as a Tor list; returns a one-line summary."""
    check_output_file(out)
    data = fetch(url, DownloadLimits(MAX_FEED_BYTES, timeout=timeout, deadline=deadline))
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
    register_feeds(subparsers)
    register_catalogue(subparsers)


def register_feeds(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("feeds", help="manage Tor relay/exit lists")
    actions = parser.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    upd = actions.add_parser("update", help="download a Tor list and install it after validating it")
    upd.add_argument("--url", required=True, help="the list's URL (exit-addresses, plain list or Onionoo)")
    upd.add_argument("--out", type=Path, required=True, help="where to write the list")
    upd.add_argument("--timeout", type=positive_float, default=60.0, metavar="SECONDS",
                     help="how long one read may wait for data (default: 60)")
    upd.add_argument("--deadline", type=positive_float, default=600.0, metavar="SECONDS",
                     help="how long the whole download may take; a mirror that trickles is cut off (default: 600)")
    upd.set_defaults(func=run_update)


def run_update(args: argparse.Namespace) -> int:
    print(update(args.url, args.out, args.timeout, args.deadline))
    return 0


# -- catalogue ------------------------------------------------------------------------


def register_catalogue(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("catalogue", help="keep the range catalogue current; show and look up ranges")
    actions = parser.add_subparsers(dest="catalogue_command", required=True, metavar="ACTION")
    upd = actions.add_parser(
        "update", help="compare the catalogue with RIR, pfx2as and GeoIP data; print or apply the diff",
        description="Exit codes: 0 nothing to change (or --write applied the diff), 1 --check found a diff, "
                    "2 error (nothing written).",
    )
    upd.add_argument("--catalogue", type=Path, metavar="FILE", help="the catalogue (default: the bundled one; "
                     "--write needs an explicit file)")
    upd.add_argument("--delegated", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                     help="RIR delegated or delegated-extended statistics files (plain or .gz)")
    upd.add_argument("--pfx2as", type=Path, metavar="FILE",
                     help="a RouteViews pfx2as table named as published (routeviews-rv2-YYYYMMDD-HHMM.pfx2as[.gz])")
    upd.add_argument("--asn", nargs="+", action="extend", default=[], metavar="ASN",
                     help="origin ASes whose announcements count, e.g. AS131279 (needed with --pfx2as)")
    upd.add_argument("--country", default="KP", help="ISO 3166 country code (default: KP)")
    upd.add_argument("--geoip", type=Path, metavar="FILE.mmdb", help="a GeoIP2/GeoLite2 country database")
    add_range_limit_arguments(upd)
    upd.add_argument("--max-changes", type=positive_int, default=DEFAULT_MAX_CHANGES, metavar="N",
                     help="a diff adding or retiring more than N ranges is large (default: "
                          f"{DEFAULT_MAX_CHANGES})")
    upd.add_argument("--max-addresses", type=positive_int, default=DEFAULT_MAX_ADDRESSES, metavar="N",
                     help="a diff adding, or retiring, more than N IPv4 addresses (IPv6: /64s) is large "
                          f"(default: {DEFAULT_MAX_ADDRESSES})")
    upd.add_argument("--accept-large", action="store_true",
                     help="let --write apply a large diff (without it, a large diff is refused)")
    mode = upd.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="print the diff; exit 1 when there is one")
    mode.add_argument("--write", action="store_true", help="apply the diff to the catalogue file atomically")
    upd.set_defaults(func=run_catalogue_update)
    show = actions.add_parser("show", help="a table of the ranges and their provenance")
    show.add_argument("--catalogue", type=Path, metavar="FILE", help="the catalogue (default: the bundled one)")
    show.set_defaults(func=run_catalogue_show)
    look = actions.add_parser("lookup", help="the range each address falls in, and why it is there")
    look.add_argument("--catalogue", type=Path, metavar="FILE", help="the catalogue (default: the bundled one)")
    look.add_argument("addresses", nargs="+", metavar="ADDR")
    look.set_defaults(func=run_catalogue_lookup)


def parse_asns(values: Sequence[str]) -> frozenset[int]:
    asns = set()
    for value in values:
        match = ASN_RE.fullmatch(value.strip().upper())
        if not match or int(match.group(1)) > 4_294_967_295:
            raise SensorPluginsError(f"catalogue update: --asn must be an AS number like AS131279, got {value!r}")
        asns.add(int(match.group(1)))
    return frozenset(asns)


def load_sources(args: argparse.Namespace):  # -> update.Sources, imported lazily with the parsers
    from sensor_plugins.inputs.registry import load_delegated, load_geoip_networks, load_pfx2as
    from sensor_plugins.inputs.update import Sources

    if not COUNTRY_RE.fullmatch(args.country):
        raise SensorPluginsError(f"catalogue update: --country must be an ISO 3166 code like KP, got {args.country!r}")
    asns = parse_asns(args.asn)
    if args.pfx2as and not asns:
        raise SensorPluginsError("catalogue update: --pfx2as needs --asn: the origin ASes whose announcements count")
    if asns and not args.pfx2as:
        raise SensorPluginsError("catalogue update: --asn only applies to a --pfx2as table; give one")
    if not (args.delegated or args.pfx2as or args.geoip):
        raise SensorPluginsError("catalogue update: give at least one source: --delegated, --pfx2as or --geoip")
    return Sources(
        country=args.country,
        asns=asns,
        delegated=tuple(load_delegated(p, args.country) for p in args.delegated),
        pfx2as=load_pfx2as(args.pfx2as) if args.pfx2as else None,
        geoip=load_geoip_networks(args.geoip, args.country) if args.geoip else None,
    )


def source_warnings(sources) -> list[str]:
    """Sources that say nothing about the country: said aloud, since they retire ranges."""
    empty = [f.path for f in sources.delegated if not f.for_country(sources.country)]
    if sources.pfx2as and not sources.pfx2as.listed(sources.asns):
        empty.append(sources.pfx2as.path)
    if sources.geoip and not sources.geoip.networks:
        empty.append(sources.geoip.path)
    return [f"warning: {path} holds nothing for {sources.country}" for path in empty]


def run_catalogue_update(args: argparse.Namespace) -> int:
    from sensor_plugins.inputs.catalogue_write import catalogue_lock, write_catalogue
    from sensor_plugins.inputs.source_checks import check_sources, large_change
    from sensor_plugins.inputs.update import diff, format_diff

    if args.write and args.catalogue is None:
        raise SensorPluginsError("catalogue update: --write needs --catalogue FILE; the bundled catalogue is "
                                 "part of the installed package")
    path = args.catalogue or default_catalogue_path()
    if args.write and not path.resolve().is_file():
        raise SensorPluginsError(f"{path}: --write needs a regular catalogue file")
    sources = load_sources(args)
    check_sources(sources, range_limits(args))
    # The lock spans reading and replacing, so two updates never interleave.
    lock = catalogue_lock(path.resolve()) if args.write else contextlib.nullcontext()
    with lock:
        original = read_text(path, "catalogue", MAX_FILE_BYTES, CatalogueError)
        catalogue = parse_catalogue(original, str(path))
        result = diff(catalogue, sources)
        for warning in source_warnings(sources):
            print(warning, file=sys.stderr)
        print("\n".join(format_diff(result, sources)))
        large = large_change(result, ChangeLimits(args.max_changes, args.max_addresses))
        if large and args.write and not args.accept_large:
            raise SensorPluginsError(f"{path}: a large change was held: {large}; check the sources, then run "
                                     "again with --accept-large to apply it; nothing was written")
        if large:
            print(f"warning: large change: {large}", file=sys.stderr)
        if args.check:
            return 1 if result else 0
        if result:
            written = write_catalogue(path.resolve(), original, result.changes)
            print(f"wrote {path}: {len(result.changes)} changes, {len(written.ranges)} ranges")
    return 0


def status(r: Range) -> str:
    return f"historical since {r.last_seen}" if r.historical else "current"


def provenance(r: Range) -> str:
    from sensor_plugins.inputs.update import managed

    # A managed entry's source already starts with "catalogue update:".
    return r.source if managed(r) else f"manual: {r.source}"


def show_table(catalogue: Catalogue) -> list[str]:
    header = ("NAME", "CIDR", "CC", "CONFIDENCE", "ASN", "FIRST_SEEN", "STATUS", "PROVENANCE")
    rows = [
        (r.name, str(r.cidr), r.country, r.confidence, f"AS{r.asn}" if r.asn else "-",
         str(r.first_seen or "-"), status(r), provenance(r))
        for r in catalogue.ranges
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
            for row in [header, *rows]]


def lookup_lines(catalogue: Catalogue, addresses: Sequence[str]) -> list[str]:
    lines = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError as exc:
            raise SensorPluginsError(f"catalogue lookup: not an IP address: {address[:60]!r}") from exc
        hits = sorted((r for r in catalogue.ranges if r.cidr.version == ip.version and ip in r.cidr),
                      key=lambda r: -r.cidr.prefixlen)
        if not hits:
            lines.append(f"{ip}: not in any catalogued range")
        for i, r in enumerate(hits):
            lead = f"{ip}: in" if i == 0 else f"{' ' * len(str(ip))}  also in"
            lines.append(f"{lead} {r.name} {r.cidr} ({r.country}, {r.confidence} confidence, {status(r)}); "
                         f"why: {provenance(r)}")
    return lines


def run_catalogue_show(args: argparse.Namespace) -> int:
    print("\n".join(show_table(load_catalogue(args.catalogue))))
    return 0


def run_catalogue_lookup(args: argparse.Namespace) -> int:
    print("\n".join(lookup_lines(load_catalogue(args.catalogue), args.addresses)))
    return 0
