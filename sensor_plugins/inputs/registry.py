"""Readers for the public data that says where a country's networks are.

Three published formats, each read strictly (a bad line is an error naming the file and
line, never skipped):

- the RIRs' delegation statistics, the "RIR statistics exchange format" that all five
  RIRs publish (``delegated-<rir>-[extended-]YYYYMMDD``): a version line, summary lines
  and ``registry|cc|type|start|value|date|status[|opaque-id[|extensions]]`` records. An
  IPv4 ``value`` is an address count, not always a power of two, so it becomes one or
  more CIDRs; an IPv6 ``value`` is a prefix length.
- CAIDA's RouteViews prefix-to-AS tables (``routeviews-rv2-YYYYMMDD-HHMM.pfx2as[.gz]``):
  ``prefix<TAB>length<TAB>origin``, where the origin is ``64500``, ``64500_64501`` for a
  prefix announced by several origins, or ``64500,64501`` for an AS set.
- a MaxMind-format GeoIP2/GeoLite2 country database (``.mmdb``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import gzip
import io
import ipaddress
import re
import socket
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import COUNTRY_RE, Network

# A whole RIR's extended file is ~15-40 MB and a pfx2as table ~20 MB; this leaves room
# for the NRO's combined file while refusing anything that would exhaust memory.
MAX_SOURCE_BYTES = 256 * 1024 * 1024
# Only these statuses mean "someone holds it"; available and reserved space is nobody's.
HELD_STATUSES = ("allocated", "assigned")
STATUSES = (*HELD_STATUSES, "available", "reserved")
RECORD_TYPES = ("asn", "ipv4", "ipv6")
VERSION_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
REGISTRY_RE = re.compile(r"[a-z][a-z0-9]{1,15}")
DATE8_RE = re.compile(r"[0-9]{8}")
# Opaque holder ids: APNIC "A91A4A2E", ARIN/RIPE hex or UUID-like strings. They end up
# in catalogue text, so anything outside this alphabet is refused.
HOLDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}")
ORIGIN_RE = re.compile(r"[0-9]{1,10}(?:[_,][0-9]{1,10})*")
FILE_DATE_RE = re.compile(r"(?<![0-9])((?:19|20)[0-9]{6})(?![0-9])")


class RegistryError(SensorPluginsError):
    """A registry, routing or GeoIP source that cannot be used; names the file and line."""


@dataclass(frozen=True)
class Delegation:
    """One held IPv4/IPv6 block of a delegated file, as one CIDR."""

    registry: str
    country: str
    cidr: Network
    status: str
    date: dt.date | None
    holder: str
    where: str


@dataclass(frozen=True)
class DelegatedFile:
    path: str
    registry: str
    date: dt.date
    records: tuple[Delegation, ...]

    def for_country(self, country: str) -> tuple[Delegation, ...]:
        return tuple(r for r in self.records if r.country == country)


@dataclass(frozen=True)
class Announcement:
    """One pfx2as row: a prefix and its origin field as published (``_`` multi-origin, ``,`` AS set)."""

    cidr: Network
    origin: str

    @property
    def origins(self) -> frozenset[int]:
        """Every AS that originates the prefix, counting each member of an AS set."""
        return origin_ases(self.origin)

    @property
    def label(self) -> str:
        return "_".join(
            "{" + ",".join(f"AS{a}" for a in part.split(",")) + "}" if "," in part else f"AS{part}"
            for part in self.origin.split("_")
        )


def origin_ases(origin: str) -> frozenset[int]:
    return frozenset(int(a) for a in re.split(r"[_,]", origin))


# A pfx2as row is packed into one integer, start << 32 | length << 24 | origin index, and
# the rows of each family are kept sorted. A 1M-row table then costs tens of MB instead
# of a network object a row, and the rows overlapping a range are found by bisection.
START_SHIFT, LENGTH_SHIFT, ORIGIN_MASK = 32, 24, (1 << 24) - 1


@dataclass(frozen=True)
class Pfx2asFile:
    path: str
    date: dt.date
    rows: int
    origins: tuple[str, ...]
    keys: dict[int, Sequence[int]]

    @classmethod
    def of(cls, path: str, date: dt.date, rows: Iterable[tuple[Network, str]]) -> Pfx2asFile:
        ids: dict[str, int] = {}
        keys: dict[int, list[int]] = {4: [], 6: []}
        for net, origin in rows:
            oid = ids.setdefault(origin, len(ids))
            keys[net.version].append(_pack(int(net.network_address), net.prefixlen, oid))
        return cls._sorted(path, date, keys, ids)

    @classmethod
    def _sorted(cls, path: str, date: dt.date, keys: dict[int, list[int]], ids: dict[str, int]) -> Pfx2asFile:
        for rows in keys.values():
            rows.sort()
        packed: dict[int, Sequence[int]] = {4: array("Q", keys[4]), 6: keys[6]}
        return cls(path=path, date=date, rows=len(keys[4]) + len(keys[6]), origins=tuple(ids), keys=packed)

    def _row(self, version: int, key: int) -> Announcement:
        factory = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        net = factory((key >> START_SHIFT, (key >> LENGTH_SHIFT) & 0xFF))
        return Announcement(cidr=net, origin=self.origins[key & ORIGIN_MASK])

    def announcements(self) -> list[Announcement]:
        """Every row, in address order."""
        return [self._row(v, k) for v in (4, 6) for k in self.keys[v]]

    def listed(self, asns: frozenset[int]) -> list[Announcement]:
        """The rows that a listed AS originates (alone, among several origins or in an AS set)."""
        ids = {i for i, origin in enumerate(self.origins)
               if (int(origin) in asns if origin.isdigit() else origin_ases(origin) & asns)}
        return [self._row(v, k) for v in (4, 6) for k in self.keys[v] if k & ORIGIN_MASK in ids]

    def overlapping(self, net: Network) -> list[Announcement]:
        """The rows whose prefix holds ``net`` or lies inside it."""
        keys, bits = self.keys[net.version], net.max_prefixlen
        first, last = int(net.network_address), int(net.broadcast_address)
        found = list(self._between(keys, first << START_SHIFT, (last << START_SHIFT) | ((1 << START_SHIFT) - 1)))
        for length in range(net.prefixlen):
            start = first & ~((1 << (bits - length)) - 1)
            if start != first:  # a supernet starting at ``first`` is already in the range above
                low = _pack(start, length, 0)
                found += self._between(keys, low, low | ORIGIN_MASK)
        return [self._row(net.version, k) for k in found]

    @staticmethod
    def _between(keys: Sequence[int], low: int, high: int) -> Sequence[int]:
        return keys[bisect.bisect_left(keys, low):bisect.bisect_right(keys, high)]


def _pack(start: int, length: int, origin_id: int) -> int:
    return start << START_SHIFT | length << LENGTH_SHIFT | origin_id


@dataclass(frozen=True)
class GeoipNetworks:
    path: str
    date: dt.date
    country: str
    networks: tuple[Network, ...]


# -- reading ------------------------------------------------------------------------


def read_source(path: Path, what: str) -> str:
    """The text of a source file, gunzipped when it is gzip, bounded in size."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            stream: Any = gzip.GzipFile(fileobj=handle) if head == b"\x1f\x8b" else handle
            raw = stream.read(MAX_SOURCE_BYTES + 1)
    except (OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise RegistryError(f"{path}: cannot read {what}: {reason}") from exc
    if len(raw) > MAX_SOURCE_BYTES:
        raise RegistryError(f"{path}: {what} is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: {what} is not ASCII text at byte {exc.start}") from exc


def date8(value: str, label: str) -> dt.date:
    if not DATE8_RE.fullmatch(value):
        raise RegistryError(f"{label}: must be a date YYYYMMDD, got {value[:20]!r}")
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise RegistryError(f"{label}: not a calendar date: {value!r}") from exc


def date_in_name(path: Path, what: str) -> dt.date:
    """The YYYYMMDD date in a published file's name (``routeviews-rv2-20261130-1200.pfx2as.gz``).

    A mirror's ``-latest`` link has no date in its own name; the file it points at does.
    """
    found = FILE_DATE_RE.findall(path.name) or FILE_DATE_RE.findall(path.resolve().name)
    if len(found) != 1:
        raise RegistryError(
            f"{path}: cannot tell the date of this {what}: its name must hold one YYYYMMDD date "
            "as published (e.g. routeviews-rv2-20261130-1200.pfx2as.gz)"
        )
    return date8(found[0], f"{path}: date in the file name")


# -- delegated files ----------------------------------------------------------------


def count_to_cidrs(start: ipaddress.IPv4Address, count: int) -> list[ipaddress.IPv4Network]:
    """The fewest CIDRs that cover exactly ``count`` addresses from ``start``.

    RIRs delegate IPv4 space in address counts (e.g. 768 = a /23 and a /24), which
    need not be a power of two nor aligned to one.
    """
    if count < 1:
        raise ValueError(f"address count must be positive, got {count}")
    first = int(start)
    last = first + count - 1
    if last > 0xFFFFFFFF:
        raise ValueError(f"{start} + {count} addresses runs past 255.255.255.255")
    cidrs = []
    while first <= last:
        # The largest block that starts here (its alignment) and still fits before ``last``.
        aligned = (first & -first).bit_length() - 1 if first else 32
        bits = min(aligned, (last - first + 1).bit_length() - 1)
        cidrs.append(ipaddress.IPv4Network((first, 32 - bits)))
        first += 1 << bits
    return cidrs


def parse_delegated(text: str, where: str, country: str | None = None) -> DelegatedFile:
    """A delegated (or delegated-extended) file; held IPv4/IPv6 records (of ``country`` if given) are returned.

    Every line is checked either way; only the kept records become networks, which is
    most of the cost on a whole RIR's file.
    """
    header: list[str] | None = None
    summaries: dict[str, int] = {}
    counted = dict.fromkeys(RECORD_TYPES, 0)
    records: list[Delegation] = []
    for number, line in enumerate(io.StringIO(text), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label = f"{where}: line {number}"
        fields = line.split("|")
        if header is None:
            header = _version_line(fields, label)
            continue
        if len(fields) == 6 and fields[5] == "summary":
            _summary_line(fields, label, summaries)
            continue
        counted[_record_line(fields, label, records, country)] += 1
    if header is None:
        raise RegistryError(f"{where}: empty delegated file: no version line")
    _check_counts(header, summaries, counted, where)
    return DelegatedFile(path=where, registry=header[1], date=_header_date(header, where), records=tuple(records))


def _version_line(fields: list[str], label: str) -> list[str]:
    if len(fields) != 7 or not VERSION_RE.fullmatch(fields[0]):
        raise RegistryError(
            f"{label}: expected the version line version|registry|serial|records|startdate|enddate|UTCoffset"
        )
    if not REGISTRY_RE.fullmatch(fields[1]):
        raise RegistryError(f"{label}: invalid registry name {fields[1][:20]!r}")
    if not fields[3].isdigit():
        raise RegistryError(f"{label}: the record count must be a number, got {fields[3][:20]!r}")
    date8(fields[5], f"{label}: enddate")
    return fields


def _header_date(header: list[str], where: str) -> dt.date:
    # The end date of the period the file covers is the date of its facts.
    return date8(header[5], f"{where}: version line: enddate")


def _summary_line(fields: list[str], label: str, summaries: dict[str, int]) -> None:
    _registry, star, rtype, star2, count, _ = fields
    if star != "*" or star2 != "*" or rtype not in RECORD_TYPES or not count.isdigit():
        raise RegistryError(f"{label}: expected a summary line registry|*|type|*|count|summary")
    if rtype in summaries:
        raise RegistryError(f"{label}: second summary line for {rtype}")
    summaries[rtype] = int(count)


def _record_line(fields: list[str], label: str, out: list[Delegation], country: str | None) -> str:
    """Check one record, keep it in ``out`` when it is a held IP block; returns its type."""
    if len(fields) < 7:
        raise RegistryError(
            f"{label}: expected a record registry|cc|type|start|value|date|status[|opaque-id], "
            f"got {len(fields)} fields"
        )
    registry, cc, rtype, start, value, date, status = fields[:7]
    holder = fields[7] if len(fields) > 7 else ""
    if not REGISTRY_RE.fullmatch(registry):
        raise RegistryError(f"{label}: invalid registry name {registry[:20]!r}")
    if rtype not in RECORD_TYPES:
        raise RegistryError(f"{label}: type must be one of {', '.join(RECORD_TYPES)}, got {rtype[:20]!r}")
    if status not in STATUSES:
        raise RegistryError(f"{label}: status must be one of {', '.join(STATUSES)}, got {status[:20]!r}")
    held = status in HELD_STATUSES
    # Extended files list free space with an empty or ZZ country and no date.
    if (held or cc) and not COUNTRY_RE.fullmatch(cc):
        raise RegistryError(f"{label}: country must be an ISO 3166 code like KP, got {cc[:20]!r}")
    if holder and not HOLDER_RE.fullmatch(holder):
        raise RegistryError(f"{label}: invalid opaque holder id {holder[:40]!r}")
    when = date8(date, f"{label}: date") if held or date.strip("0") else None
    if not value.isdigit():
        raise RegistryError(f"{label}: value must be a number, got {value[:20]!r}")
    if rtype == "asn":
        if not start.isdigit() or int(start) + int(value) - 1 > 4_294_967_295 or int(value) < 1:
            raise RegistryError(f"{label}: invalid AS number block {start[:20]!r} + {value}")
        return rtype
    if not held or (country is not None and cc != country):
        _check_block(rtype, start, int(value), label)
        return rtype
    cidrs = _ipv4_cidrs(start, int(value), label) if rtype == "ipv4" else [_ipv6_cidr(start, int(value), label)]
    out.extend(Delegation(registry, cc, cidr, status, when, holder, label) for cidr in cidrs)
    return rtype


def _check_block(rtype: str, start: str, value: int, label: str) -> None:
    """The checks of _ipv4_cidrs and _ipv6_cidr, without building networks."""
    family, bits = (socket.AF_INET, 32) if rtype == "ipv4" else (socket.AF_INET6, 128)
    try:
        first = int.from_bytes(socket.inet_pton(family, start), "big")
    except OSError:
        first = -1
    if rtype == "ipv4":
        if first < 0 or value < 1 or first + value - 1 > 0xFFFFFFFF:
            _ipv4_cidrs(start, value, label)  # raises the precise error
    elif first < 0 or value > bits or first & ((1 << (bits - value)) - 1):
        _ipv6_cidr(start, value, label)


def _ipv4_cidrs(start: str, count: int, label: str) -> list[ipaddress.IPv4Network]:
    try:
        return count_to_cidrs(ipaddress.IPv4Address(start), count)
    except ValueError as exc:
        raise RegistryError(f"{label}: invalid IPv4 block {start[:40]!r} + {count}: {exc}") from exc


def _ipv6_cidr(start: str, length: int, label: str) -> ipaddress.IPv6Network:
    try:
        return ipaddress.IPv6Network(f"{start}/{length}", strict=True)
    except ValueError as exc:
        raise RegistryError(f"{label}: invalid IPv6 block {start[:40]!r}/{length}: {exc}") from exc


def _check_counts(header: list[str], summaries: dict[str, int], counted: dict[str, int], where: str) -> None:
    # A download cut short still parses line by line; the counts the file announces
    # are how a truncated or partial file is caught instead of read as withdrawals.
    for rtype, expected in summaries.items():
        if counted[rtype] != expected:
            raise RegistryError(
                f"{where}: the summary line announces {expected} {rtype} records but the file holds "
                f"{counted[rtype]} (truncated or edited?)"
            )
    total = sum(counted.values())
    if int(header[3]) != total:
        raise RegistryError(
            f"{where}: the version line announces {header[3]} records but the file holds {total} "
            "(truncated or edited?)"
        )


def load_delegated(path: Path | str, country: str | None = None) -> DelegatedFile:
    path = Path(path)
    return parse_delegated(read_source(path, "delegated file"), str(path), country)


# -- pfx2as -------------------------------------------------------------------------


def parse_pfx2as(text: str, where: str, date: dt.date) -> Pfx2asFile:
    """Every row of a pfx2as table, checked, packed and sorted."""
    ids: dict[str, int] = {}
    keys: dict[int, list[int]] = {4: [], 6: []}
    for number, line in enumerate(io.StringIO(text), 1):
        if not line.strip():
            continue
        version, start, length, origin = _pfx2as_row(line, where, number)
        oid = ids.get(origin)
        if oid is None:
            _check_origin(origin, where, number)
            oid = ids[origin] = len(ids)
        keys[version].append(_pack(start, length, oid))
    if not keys[4] and not keys[6]:
        raise RegistryError(f"{where}: empty pfx2as table")
    return Pfx2asFile._sorted(where, date, keys, ids)


def _check_origin(origin: str, where: str, number: int) -> None:
    too_big = len(origin) >= 10 and any(a > 4_294_967_295 for a in origin_ases(origin))
    if not ORIGIN_RE.fullmatch(origin) or too_big:
        raise RegistryError(f"{where}: line {number}: origin must be AS numbers joined by _ or , got {origin[:40]!r}")


def _pfx2as_row(line: str, where: str, number: int) -> tuple[int, int, int, str]:
    fields = line.split()
    if len(fields) != 3:
        raise RegistryError(
            f"{where}: line {number}: expected prefix<TAB>length<TAB>origin, got {len(fields)} fields"
        )
    prefix, length, origin = fields
    if not length.isdigit():
        raise RegistryError(f"{where}: line {number}: prefix length must be a number, got {length[:20]!r}")
    family = socket.AF_INET6 if ":" in prefix else socket.AF_INET
    try:
        # inet_pton is strict (no leading zeros, no short forms) and fast on a 1M-row table.
        packed = socket.inet_pton(family, prefix)
    except OSError as exc:
        raise RegistryError(f"{where}: line {number}: invalid prefix {prefix[:40]!r}") from exc
    bits = len(packed) * 8
    if int(length) > bits:
        raise RegistryError(f"{where}: line {number}: prefix length {length} is longer than {bits}")
    value = int.from_bytes(packed, "big")
    if value & ((1 << (bits - int(length))) - 1):
        raise RegistryError(f"{where}: line {number}: host bits set in {prefix}/{length}")
    return (4 if bits == 32 else 6), value, int(length), origin


def find_pfx2as_line(path: Path, net: Network, origin: str) -> int | None:
    """The line of ``path`` holding the row ``net`` ``origin``: for naming a refused row.

    The packed table keeps no line numbers (a 1M-row table would double in size), so the
    file is read again; only an error needs this.
    """
    version, start = net.version, int(net.network_address)
    for number, line in enumerate(io.StringIO(read_source(path, "pfx2as table")), 1):
        if line.strip() and _pfx2as_row(line, str(path), number) == (version, start, net.prefixlen, origin):
            return number
    return None


def load_pfx2as(path: Path | str) -> Pfx2asFile:
    path = Path(path)
    date = date_in_name(path, "pfx2as table")
    return parse_pfx2as(read_source(path, "pfx2as table"), str(path), date)


# -- GeoIP --------------------------------------------------------------------------


def record_country(record: Any) -> str | None:
    """The ISO code in a GeoIP record: GeoLite2's ``country`` (else ``registered_country``) or a bare code."""
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        value = record.get(key)
        if isinstance(value, dict):
            value = value.get("iso_code")
        if isinstance(value, str) and COUNTRY_RE.fullmatch(value):
            return value
    code = record.get("country_code")
    return code if isinstance(code, str) and COUNTRY_RE.fullmatch(code) else None


def open_mmdb(path: Path, error: type[SensorPluginsError]) -> Any:
    """A MaxMind DB reader over ``path``; ``error`` naming the file when it is missing or not a database."""
    import maxminddb  # only the GeoIP readers need it; keeps `catalogue show` light

    if path.exists() and not path.is_file():
        # A FIFO would block the open forever; a directory or device is no database either.
        raise error(f"{path}: GeoIP database is not a regular file")
    try:
        return maxminddb.open_database(str(path), maxminddb.MODE_FILE)
    except FileNotFoundError as exc:
        raise error(f"{path}: GeoIP database not found") from exc
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise error(f"{path}: not a MaxMind DB file: {str(exc).splitlines()[0][:160]}") from exc


def load_geoip_networks(path: Path | str, country: str) -> GeoipNetworks:
    """Every network the database places in ``country``, merged into the fewest CIDRs."""
    import maxminddb

    path = Path(path)
    reader = open_mmdb(path, RegistryError)
    try:
        date = dt.datetime.fromtimestamp(reader.metadata().build_epoch, dt.UTC).date()
        found = [net for net, record in reader if record_country(record) == country and not _alias(net)]
    except (ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise RegistryError(f"{path}: corrupt GeoIP database: {str(exc).splitlines()[0][:160]}") from exc
    finally:
        reader.close()
    return GeoipNetworks(path=str(path), date=date, country=country, networks=tuple(collapse(found)))


# MaxMind databases map the IPv4 tree into IPv6 at these prefixes too; the same
# networks come back once as IPv4, which is the form the catalogue uses.
IPV4_ALIASES = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("2002::/16"),
                ipaddress.IPv6Network("2001::/32"))


def _alias(net: Network) -> bool:
    return net.version == 6 and any(net.subnet_of(alias) for alias in IPV4_ALIASES)  # type: ignore[arg-type]


def collapse(networks: Iterable[Network]) -> list[Network]:
    """Merge adjacent and nested networks, per address family, v4 first."""
    nets = list(networks)
    out: list[Network] = []
    for version in (4, 6):
        out.extend(ipaddress.collapse_addresses([n for n in nets if n.version == version]))
    return out
