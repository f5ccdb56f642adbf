"""Peer countries from a MaxMind-format database that each test writes for itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.report.geoip import country_code, open_country_lookup


def write_mmdb(path: Path, networks: dict[str, dict]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def geo_db(tmp_path: Path) -> Path:
    return write_mmdb(
        tmp_path / "country.mmdb",
        {
            "93.184.216.0/24": {"country": {"iso_code": "US", "names": {"en": "United States"}}},
            "185.220.101.0/24": {"registered_country": {"iso_code": "DE"}},
            "151.101.0.0/16": {"country_code": "GB"},
            "45.33.0.0/16": {"country": {"iso_code": "<b>"}},
        },
    )


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("93.184.216.34", "US"),  # GeoLite2 layout
        ("185.220.101.5", "DE"),  # registered country only
        ("151.101.1.1", "GB"),  # flat country_code
        ("45.33.1.1", "unknown"),  # a code that is not two capitals is not shown
        ("8.8.8.8", "unknown"),  # not in the database
        ("10.1.2.3", "private"),
        ("not-an-ip", "unknown"),
    ],
)
def test_country_lookup_reads_the_users_mmdb(geo_db, address, country):
    country_of, close = open_country_lookup(geo_db)
    try:
        assert country_of(address) == country
    finally:
        close()


def test_a_file_that_is_not_an_mmdb_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"this is not a MaxMind database" * 10)
    with pytest.raises(SensorPluginsError, match=r"bad\.mmdb: not a MaxMind DB file"):
        open_country_lookup(bad)


def test_a_missing_mmdb_is_named(tmp_path):
    with pytest.raises(SensorPluginsError, match=r"none\.mmdb: GeoIP database not found"):
        open_country_lookup(tmp_path / "none.mmdb")


def test_country_code_of_a_record_without_country_is_unknown():
    assert country_code({"city": {"names": {"en": "Pyongyang"}}}) == "unknown"
