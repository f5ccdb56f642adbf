"""Peer address -> country from a MaxMind-format ``.mmdb`` that the user supplies.

GeoLite2/GeoIP2 Country and City databases keep the code at ``country.iso_code`` (and
``registered_country`` for anycast and satellite ranges without a physical country);
simpler community databases keep a bare ``country_code`` or ``country`` string. All three
are read. Codes are checked against ``[A-Z]{2}`` so a crafted database cannot put markup
or text of its own into the report.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import maxminddb

from sensor_plugins.errors import SensorPluginsError

CODE_RE = re.compile(r"[A-Z]{2}")
UNKNOWN = "unknown"
PRIVATE = "private"


class GeoIPError(SensorPluginsError):
    """A GeoIP database that cannot be used."""


def open_country_lookup(path: Path | str) -> tuple[Callable[[str], str], Callable[[], None]]:
    """A ``country_of(address)`` function over ``path``, and the function that closes the file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        # A FIFO would block the open forever; a directory or device is no database either.
        raise GeoIPError(f"{path}: GeoIP database is not a regular file")
    try:
        reader = maxminddb.open_database(str(path), maxminddb.MODE_FILE)
    except FileNotFoundError as exc:
        raise GeoIPError(f"{path}: GeoIP database not found") from exc
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoIPError(f"{path}: not a MaxMind DB file: {str(exc).splitlines()[0][:160]}") from exc

    def country_of(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return UNKNOWN
        if not ip.is_global:
            return PRIVATE
        try:
            record = reader.get(address)
        except ValueError:
            # An IPv6 address in an IPv4-only database.
            return UNKNOWN
        except maxminddb.InvalidDatabaseError as exc:
            raise GeoIPError(f"{path}: corrupt GeoIP database: {str(exc).splitlines()[0][:160]}") from exc
        return country_code(record)

    return country_of, reader.close


def country_code(record: Any) -> str:
    """The ISO country code in one database record, or ``unknown``."""
    if not isinstance(record, dict):
        return UNKNOWN
    for key in ("country", "registered_country"):
        value = record.get(key)
        if isinstance(value, dict):
            value = value.get("iso_code")
        if isinstance(value, str) and CODE_RE.fullmatch(value):
            return value
    code = record.get("country_code")
    if isinstance(code, str) and CODE_RE.fullmatch(code):
        return code
    return UNKNOWN
