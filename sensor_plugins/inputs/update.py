"""`catalogue update`: the catalogue's ranges compared with registry, routing and GeoIP data.

The result is a diff, never a rewrite:

- a range the sources hold and the catalogue lacks is an *addition*, named by a stable
  slug of its CIDR;
- a range the update manages whose facts moved (origin AS, holder, confidence) is a
  *change*;
- a range the update manages that left the sources is *retired*: it gets ``last_seen``
  and stays, historical, like the 2017 study's ranges.

The update manages only the entries it wrote, recognised by their ``source`` text,
which starts with ``catalogue update:`` and lists each piece of evidence as a clause
(``delegated apnic KP allocated 2026-11-02 holder A91A4A2E``, ``pfx2as AS131279 since
2026-11-30``, ``geoip KP since 2026-11-28``). Every other entry (hand-written, from a
study) is never changed: a source range equal to or inside one is reported as
covered by it and left alone.

Confidence follows agreement: delegated to the country *and* announced by a listed AS
is ``high``; either alone is ``medium``; GeoIP alone is ``low``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import MAX_TEXT, Catalogue, Network, Range
from sensor_plugins.inputs.registry import (
    Announcement,
    DelegatedFile,
    Delegation,
    GeoipNetworks,
    Pfx2asFile,
    collapse,
)

MANAGED = "catalogue update:"
SINCE_RE = re.compile(r" since [0-9]{4}-[0-9]{2}-[0-9]{2}$")
# The catalogue's field order, used to place a field the update adds to an entry.
FIELD_ORDER = (
    "name", "cidr", "country", "owner", "asn", "source", "confidence",
    "first_seen", "last_seen", "notes", "allow_overlap",
)

T = TypeVar("T")


class UpdateError(SensorPluginsError):
    """Sources that cannot be applied to this catalogue."""


@dataclass(frozen=True)
class Sources:
    """Everything one update reads, already parsed."""

    country: str
    asns: frozenset[int] = frozenset()
    delegated: tuple[DelegatedFile, ...] = ()
    pfx2as: Pfx2asFile | None = None
    geoip: GeoipNetworks | None = None

    @property
    def dates(self) -> list[dt.date]:
        found = [f.date for f in self.delegated]
        found += [s.date for s in (self.pfx2as, self.geoip) if s is not None]
        return found

    @property
    def date(self) -> dt.date:
        """The date of the newest source: when a range that left the sources was last looked for."""
        return max(self.dates)

    def describe(self) -> list[str]:
        lines = [f"delegated {f.registry} {f.date} ({f.path}): {len(f.for_country(self.country))} "
                 f"{self.country} blocks" for f in self.delegated]
        if self.pfx2as:
            listed = len(self.pfx2as.listed(self.asns))
            lines.append(f"pfx2as {self.pfx2as.date} ({self.pfx2as.path}): {self.pfx2as.rows} prefixes, "
                         f"{listed} from {', '.join(f'AS{a}' for a in sorted(self.asns))}")
        if self.geoip:
            lines.append(f"geoip {self.geoip.date} ({self.geoip.path}): {len(self.geoip.networks)} "
                         f"{self.country} networks")
        return lines


@dataclass(frozen=True)
class Proposal:
    """What the sources say about one range."""

    cidr: Network
    confidence: str
    owner: str
    clauses: tuple[str, ...]
    asn: int | None = None

    def source(self, old: str = "") -> str:
        return source_text(self.clauses, old)


@dataclass(frozen=True)
class Change:
    """One line of the diff: ``add``, ``change`` or ``retire``, with old and new values per field."""

    kind: str
    name: str
    cidr: Network
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Diff:
    changes: tuple[Change, ...]
    notes: tuple[str, ...]
    date: dt.date

    def __bool__(self) -> bool:
        return bool(self.changes)

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)


# -- an index of networks -----------------------------------------------------------


class NetIndex(Generic[T]):
    """Networks with payloads, answering "which of them overlap this one" without a full scan.

    CIDRs are either nested or disjoint, so the ones overlapping a query are its
    supernets (one dict look-up per shorter prefix length) and the ones starting inside
    it (a bisect over the sorted first addresses).
    """

    def __init__(self, items: Iterable[tuple[Network, T]]) -> None:
        self._exact: dict[Network, list[T]] = {}
        for net, payload in items:
            self._exact.setdefault(net, []).append(payload)
        self._starts: dict[int, list[tuple[int, int, Network]]] = {4: [], 6: []}
        for net in self._exact:
            self._starts[net.version].append((int(net.network_address), -net.prefixlen, net))
        for starts in self._starts.values():
            starts.sort()
        self._lengths = {v: sorted({n.prefixlen for n in self._exact if n.version == v}) for v in (4, 6)}

    def exact(self, net: Network) -> list[T]:
        return self._exact.get(net, [])

    def overlapping(self, net: Network) -> list[T]:
        found: list[T] = []
        for length in self._lengths[net.version]:
            if length >= net.prefixlen:
                break
            found += self._exact.get(net.supernet(new_prefix=length), [])
        starts = self._starts[net.version]
        first, last = int(net.network_address), int(net.broadcast_address)
        i = bisect.bisect_left(starts, (first,))
        while i < len(starts) and starts[i][0] <= last:
            found += self._exact[starts[i][2]]
            i += 1
        return found


def subtract(nets: Iterable[Network], holes: NetIndex[Network]) -> list[Network]:
    """The addresses of ``nets`` outside every hole, as the fewest CIDRs."""
    out: list[Network] = []
    for net in nets:
        pieces = [net]
        for hole in holes.overlapping(net):
            rest: list[Network] = []
            for piece in pieces:
                if piece.version != hole.version or not piece.overlaps(hole):
                    rest.append(piece)
                elif hole.subnet_of(piece) and hole != piece:  # type: ignore[arg-type]
                    rest.extend(piece.address_exclude(hole))  # type: ignore[arg-type]
            pieces = rest
        out.extend(pieces)
    return collapse(out)


# -- what the sources say -----------------------------------------------------------


def propose(sources: Sources) -> list[Proposal]:
    """One proposal per range the sources place in the country, in address order."""
    delegated: dict[Network, list[Delegation]] = {}
    for f in sources.delegated:
        for record in f.for_country(sources.country):
            delegated.setdefault(record.cidr, []).append(record)
    pfx2as = sources.pfx2as
    listed = [a.cidr for a in pfx2as.listed(sources.asns)] if pfx2as else []
    units = list(delegated)
    units += subtract(listed, NetIndex((n, n) for n in units))
    geo = sources.geoip.networks if sources.geoip else ()
    units += subtract(geo, NetIndex((n, n) for n in units))
    geo_index: NetIndex[Network] = NetIndex((n, n) for n in geo)
    proposals = [
        _proposal(unit, delegated.get(unit, []), pfx2as.overlapping(unit) if pfx2as else [],
                  bool(geo_index.overlapping(unit)), sources)
        for unit in units
    ]
    return sorted(proposals, key=lambda p: (p.cidr.version, int(p.cidr.network_address), p.cidr.prefixlen))


def _proposal(unit: Network, delegations: Sequence[Delegation], routes: Sequence[Announcement],
              geo: bool, sources: Sources) -> Proposal:
    listed = sorted({a for r in routes for a in r.origins & sources.asns})
    announced = bool(listed)
    confidence = "high" if delegations and announced else "medium" if delegations or announced else "low"
    clauses = list(dict.fromkeys(_delegation_clause(d) for d in delegations))
    pfx_date = sources.pfx2as.date if sources.pfx2as else None
    clauses += list(dict.fromkeys(f"pfx2as {r.label} since {pfx_date}" for r in _by_origin(routes)))
    if geo and sources.geoip:
        clauses.append(f"geoip {sources.country} since {sources.geoip.date}")
    origins = {r.origin for r in routes}
    only = next(iter(origins)) if len(origins) == 1 else ""
    asn = listed[0] if listed else int(only) if only.isdigit() else None
    return Proposal(cidr=unit, confidence=confidence, owner=_owner(delegations, routes, sources.country),
                    clauses=tuple(clauses), asn=asn)


def _by_origin(routes: Sequence[Announcement]) -> list[Announcement]:
    return sorted(routes, key=lambda r: (r.label, int(r.cidr.network_address)))


def _delegation_clause(d: Delegation) -> str:
    holder = f" holder {d.holder}" if d.holder else ""
    return f"delegated {d.registry} {d.country} {d.status} {d.date}{holder}"


def _owner(delegations: Sequence[Delegation], routes: Sequence[Announcement], country: str) -> str:
    if delegations:
        d = delegations[0]
        who = f"holder {d.holder}" if d.holder else f"{d.status} block"
        return f"{d.registry.upper()} {d.country} {who}"
    if routes:
        return f"announced by {', '.join(dict.fromkeys(r.label for r in _by_origin(routes)))}"
    return f"unknown; GeoIP places it in {country}"


def source_text(clauses: Sequence[str], old: str = "") -> str:
    """``catalogue update: clause; clause``, keeping the ``since`` date of a clause already recorded.

    A pfx2as or GeoIP fact is dated by the first source that showed it; carrying the old
    date forward is what keeps a daily run quiet when nothing changed.
    """
    recorded = {SINCE_RE.sub("", c): c for c in _clauses(old)}
    kept = [recorded.get(SINCE_RE.sub("", c), c) for c in clauses]
    text = f"{MANAGED} {'; '.join(kept)}"
    while len(text) > MAX_TEXT and len(kept) > 1:
        # Too much evidence to list: keep the first clauses and say how many more there are.
        more = len(clauses) - len(kept) + 1
        kept = kept[:-1]
        text = f"{MANAGED} {'; '.join(kept)}; +{more} more"
    return text[:MAX_TEXT]


def _clauses(source: str) -> list[str]:
    if not source.startswith(MANAGED):
        return []
    return [c.strip() for c in source[len(MANAGED):].split(";") if c.strip()]


def managed(entry: Range) -> bool:
    """Whether ``catalogue update`` wrote this entry and may change it."""
    return entry.source.startswith(MANAGED)


# -- the diff -----------------------------------------------------------------------


def diff(catalogue: Catalogue, sources: Sources) -> Diff:
    """What applying ``sources`` would add, change and retire in ``catalogue``."""
    if not sources.dates:
        raise UpdateError("catalogue update: no sources given (--delegated, --pfx2as or --geoip)")
    date = sources.date
    proposals = propose(sources)
    _check_dates(catalogue, date)
    manual: NetIndex[Range] = NetIndex((r.cidr, r) for r in catalogue.ranges if not managed(r))
    ours: NetIndex[Range] = NetIndex((r.cidr, r) for r in catalogue.ranges if managed(r))
    names = {r.name for r in catalogue.ranges}
    changes: list[Change] = []
    notes: list[str] = []
    kept: set[str] = set()
    for p in proposals:
        existing = ours.exact(p.cidr)
        if existing:
            kept.add(existing[0].name)
            change = _change(existing[0], p)
            if change:
                changes.append(change)
            continue
        covering = [r for r in manual.overlapping(p.cidr) if p.cidr.subnet_of(r.cidr)]  # type: ignore[arg-type]
        if covering:
            notes.append(f"{p.cidr} is covered by {covering[0].name} ({covering[0].cidr}), which catalogue "
                         f"update does not manage; left as is. Sources: {'; '.join(p.clauses)}")
            continue
        name = unique_name(slug(sources.country, p.cidr), names)
        names.add(name)
        changes.append(_addition(name, p, sources.country, date))
    for entry in catalogue.ranges:
        if managed(entry) and entry.name not in kept and entry.last_seen is None:
            changes.append(_retirement(entry, date, proposals))
    changes = _mark_overlaps(catalogue, changes)
    return Diff(changes=tuple(changes), notes=tuple(notes), date=date)


def _check_dates(catalogue: Catalogue, date: dt.date) -> None:
    for r in catalogue.ranges:
        if managed(r) and r.first_seen and r.first_seen > date:
            raise UpdateError(
                f"{catalogue.path}: {r.name} was first seen {r.first_seen}, after the newest source ({date}); "
                "the sources are older than the catalogue"
            )


def _change(entry: Range, p: Proposal) -> Change | None:
    wanted = {"owner": p.owner, "asn": p.asn, "source": p.source(entry.source), "confidence": p.confidence,
              "last_seen": None}
    fields = {k: (getattr(entry, k), v) for k, v in wanted.items() if getattr(entry, k) != v}
    if entry.last_seen is not None:
        fields["notes"] = (entry.notes, f"{entry.notes} Back in the sources.".strip())
    return Change("change", entry.name, entry.cidr, fields) if fields else None


def _addition(name: str, p: Proposal, country: str, date: dt.date) -> Change:
    values: dict[str, Any] = {
        "name": name, "cidr": str(p.cidr), "country": country, "owner": p.owner, "asn": p.asn,
        "source": p.source(), "confidence": p.confidence, "first_seen": date,
        "notes": f"Added by catalogue update from the sources of {date}.",
    }
    return Change("add", name, p.cidr, {k: (None, v) for k, v in values.items() if v is not None})


def _retirement(entry: Range, date: dt.date, proposals: Sequence[Proposal]) -> Change:
    now = [p.cidr for p in proposals if p.cidr.version == entry.cidr.version and p.cidr.overlaps(entry.cidr)]
    covered = f" Its addresses are now in {', '.join(map(str, now))}." if now else ""
    note = f"Historical: no longer in the sources of {date}.{covered}"
    return Change("retire", entry.name, entry.cidr, {
        "last_seen": (None, date),
        "notes": (entry.notes, f"{entry.notes} {note}".strip()[:MAX_TEXT]),
    })


def _mark_overlaps(catalogue: Catalogue, changes: list[Change]) -> list[Change]:
    """Set allow_overlap on an added range that nests with another (a split beside its historical parent)."""
    added = [c for c in changes if c.kind == "add"]
    everything: NetIndex[str] = NetIndex(
        [(r.cidr, r.name) for r in catalogue.ranges] + [(c.cidr, c.name) for c in added]
    )
    out = []
    for c in changes:
        if c.kind == "add" and [n for n in everything.overlapping(c.cidr) if n != c.name]:
            c = Change(c.kind, c.name, c.cidr, {**c.fields, "allow_overlap": (None, True)})
        out.append(c)
    return out


def slug(country: str, cidr: Network) -> str:
    """``kp-175-45-180-0-23``: readable, and the same for the same range on every run."""
    address = str(cidr.network_address).replace(".", "-").replace(":", "-")
    name = re.sub(r"-{3,}", "--", f"{country.lower()}-{address}-{cidr.prefixlen}")
    if len(name) <= 40:
        return name
    # A long IPv6 prefix: keep the country and the first hextets, then the exact value in hex.
    digest = format(int(cidr.network_address) >> (128 - cidr.prefixlen), "x")[-12:]
    return f"{country.lower()}-v6-{digest}-{cidr.prefixlen}"[:40]


def unique_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate, n = name[: 40 - len(suffix)] + suffix, n + 1
    return candidate


# -- printing -----------------------------------------------------------------------


def show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"AS{value}"
    return str(value)


def format_diff(d: Diff, sources: Sources) -> list[str]:
    lines = [f"catalogue update: {sources.country}, sources of {d.date}:"]
    lines += [f"  source {s}" for s in sources.describe()]
    for c in d.changes:
        if c.kind == "add":
            v = {k: new for k, (_, new) in c.fields.items()}
            lines.append(f"+ add     {c.name} {c.cidr} confidence {v['confidence']}"
                         f"{' asn ' + show_value(v['asn']) if 'asn' in v else ''}"
                         f"{' (overlaps, allow_overlap)' if v.get('allow_overlap') else ''}")
            lines.append(f"          owner: {v['owner']}")
            lines.append(f"          source: {v['source']}")
        else:
            mark = "~ change " if c.kind == "change" else "- retire "
            lines.append(f"{mark} {c.name} {c.cidr}")
            lines += [f"          {k}: {show_value(old)} -> {show_value(new)}" for k, (old, new) in c.fields.items()]
    lines += [f"= note    {n}" for n in d.notes]
    lines.append(f"{d.count('add')} to add, {d.count('change')} to change, {d.count('retire')} to retire"
                 + ("" if d else "; the catalogue is current"))
    return lines
