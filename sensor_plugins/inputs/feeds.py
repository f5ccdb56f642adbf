"""Tor relay and exit lists, read from local files in any of three formats.

Every address is validated and every feed keeps the date it was fetched, so the
post-processor can count an address as Tor only while it was listed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.textfile import read_text

ROLES = ("exit", "relay")
FINGERPRINT_RE = re.compile(r"[0-9A-F]{40}")
NICKNAME_RE = re.compile(r"[A-Za-z0-9]{1,19}")
HEADER_RE = re.compile(r"#\s*(role|fetched|source)\s*:\s*(.*?)\s*$")
SOURCE_RE = re.compile(r"[\x20-\x7e]{0,200}")
MAX_FEED_BYTES = 256 * 1024 * 1024


class FeedError(SensorPluginsError):
    """A feed file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TorEntry:
    """One listed address and the dates the list saw it."""

    address: str
    role: str
    first_seen: dt.date | None = None
    last_seen: dt.date | None = None
    feed: str = ""
    # Where the address was read ("file:line" or "file: relays[i]"), for errors found later,
    # such as an address that is also in the catalogue.
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class TorFeed:
    """One feed file after parsing."""

    name: str
    format: str
    fetched: dt.date
    entries: tuple[TorEntry, ...]
    source: str = ""


@dataclass(frozen=True)
class TorList:
    """All feeds merged: one entry per address, an exit listing winning over a relay one."""

    feeds: tuple[TorFeed, ...] = ()
    entries: dict[str, TorEntry] = field(default_factory=dict)

    def by_role(self, role: str) -> list[str]:
        """The addresses of ``role``, in a stable order (IPv4 first, then numeric)."""
        return sorted(
            (a for a, e in self.entries.items() if e.role == role),
            key=address_order,
        )

    def role_of(self, address: str) -> str | None:
        entry = self.entries.get(address)
        return entry.role if entry else None


def address_order(address: str) -> tuple[int, int]:
    """Sort key for stable output: IPv4 before IPv6, then numeric order."""
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def bundled_feed_paths() -> list[Path]:
    base = Path(str(resources.files("sensor_plugins") / "data" / "tor"))
    return sorted(p for p in base.iterdir() if p.suffix in {".lst", ".txt", ".json"})


# A dotted quad in canonical form (no leading zeros, each octet <= 255): most of a Tor
# list, and checking it here costs a tenth of building an ipaddress object for it.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CANONICAL_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def parse_address(text: str) -> tuple[str, int, int] | None:
    """(canonical text, IP version, integer value) of an address, or None when ``text`` is not one."""
    text = text.strip()
    if CANONICAL_IPV4_RE.fullmatch(text):
        a, b, c, d = text.split(".")
        return text, 4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    if ":" in text:
        # inet_pton/inet_ntop are the C library's: a twentieth of ipaddress' cost, and on
        # Tor lists' thousands of IPv6 relays that was most of analyze's start-up. They
        # compress zeros as RFC 5952 says, as ipaddress does; only where an IPv4 address
        # is embedded (::ffff:1.2.3.4) do they write it otherwise, so those go through
        # ipaddress below to keep one canonical text.
        try:
            packed = socket.inet_pton(socket.AF_INET6, text)
        except (OSError, ValueError):  # ValueError: a NUL in the text
            packed = None
        if packed is not None:
            canonical = socket.inet_ntop(socket.AF_INET6, packed)
            if "." not in canonical:
                return canonical, 6, int.from_bytes(packed, "big")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(ip), ip.version, int(ip)


def normalise_address(text: str) -> str | None:
    """The canonical text of an IP address, or None when ``text`` is not one."""
    parsed = parse_address(text)
    return parsed[0] if parsed else None


# Addresses no Tor relay can have: listing one would tag local, broadcast or multicast
# traffic as Tor. Documentation networks (192.0.2.0/24 and the like) are not here: they are
# what the scenario pcaps and tests use for outside hosts, and never appear on a real link.
NON_ROUTABLE: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved or broadcast address"),
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("::ffff:0:0/96", "an IPv4-mapped address"),
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("ff00::/8", "a multicast address"),
    )
)


# The same networks as integer spans, so a 10k-address list is checked without building
# an ipaddress object per address.
_NON_ROUTABLE_SPANS = tuple(
    (net.version, int(net.network_address), int(net.broadcast_address), why) for net, why in NON_ROUTABLE
)


def non_routable_reason(address: str) -> str | None:
    """Why ``address`` cannot be a Tor relay, or None when it can."""
    parsed = parse_address(address)
    if parsed is None:
        raise ValueError(f"not an IP address: {address!r}")
    return _span_reason(parsed[1], parsed[2])


def _span_reason(version: int, value: int) -> str | None:
    for span_version, first, last, why in _NON_ROUTABLE_SPANS:
        if version == span_version and first <= value <= last:
            return why
    return None


def _checked_address(text: str, where: str) -> str:
    """The canonical address in ``text``, refused with ``where`` when it is none or not routable."""
    parsed = parse_address(text)
    if parsed is None:
        raise FeedError(f"{where}: not an IP address: {_shown(text)}")
    address, version, value = parsed
    why = _span_reason(version, value)
    if why is not None:
        raise FeedError(f"{where}: {address} is {why}, which no Tor relay can have")
    return address


def load_feed(path: Path | str, allow_empty: bool = False) -> TorFeed:
    """Parse one feed file, detecting its format from its content.

    An empty list is refused unless ``allow_empty``: merged with nothing else, it would
    turn Tor detection off while every command still reported success.
    """
    path = Path(path)
    text = read_text(path, "Tor list", MAX_FEED_BYTES, FeedError)
    feed = parse_feed(text, path.name, _mtime_date(path))
    if not feed.entries and not allow_empty:
        raise FeedError(f"{path}: the Tor list holds no addresses, so Tor detection would be off; "
                        "pass --allow-empty if that is intended")
    return feed


def parse_feed(text: str, name: str, fallback_date: dt.date | None = None) -> TorFeed:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return parse_onionoo(text, name)
    if re.search(r"^ExitNode ", text, re.M):
        return parse_exit_addresses(text, name)
    return parse_plain(text, name, fallback_date)


def parse_plain(text: str, name: str, fallback_date: dt.date | None = None) -> TorFeed:
    """One address a line; ``# role:``, ``# fetched:`` and ``# source:`` comments describe the list."""
    meta: dict[str, str] = {}
    addresses: list[tuple[str, int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            header = HEADER_RE.match(line)
            if header:
                meta[header.group(1)] = header.group(2)
            continue
        text = line.split("#", 1)[0]
        address = _checked_address(text, f"{name}:{lineno}") if text.strip() else None
        if address is None:
            raise FeedError(f"{name}:{lineno}: not an IP address: {_shown(line)}")
        addresses.append((address, lineno))
    role = meta.get("role", "relay")
    if role not in ROLES:
        raise FeedError(f"{name}: '# role:' must be exit or relay, got {_shown(role)}")
    fetched = _parse_date(meta["fetched"], f"{name}: '# fetched:'") if "fetched" in meta else fallback_date
    if fetched is None:
        raise FeedError(f"{name}: plain list has no '# fetched: YYYY-MM-DD' line")
    source = _source(meta.get("source", ""), name)
    first_line: dict[str, int] = {}
    for address, lineno in addresses:
        first_line.setdefault(address, lineno)
    entries = tuple(TorEntry(a, role, None, fetched, name, f"{name}:{n}") for a, n in first_line.items())
    return TorFeed(name, "plain", fetched, entries, source)


def parse_exit_addresses(text: str, name: str) -> TorFeed:
    """The Tor Project's TorDNSEL ``exit-addresses`` format."""
    entries: dict[str, TorEntry] = {}
    published: dt.date | None = None
    fetched: dt.date | None = None
    fingerprint = ""
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        keyword, args = parts[0], parts[1:]
        where = f"{name}:{lineno}"
        if keyword == "ExitNode":
            if len(args) != 1 or not FINGERPRINT_RE.fullmatch(args[0]):
                raise FeedError(f"{where}: ExitNode needs a 40-hex fingerprint, got {_shown(line)}")
            fingerprint, published = args[0], None
        elif keyword == "Published":
            published = _parse_date(" ".join(args[:1]), where)
        elif keyword == "LastStatus":
            status = _parse_date(" ".join(args[:1]), where)
            fetched = max(fetched, status) if fetched else status
        elif keyword == "ExitAddress":
            if not fingerprint or len(args) < 2:
                raise FeedError(f"{where}: ExitAddress outside an ExitNode block or without a date")
            address = _checked_address(args[0], where)
            seen = _parse_date(args[1], where)
            first = min(d for d in (published, seen) if d is not None)
            old = entries.get(address)
            if old:
                first, seen = min(first, old.first_seen or first), max(seen, old.last_seen or seen)
            entries[address] = TorEntry(address, "exit", first, seen, name, old.origin if old else where)
        else:
            raise FeedError(f"{where}: unknown exit-addresses keyword {_shown(keyword)}")
    if not entries:
        raise FeedError(f"{name}: exit-addresses list holds no ExitAddress line")
    fetched = fetched or max(e.last_seen for e in entries.values() if e.last_seen)
    return TorFeed(name, "exit-addresses", fetched, tuple(entries.values()))


def parse_onionoo(text: str, name: str) -> TorFeed:
    """An Onionoo ``details`` document; a relay is an exit when its flags hold ``Exit``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedError(f"{name}:{exc.lineno}: invalid Onionoo JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("relays"), list):
        raise FeedError(f"{name}: Onionoo document has no 'relays' list")
    fetched = _parse_date(str(doc.get("relays_published", "")), f"{name}: relays_published")
    entries: dict[str, TorEntry] = {}
    for i, relay in enumerate(doc["relays"]):
        where = f"{name}: relays[{i}]"
        if not isinstance(relay, dict):
            raise FeedError(f"{where}: must be an object")
        nickname = relay.get("nickname", "")
        if nickname and not (isinstance(nickname, str) and NICKNAME_RE.fullmatch(nickname)):
            raise FeedError(f"{where}: invalid relay nickname {_shown(str(nickname))}")
        flags = relay.get("flags") or []
        if not isinstance(flags, list):
            raise FeedError(f"{where}: 'flags' must be a list")
        role = "exit" if "Exit" in flags else "relay"
        first = _parse_date(str(relay["first_seen"]), where) if relay.get("first_seen") else None
        last = _parse_date(str(relay["last_seen"]), where) if relay.get("last_seen") else fetched
        for raw in _relay_addresses(relay, where):
            address = _checked_address(raw, where)
            old = entries.get(address)
            if old is None or (role == "exit" and old.role != "exit"):
                entries[address] = TorEntry(address, role, first, last, name, where)
    return TorFeed(name, "onionoo", fetched, tuple(entries.values()))


def _relay_addresses(relay: dict, where: str) -> Iterable[str]:
    for key in ("or_addresses", "exit_addresses"):
        values = relay.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise FeedError(f"{where}: {key!r} must be a list of strings")
        for value in values:
            # or_addresses carry a port: "1.2.3.4:9001" or "[2001:db8::1]:9001".
            if key == "or_addresses":
                value = value.rsplit(":", 1)[0] if value.count(":") == 1 or value.startswith("[") else value
            yield value.strip("[]")


def merge_feeds(feeds: Iterable[TorFeed]) -> TorList:
    """One entry per address across feeds; exit beats relay, dates widen to cover both."""
    feeds = tuple(feeds)
    merged: dict[str, TorEntry] = {}
    for feed in feeds:
        for entry in feed.entries:
            old = merged.get(entry.address)
            if old is None:
                merged[entry.address] = entry
                continue
            role = "exit" if "exit" in (old.role, entry.role) else "relay"
            merged[entry.address] = TorEntry(
                entry.address,
                role,
                _min_date(old.first_seen, entry.first_seen),
                _max_date(old.last_seen, entry.last_seen),
                old.feed if old.role == role else entry.feed,
                old.origin if old.role == role else entry.origin,
            )
    return TorList(feeds, merged)


def load_tor_list(paths: Iterable[Path | str] | None = None, allow_empty: bool = False) -> TorList:
    """Merge the given feed files; the bundled lists when ``paths`` is None."""
    chosen = list(paths) if paths is not None else bundled_feed_paths()
    return merge_feeds(load_feed(p, allow_empty) for p in chosen)


def _min_date(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    return min(d for d in (a, b) if d) if (a or b) else None


def _max_date(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    return max(d for d in (a, b) if d) if (a or b) else None


def _parse_date(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError as exc:
        raise FeedError(f"{where}: not a date: {_shown(text)}") from exc


def _source(text: str, name: str) -> str:
    if not SOURCE_RE.fullmatch(text):
        raise FeedError(f"{name}: '# source:' must be printable ASCII of at most 200 characters")
    return text


def _mtime_date(path: Path) -> dt.date:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date()


def _shown(text: str) -> str:
    """A hostile value, quoted and cut short so that it cannot flood or break the error line."""
    return repr(text[:60] + ("…" if len(text) > 60 else ""))
