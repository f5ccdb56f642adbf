"""The range catalogue: one YAML file of networks, each with provenance, confidence and dates.

This is the single model that every renderer and the post-processor read. Loading it
validates everything a renderer relies on, so the renderers can stay simple: a name is
a slug, a CIDR has no host bits, and no text field holds a control character.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.textfile import read_text

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NAME_RE = re.compile(r"[a-z0-9-]{1,40}")
COUNTRY_RE = re.compile(r"[A-Z]{2}")
ASN_RE = re.compile(r"(?:AS)?([0-9]{1,10})")
# Printable text on one line. Control characters (newlines, tabs, NUL, escapes, bidi
# overrides) are refused because they would break a TSV row, a Zeek comment or a terminal.
TEXT_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]*")
CONFIDENCES = ("high", "medium", "low")
MAX_TEXT = 400
MAX_FILE_BYTES = 32 * 1024 * 1024
DEFAULT_SID_BLOCK = (1_650_000, 1_659_999)

RANGE_KEYS = {
    "name", "cidr", "country", "owner", "asn", "source", "confidence",
    "first_seen", "last_seen", "notes", "allow_overlap",
}
REQUIRED_KEYS = ("name", "cidr", "country", "owner", "source", "confidence")
TOP_KEYS = {"version", "description", "sid_block", "ranges"}
# libyaml parses a 10k-range catalogue about 5x faster than pure-Python PyYAML.
# Both are safe loaders: they build only plain YAML types, never Python objects.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CatalogueError(SensorPluginsError):
    """A catalogue that cannot be used; the message names the file, entry and field."""


@dataclass(frozen=True)
class Range:
    """One catalogued network."""

    name: str
    cidr: Network
    country: str
    owner: str
    source: str
    confidence: str
    asn: int | None = None
    first_seen: dt.date | None = None
    last_seen: dt.date | None = None
    notes: str = ""
    allow_overlap: bool = False

    @property
    def historical(self) -> bool:
        """A range with a last_seen date is no longer known to be in use."""
        return self.last_seen is not None

    def contains(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in self.cidr
        except ValueError:
            return False


@dataclass(frozen=True)
class Catalogue:
    """The whole catalogue, in file order."""

    ranges: tuple[Range, ...]
    path: str = "<memory>"
    description: str = ""
    sid_block: tuple[int, int] = DEFAULT_SID_BLOCK
    _by_name: dict[str, Range] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({r.name: r for r in self.ranges})

    def by_name(self, name: str) -> Range:
        return self._by_name[name]

    def lookup(self, address: str) -> Range | None:
        """The most specific range holding ``address``, or None."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        hits = [r for r in self.ranges if ip.version == r.cidr.version and ip in r.cidr]
        return max(hits, key=lambda r: r.cidr.prefixlen, default=None)


def default_catalogue_path() -> Path:
    return Path(str(resources.files("sensor_plugins") / "data" / "catalogue.yaml"))


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """Read and validate a catalogue file; the bundled default when ``path`` is None."""
    path = Path(path) if path is not None else default_catalogue_path()
    text = read_text(path, "catalogue", MAX_FILE_BYTES, CatalogueError)
    return parse_catalogue(text, str(path))


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` that refuses anchors and aliases, repeated keys and impossible dates.

    Aliases are how a "billion laughs" YAML bomb expands a few bytes into gigabytes;
    a hand-written catalogue never needs them, so refusing them outright is the simple fix.
    A key given twice in one mapping (a second ``cidr:`` in a range, a second top-level
    ``ranges:``) is silently "last one wins" in PyYAML, which loses ranges and retires
    their sids for good, so it is an error here, naming both lines.
    """
    try:
        for event in yaml.parse(text, Loader=YAML_LOADER):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise CatalogueError(
                    f"{where}: line {mark.line + 1}: YAML anchors and aliases are not allowed"
                )
        loader = YAML_LOADER(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            check_yaml_node(node, where)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CatalogueError(f"{where}: {line}invalid YAML: {problem}") from exc


TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def check_yaml_node(node: yaml.Node, where: str) -> None:
    """Refuse repeated mapping keys and timestamps that are no date (2017-02-30), anywhere."""
    stamps = yaml.SafeLoader("")  # one constructor for every timestamp, not one per date
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in current.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                line = key.start_mark.line + 1
                if name is not None and name in seen:
                    raise CatalogueError(
                        f"{where}: line {line}: key {name[:40]!r} repeated (first at line {seen[name]})"
                    )
                if name is not None:
                    seen[name] = line
                stack += [key, value]
        elif isinstance(current, yaml.SequenceNode):
            stack += current.value
        elif isinstance(current, yaml.ScalarNode) and current.tag == TIMESTAMP_TAG:
            try:
                stamps.construct_yaml_timestamp(current)
            except ValueError as exc:
                raise CatalogueError(
                    f"{where}: line {current.start_mark.line + 1}: {current.value[:40]!r} is not a valid date"
                ) from exc


def parse_catalogue(text: str, where: str = "<memory>") -> Catalogue:
    doc = safe_yaml(text, where)
    if not isinstance(doc, dict):
        raise CatalogueError(f"{where}: the document must be a mapping with a 'ranges' list")
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown top-level key {sorted(map(str, unknown))[0]!r}")
    entries = doc.get("ranges")
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{where}: 'ranges' must be a non-empty list")
    description = _text(doc.get("description", ""), f"{where}: field 'description'")
    sid_block = _sid_block(doc.get("sid_block"), where)
    ranges = tuple(_parse_range(entry, i, where) for i, entry in enumerate(entries))
    _check_unique(ranges, where)
    _check_overlaps(ranges, where)
    return Catalogue(ranges=ranges, path=where, description=description, sid_block=sid_block)


def _sid_block(value: Any, where: str) -> tuple[int, int]:
    if value is None:
        return DEFAULT_SID_BLOCK
    ok = (
        isinstance(value, list) and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1_000_000 <= value[0] < value[1] <= 1_999_999
    )
    if not ok:
        raise CatalogueError(
            f"{where}: field 'sid_block' must be [first, last] inside 1000000-1999999, got {value!r}"
        )
    return (value[0], value[1])


def _parse_range(entry: Any, index: int, where: str) -> Range:
    label = f"{where}: ranges[{index}]"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{label}: each range must be a mapping")
    name = entry.get("name")
    if isinstance(name, str) and NAME_RE.fullmatch(name):
        label = f"{label} ({name})"
    unknown = set(entry) - RANGE_KEYS
    if unknown:
        raise CatalogueError(f"{label}: unknown key {sorted(map(str, unknown))[0]!r}")
    for key in REQUIRED_KEYS:
        if entry.get(key) in (None, ""):
            raise CatalogueError(f"{label}: field {key!r} is required")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise CatalogueError(f"{label}: field 'name' must match [a-z0-9-]{{1,40}}, got {name!r}")
    confidence = entry["confidence"]
    if confidence not in CONFIDENCES:
        raise CatalogueError(f"{label}: field 'confidence' must be one of {', '.join(CONFIDENCES)}")
    country = entry["country"]
    if not isinstance(country, str) or not COUNTRY_RE.fullmatch(country):
        raise CatalogueError(f"{label}: field 'country' must be an ISO 3166 code like KP, got {country!r}")
    first_seen = _date(entry.get("first_seen"), f"{label}: field 'first_seen'")
    last_seen = _date(entry.get("last_seen"), f"{label}: field 'last_seen'")
    if first_seen and last_seen and last_seen < first_seen:
        raise CatalogueError(f"{label}: field 'last_seen' is before 'first_seen'")
    allow_overlap = entry.get("allow_overlap", False)
    if not isinstance(allow_overlap, bool):
        raise CatalogueError(f"{label}: field 'allow_overlap' must be true or false")
    return Range(
        name=name,
        cidr=_cidr(entry["cidr"], f"{label}: field 'cidr'"),
        country=country,
        owner=_text(entry["owner"], f"{label}: field 'owner'"),
        source=_text(entry["source"], f"{label}: field 'source'"),
        confidence=confidence,
        asn=_asn(entry.get("asn"), f"{label}: field 'asn'"),
        first_seen=first_seen,
        last_seen=last_seen,
        notes=_text(entry.get("notes", ""), f"{label}: field 'notes'"),
        allow_overlap=allow_overlap,
    )


def _cidr(value: Any, label: str) -> Network:
    if not isinstance(value, str):
        raise CatalogueError(f"{label}: must be a CIDR string, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            raise CatalogueError(f"{label}: host bits set in {value!r}") from exc
        raise CatalogueError(f"{label}: invalid CIDR {value!r}") from exc


def _text(value: Any, label: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CatalogueError(f"{label}: must be text, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise CatalogueError(f"{label}: longer than {MAX_TEXT} characters")
    if not TEXT_RE.fullmatch(value):
        bad = next(c for c in value if not TEXT_RE.fullmatch(c))
        raise CatalogueError(f"{label}: control character U+{ord(bad):04X} is not allowed")
    return value.strip()


def _asn(value: Any, label: str) -> int | None:
    if value is None:
        return None
    match = ASN_RE.fullmatch(str(value))
    if isinstance(value, bool) or not match or int(match.group(1)) > 4_294_967_295:
        raise CatalogueError(f"{label}: must be an AS number like AS131279, got {value!r}")
    return int(match.group(1))


def _date(value: Any, label: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise CatalogueError(f"{label}: must be a date YYYY-MM-DD, got {value!r}") from exc


def _check_unique(ranges: tuple[Range, ...], where: str) -> None:
    seen_names: dict[str, int] = {}
    seen_cidrs: dict[Network, int] = {}
    for i, r in enumerate(ranges):
        if r.name in seen_names:
            raise CatalogueError(
                f"{where}: ranges[{i}] ({r.name}): field 'name' duplicates ranges[{seen_names[r.name]}]"
            )
        if r.cidr in seen_cidrs:
            raise CatalogueError(
                f"{where}: ranges[{i}] ({r.name}): field 'cidr' {r.cidr} duplicates "
                f"ranges[{seen_cidrs[r.cidr]}]"
            )
        seen_names[r.name] = i
        seen_cidrs[r.cidr] = i


def _check_overlaps(ranges: tuple[Range, ...], where: str) -> None:
    # A sweep over ranges sorted by first address finds every overlap in O(n log n);
    # the pairwise check would take minutes on a 10k-range catalogue.
    order = sorted(
        range(len(ranges)),
        key=lambda i: (ranges[i].cidr.version, int(ranges[i].cidr.network_address), ranges[i].cidr.prefixlen),
    )
    widest: int | None = None
    for i in order:
        r = ranges[i]
        if widest is not None:
            w = ranges[widest]
            if w.cidr.version == r.cidr.version and r.cidr.subnet_of(w.cidr):
                if not (r.allow_overlap or w.allow_overlap):
                    raise CatalogueError(
                        f"{where}: ranges[{i}] ({r.name}): field 'cidr' {r.cidr} overlaps "
                        f"ranges[{widest}] ({w.name}) {w.cidr}; set allow_overlap: true if intended"
                    )
                continue
        widest = i
