"""`sensor-plugins update-source`: the generated rules as a suricata-update source archive.

suricata-update copies a dataset that a rule loads only when the dataset file comes in
the same archive as the rule (it then rewrites the rule's ``load`` to its own copy), so
a bare `.rules` URL would leave the Tor rules disabled. The archive is byte-identical
for the same input, so suricata-update's checksum sees a change only when there is one.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from sensor_plugins.atomic import check_output_file, write_bytes_atomic
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.sensors.deploy import (
    DEFAULT_SURICATA_SOURCE,
    add_profile_argument,
    collect_files,
    dataset_refs,
    source_profile,
)

ARCHIVE_DIR = "rules"
DEFAULT_ARCHIVE = Path("nksensor-rules.tar.gz")


def default_rule_files() -> list[str]:
    from sensor_plugins.generate.suricata import MAIN_RULES

    return [MAIN_RULES]


def archive_members(source: Path, rule_files: Sequence[str], profile: str | None = None) -> dict[str, bytes]:
    """The chosen rules files and every dataset file they load, by name in the archive.

    With ``profile`` the source must have been generated with that `generate --profile`.
    """
    files = collect_files(source)
    source_profile(source, files, profile)
    missing = [name for name in rule_files if name not in files]
    if missing:
        raise SensorPluginsError(f"{source}: no rules file {', '.join(missing)} (run `sensor-plugins generate`)")
    rules = {name: files[name] for name in rule_files}
    members = dict(rules)
    for dataset in dataset_refs(rules):
        if dataset not in files:
            raise SensorPluginsError(f"{source}: the rules load dataset {dataset!r}, which is not there")
        members[dataset] = files[dataset]
    return {f"{ARCHIVE_DIR}/{name}": data for name, data in sorted(members.items())}


def archive_bytes(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    # gzip stamps the time unless told otherwise; a fixed one keeps the bytes reproducible.
    return gzip.compress(raw.getvalue(), mtime=0)


def write_update_source(
    source: Path, out: Path, rule_files: Sequence[str] | None = None, validate: bool = True,
    profile: str | None = None,
) -> list[str]:
    """Write the archive; returns the names it holds.

    The rules are checked with ``suricata -T`` first (where Suricata is installed): every
    sensor that pulls the source would otherwise get a ruleset its engine refuses.
    """
    names = list(rule_files) if rule_files else default_rule_files()
    members = archive_members(source, names, profile)
    check_output_file(out, [source / name for name in names])
    if validate and shutil.which("suricata") is not None:
        from sensor_plugins.runners.suricata import test_rules

        try:
            test_rules(source, rule_files=names)
        except SensorPluginsError as exc:
            raise SensorPluginsError(f"{exc}; the archive was not written") from exc
    write_bytes_atomic(out, archive_bytes(members))
    return list(members)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "update-source",
        help="package the generated rules and their datasets as a suricata-update source",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--suricata-out", type=Path, default=DEFAULT_SURICATA_SOURCE, metavar="DIR",
                        help="the generated Suricata rules (default: suricata_rules)")
    parser.add_argument("--rules", action="append", metavar="NAME",
                        help="a rules file to ship; repeatable (default: the main rules file only)")
    parser.add_argument("--out", type=Path, default=DEFAULT_ARCHIVE, metavar="FILE",
                        help=f"the archive to write (default: {DEFAULT_ARCHIVE})")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip the suricata -T check of the rules (not recommended)")
    add_profile_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = write_update_source(args.suricata_out, args.out, args.rules, validate=not args.no_validate,
                                profile=args.profile)
    print(f"wrote {args.out}: {', '.join(names)}")
    print(f"on each sensor: suricata-update add-source nksensor file://{args.out.resolve()}")
    return 0
