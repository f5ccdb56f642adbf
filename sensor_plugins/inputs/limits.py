"""What a catalogued range may plausibly be: one check for the catalogue and for the data that updates it.

A range in the catalogue becomes a Zeek table entry and a Suricata address group on
every sensor, so one implausible range tags a large part of the internet as the
country's traffic. The registry, routing and GeoIP data ``catalogue update`` reads come
from outside and can be poisoned or broken (a delegated record of 16,777,216 addresses,
an announcement of 0.0.0.0/0, a GeoIP database placing 0.0.0.0/1 in KP); the catalogue
itself can be edited by hand. Both are held to the same limits:

- no range shorter than a prefix floor (default /16 for IPv4, /32 for IPv6);
- no default route, and nothing overlapping space no host on the internet can have
  (private, loopback, link-local, carrier-grade NAT, multicast, reserved): the same
  networks a Tor list may not hold (``feeds.NON_ROUTABLE``). Documentation networks
  (192.0.2.0/24 and the like) are allowed: the tests and scenario pcaps use them;
- no date after the run's clock (UTC), with one day of slack for registries east of
  UTC, whose files are dated by their own calendar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sensor_plugins.inputs.catalogue import Catalogue, CatalogueError, Network
from sensor_plugins.inputs.feeds import NON_ROUTABLE

DEFAULT_MIN_PREFIX_V4 = 16
DEFAULT_MIN_PREFIX_V6 = 32
FUTURE_SLACK = dt.timedelta(days=1)
DEFAULT_MAX_CHANGES = 10
# IPv4 addresses, or IPv6 /64 networks: a /16's worth either way.
DEFAULT_MAX_ADDRESSES = 65_536



@dataclass(frozen=True)
class RangeLimits:
    """The prefix floor per IP version and the clock dates are checked against."""

    min_prefix_v4: int = DEFAULT_MIN_PREFIX_V4
    min_prefix_v6: int = DEFAULT_MIN_PREFIX_V6
    today: dt.date | None = None  # None: the run's clock, in UTC

    def floor(self, version: int) -> int:
        return self.min_prefix_v4 if version == 4 else self.min_prefix_v6

    def latest_date(self) -> dt.date:
        """The latest date a source or catalogue entry may carry."""
        return (self.today or dt.datetime.now(dt.UTC).date()) + FUTURE_SLACK


def network_problem(net: Network, limits: RangeLimits) -> str | None:
    """Why ``net`` cannot be a catalogued range, or None when it can."""
    if net.prefixlen == 0:
        return f"{net} is the default route"
    floor = limits.floor(net.version)
    if net.prefixlen < floor:
        option = "--min-prefix-v4" if net.version == 4 else "--min-prefix-v6"
        return (f"{net} is wider than /{floor}, the shortest prefix allowed ({net.num_addresses:,} addresses; "
                f"{option} changes the floor)")
    for reserved, why in NON_ROUTABLE:
        if reserved.version == net.version and net.overlaps(reserved):  # type: ignore[arg-type]
            return f"{net} overlaps {reserved}, {why.removeprefix('a ').removeprefix('an ')} space"
    return None


def date_problem(date: dt.date | None, limits: RangeLimits) -> str | None:
    """Why ``date`` cannot be a fact's date (it lies in the future), or None when it can."""
    if date is not None and date > limits.latest_date():
        return f"{date} is in the future (the clock says {limits.latest_date() - FUTURE_SLACK})"
    return None


def check_catalogue(catalogue: Catalogue, limits: RangeLimits) -> None:
    """Refuse a catalogue holding an implausible range or a date after today, naming the entry and field."""
    for i, r in enumerate(catalogue.ranges):
        label = f"{catalogue.path}: ranges[{i}] ({r.name})"
        problem = network_problem(r.cidr, limits)
        if problem:
            raise CatalogueError(f"{label}: field 'cidr': {problem}")
        for key in ("first_seen", "last_seen"):
            problem = date_problem(getattr(r, key), limits)
            if problem:
                raise CatalogueError(f"{label}: field {key!r}: {problem}")


@dataclass(frozen=True)
class ChangeLimits:
    """What counts as a large change: more than ``max_changes`` ranges added or retired, or more
    than ``max_addresses`` IPv4 addresses (IPv6: /64 networks) added or retired."""

    max_changes: int = DEFAULT_MAX_CHANGES
    max_addresses: int = DEFAULT_MAX_ADDRESSES
