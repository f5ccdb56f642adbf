"""The synthetic registry history (tests/inputs/fixtures/registry/history/) as `catalogue update` arguments.

Four dated snapshots, each a delegated-extended file, a pfx2as table and a GeoIP
database. Between them a KP range is added, one is split, one moves to another origin
AS and two are withdrawn. The GeoIP databases are written at test time with
mmdb-writer from a JSON spec, their build date set to the snapshot's date.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from unittest import mock

from mmdb_writer import MMDBWriter
from netaddr import IPSet

HISTORY = Path(__file__).parent / "inputs" / "fixtures" / "registry" / "history"
STEPS = ("20260901", "20261001", "20261101", "20261201")
ASN = "AS131279"


def write_geoip(spec: Path, out: Path) -> Path:
    """An .mmdb holding the spec's networks, dated (build_epoch) as the spec says."""
    doc = json.loads(spec.read_text(encoding="utf-8"))
    built = dt.datetime.combine(dt.date.fromisoformat(doc["build_date"]), dt.time(12), dt.UTC)
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for cidr, record in doc["networks"].items():
        writer.insert_network(IPSet([cidr]), record)
    with mock.patch("mmdb_writer.time.time", return_value=built.timestamp()):
        writer.to_db_file(str(out))
    return out


def step_args(step: str, work: Path) -> list[str]:
    """The source options of `catalogue update` for one snapshot of the history."""
    geoip = write_geoip(HISTORY / f"geoip-{step}.json", work / f"geoip-{step}.mmdb")
    return [
        "--delegated", str(HISTORY / f"delegated-apnic-extended-{step}"),
        str(HISTORY / "delegated-ripencc-extended-20260901"),
        "--pfx2as", str(HISTORY / f"routeviews-rv2-{step}-1200.pfx2as"),
        "--asn", ASN, "--geoip", str(geoip),
    ]
