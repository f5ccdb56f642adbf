"""Plausibility of the data ``catalogue update`` reads, and of the change it proposes.

Every piece of evidence for the country (a delegated record, an announcement by a
listed AS, a GeoIP network) is held to ``limits.RangeLimits`` before any diff is made:
a refusal names the record, its file and line (a GeoIP database has no lines: the
network). A source dated after the run's clock is refused too, since its date would be
written as ``first_seen`` and every later, correctly dated update would then be refused
as older than the catalogue.

A change that passes those checks may still be large: more ranges added or retired, or
more addresses, than a country like KP plausibly gains or loses between two runs. It is
printed with a warning, and ``--write`` applies it only with ``--accept-large``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sensor_plugins.inputs.limits import ChangeLimits, RangeLimits, date_problem, network_problem
from sensor_plugins.inputs.registry import find_pfx2as_line
from sensor_plugins.inputs.update import Diff, Sources, UpdateError


def check_sources(sources: Sources, limits: RangeLimits) -> None:
    """Refuse the first implausible record or future date in ``sources``, naming file and line."""
    for f in sources.delegated:
        _refuse_date(f.date, f"{f.path}: version line: enddate", limits)
        for record in f.for_country(sources.country):
            _refuse(network_problem(record.cidr, limits),
                    f"{record.where}: {record.registry} record placing {record.cidr} in {record.country}")
            _refuse_date(record.date, f"{record.where}: record date", limits)
    if sources.pfx2as:
        table = sources.pfx2as
        _refuse_date(table.date, f"{table.path}: the date in its name", limits)
        for row in table.listed(sources.asns):
            problem = network_problem(row.cidr, limits)
            if problem:
                line = find_pfx2as_line(Path(table.path), row.cidr, row.origin)
                where = f"{table.path}: line {line}" if line else table.path
                _refuse(problem, f"{where}: {row.label} announcing {row.cidr}")
    if sources.geoip:
        geo = sources.geoip
        _refuse_date(geo.date, f"{geo.path}: build date", limits)
        for net in geo.networks:
            _refuse(network_problem(net, limits), f"{geo.path}: network {net} placed in {geo.country}")


def _refuse(problem: str | None, what: str) -> None:
    if problem:
        raise UpdateError(f"{what}: refused: {problem}; nothing was changed")


def _refuse_date(date: dt.date | None, what: str, limits: RangeLimits) -> None:
    _refuse(date_problem(date, limits), what)


def address_units(diff: Diff, kind: str) -> int:
    """IPv4 addresses plus IPv6 /64 networks of the ranges ``diff`` adds or retires (``kind``)."""
    total = 0
    for change in diff.changes:
        if change.kind == kind:
            net = change.cidr
            total += net.num_addresses if net.version == 4 else 1 << max(0, 64 - net.prefixlen)
    return total


def large_change(diff: Diff, limits: ChangeLimits) -> str | None:
    """Why ``diff`` is a large change, or None when it is not."""
    ranges = diff.count("add") + diff.count("retire")
    added, retired = address_units(diff, "add"), address_units(diff, "retire")
    reasons = []
    if ranges > limits.max_changes:
        reasons.append(f"{ranges} ranges added or retired (more than --max-changes {limits.max_changes})")
    for count, verb in ((added, "added"), (retired, "retired")):
        if count > limits.max_addresses:
            reasons.append(f"{count:,} addresses {verb} (more than --max-addresses {limits.max_addresses:,}; "
                           "IPv6 counted in /64s)")
    return "; ".join(reasons) or None
