"""`sensor-plugins replay PCAP...`: run the real engines over pcaps with the generated content.

Suricata reports its alerts; Zeek, with the package loaded after ``local``, reports the
conn.log rows it tagged (``nk_range``/``nk_side``) and its ``NKSensor::*`` notices. Both
land in one table and one JSON shape. The table groups repeated rows (same pcap, engine,
id and endpoints) into one row with a count, since one conversation can raise a packet
rule many times; ``--json`` prints every event as it came, one JSON object a line.

Every pcap runs on its own: a capture that an engine cannot read is reported on its own
row, the others still get their results, and the exit code is 2 at the end.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sensor_plugins.atomic import temp_dir
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.command import DEFAULT_SURICATA_OUT, DEFAULT_ZEEK_OUT
from sensor_plugins.runners import run_name, suricata, zeek

COLUMNS = ("PCAP", "ENGINE", "ID", "REV", "COUNT", "SRC", "DST", "MSG")
ENGINES = ("suricata", "zeek", "both")
# Classic pcap in either byte order and precision, and pcapng's section header block.
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  PCAPNG_MAGIC)
PCAPNG_INTERFACE_BLOCK = 1
PCAPNG_PACKET_BLOCKS = (2, 3, 6)  # packet (obsolete), simple packet, enhanced packet
# How much of a capture is read for its header: a pcapng's interface blocks come before
# its first packet, and a few of them fit in far less.
HEADER_BYTES = 1024 * 1024


class ReplayError(SensorPluginsError):
    """A pcap that cannot be replayed, or an engine that is not there."""


@dataclass(frozen=True)
class Event:
    """One thing an engine reported for a pcap: an alert, a tagged connection or a notice."""

    pcap: str
    engine: str
    id: str
    src: str
    dst: str
    msg: str
    rev: str = "-"
    detail: dict[str, str | int] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> str:
        return json.dumps({"pcap": self.pcap, "engine": self.engine, "id": self.id, "src": self.src,
                           "dst": self.dst, "msg": self.msg, **self.detail}, ensure_ascii=True)


def from_alert(alert: suricata.Alert) -> Event:
    return Event(alert.pcap, "suricata", str(alert.sid), alert.src, alert.dst, alert.msg, str(alert.rev),
                 {"sid": alert.sid, "rev": alert.rev})


def from_zeek(run: zeek.ZeekRun) -> list[Event]:
    events = [Event(tag.pcap, "zeek", "conn", tag.src, tag.dst, f"nk_range={tag.nk_range} nk_side={tag.nk_side}",
                    detail={"kind": "conn", "uid": tag.uid, "nk_range": tag.nk_range, "nk_side": tag.nk_side})
              for tag in run.tags]
    events += [Event(n.pcap, "zeek", n.note, n.src, n.dst, f"{n.msg} [{n.sub}]",
                     detail={"kind": "notice", "note": n.note, "sub": n.sub})
               for n in run.notices]
    return events


def printable(text: str) -> str:
    """Terminal-safe text: a hostile rule message or file name cannot move the cursor."""
    return "".join(c if c.isprintable() else "?" for c in text)


def check_capture(pcap: Path) -> list[int]:
    """Refuse, before any engine starts, a file that is not a pcap or pcapng capture; its link types."""
    # Before the open: opening a FIFO would block until a writer came.
    if pcap.exists() and not pcap.is_file():
        raise ReplayError(f"{pcap}: not a regular file")
    try:
        with pcap.open("rb") as handle:
            head = handle.read(HEADER_BYTES)
    except OSError as exc:
        raise ReplayError(f"{pcap}: cannot read: {exc.strerror or exc}") from exc
    if head[:4] not in CAPTURE_MAGICS:
        raise ReplayError(f"{pcap}: not a pcap or pcapng capture")
    return pcapng_link_types(pcap, head) if head[:4] == PCAPNG_MAGIC else [pcap_link_type(pcap, head)]


def pcap_link_type(pcap: Path, head: bytes) -> int:
    """The link type of a classic pcap: the last field of its 24-byte file header."""
    if len(head) < 24:
        raise ReplayError(f"{pcap}: the pcap file header is cut short ({len(head)} of 24 bytes)")
    order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    # The upper bits may carry the FCS length; libpcap's LT_LINKTYPE keeps the low 26.
    return struct.unpack(f"{order}I", head[20:24])[0] & 0x03FFFFFF


def pcapng_link_types(pcap: Path, head: bytes) -> list[int]:
    """The link types of a pcapng's interfaces: every Interface Description Block before the first packet."""
    types: list[int] = []
    offset, order = 0, "<"
    while offset + 12 <= len(head):
        kind = head[offset:offset + 4]
        if kind == PCAPNG_MAGIC:
            # Each section says its own byte order.
            order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(head[offset + 8:offset + 12], "")
            if not order:
                raise ReplayError(f"{pcap}: pcapng section header at byte {offset} has no byte-order magic")
        block_type, length = struct.unpack(f"{order}II", head[offset:offset + 8])
        if length < 12 or length % 4:
            raise ReplayError(f"{pcap}: pcapng block at byte {offset} has an impossible length {length}")
        if block_type in PCAPNG_PACKET_BLOCKS:
            break
        if block_type == PCAPNG_INTERFACE_BLOCK:
            if offset + 10 > len(head):
                break
            types.append(struct.unpack(f"{order}H", head[offset + 8:offset + 10])[0])
        offset += length
    if not types:
        raise ReplayError(f"{pcap}: the pcapng capture describes no interface in its first "
                          f"{HEADER_BYTES // 1024} KiB, so its link type is unknown")
    return types


def unreadable_link_type(link_types: Sequence[int], engine: str) -> str | None:
    """Why ``engine`` cannot read a capture of these link types, or None when it can."""
    known = suricata.LINK_TYPES if engine == "suricata" else zeek.LINK_TYPES
    for link_type in link_types:
        if link_type not in known:
            names = ", ".join(f"{n} ({v})" for v, n in sorted(known.items()))
            return f"link type {link_type} cannot be read by {engine.capitalize()}; it reads {names}"
    return None


def table_rows(pcaps: Sequence[Path], events: Sequence[Event], failures: dict[tuple[str, str], str],
               engines: Sequence[str]) -> list[tuple[str, ...]]:
    counts = Counter((e.pcap, e.engine, e.id, e.rev, e.src, e.dst, e.msg) for e in events)
    rows = []
    for pcap in pcaps:
        for engine in engines:
            key = (engine, str(pcap))
            if key in failures:
                rows.append((pcap.name, engine, "-", "-", "0", "-", "-", f"(error: {failures[key]})"))
                continue
            mine = [(k, n) for k, n in counts.items() if k[0] == str(pcap) and k[1] == engine]
            if not mine:
                rows.append((pcap.name, engine, "-", "-", "0", "-", "-", "(nothing reported)"))
            for (_pcap, _engine, ident, rev, src, dst, msg), n in sorted(mine, key=lambda kv: kv[0][2:]):
                rows.append((pcap.name, engine, ident, rev, str(n), src, dst, msg))
    return [tuple(printable(cell) for cell in row) for row in rows]


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in [COLUMNS, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def chosen_engines(requested: str | None) -> list[str]:
    """``both`` where Zeek is installed, Suricata alone otherwise, unless one is asked for."""
    if requested is None:
        return ["suricata", "zeek"] if zeek.find_zeek() is not None else ["suricata"]
    return ["suricata", "zeek"] if requested == "both" else [requested]


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (engine, pcap) -> why


def replay_all(pcaps: Sequence[Path], engines: Sequence[str], rules: Path, zeek_package: Path, log_dir: Path,
               *, bittorrent_everywhere: bool = False, zeek_scripts: Sequence[Path] = ()) -> Outcome:
    """Each pcap through each engine on its own; a failure is kept for its pcap and engine alone."""
    # Missing engines and content are whole-run errors, found before any pcap runs.
    if "suricata" in engines:
        suricata.find_suricata()
        names = suricata.default_rule_files(bittorrent_everywhere)
        suricata.check_rules_dir(Path(rules), names)
    if "zeek" in engines:
        zeek.require_zeek()
        if not (Path(zeek_package) / "__load__.zeek").is_file():
            raise ReplayError(f"{zeek_package}: not a generated Zeek package (run `sensor-plugins generate`)")
        for script in zeek_scripts:
            if not Path(script).is_file():
                raise ReplayError(f"{script}: --zeek-script is not a file")
    redefs = ["redef NKSensor::bittorrent_scope = NKSensor::ALL_TRAFFIC;"] if bittorrent_everywhere else []
    outcome = Outcome()
    scripts = ("local", *(str(Path(s).resolve()) for s in zeek_scripts))
    for i, pcap in enumerate(pcaps):
        try:
            link_types = check_capture(pcap)
        except ReplayError as exc:
            outcome.failures.update({(engine, str(pcap)): str(exc) for engine in engines})
            continue
        for engine in engines:
            # An engine started on a link type it cannot decode fails only after a minute
            # (Suricata) or reads garbage (Zeek); the header says so at once.
            why = unreadable_link_type(link_types, engine)
            if why is not None:
                outcome.failures[(engine, str(pcap))] = f"{pcap}: {why}"
                continue
            try:
                if engine == "suricata":
                    # The runner names its own per-pcap folder inside the one given.
                    alerts = suricata.replay([pcap], rules, log_dir / "suricata" / run_name(i, pcap),
                                             bittorrent_everywhere=bittorrent_everywhere)
                    outcome.events += [from_alert(a) for a in alerts]
                else:
                    run = zeek.run_pcap(pcap, zeek_package, log_dir / "zeek" / run_name(i, pcap), redefs=redefs,
                                        scripts=scripts)
                    # The runner names the pcap by its resolved path; the table files rows
                    # under the name the user gave, as it does Suricata's.
                    outcome.events += [replace(event, pcap=str(pcap)) for event in from_zeek(run)]
            except SensorPluginsError as exc:
                outcome.failures[(engine, str(pcap))] = str(exc)
    return outcome


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay pcaps through real Suricata and Zeek with the generated content and list what they report",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("pcaps", type=Path, nargs="+", metavar="PCAP")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="which engine(s) to run (default: both where zeek is installed, else suricata)")
    parser.add_argument("--rules", type=Path, default=DEFAULT_SURICATA_OUT, metavar="DIR",
                        help=f"generated rules directory (default: {DEFAULT_SURICATA_OUT})")
    parser.add_argument("--zeek-package", type=Path, default=DEFAULT_ZEEK_OUT, metavar="DIR",
                        help=f"generated Zeek package (default: {DEFAULT_ZEEK_OUT})")
    parser.add_argument("--zeek-script", type=Path, action="append", default=[], metavar="FILE",
                        help="a site script for Zeek to load after local and the package, such as the "
                             "trust-test-ca.zeek that `pcaps` writes (repeatable)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per event: pcap, engine, id, src, dst, msg and the engine's own fields")
    parser.add_argument("--bittorrent-everywhere", action="store_true",
                        help="also flag BitTorrent between any hosts (Suricata's optional rules, Zeek's "
                             "bittorrent_scope = ALL_TRAFFIC)")
    parser.add_argument("--log-dir", type=Path, metavar="DIR",
                        help="keep the engines' logs here (default: a temporary directory, removed after)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engines = chosen_engines(args.engine)

    def replay_into(log_dir: Path) -> Outcome:
        return replay_all(args.pcaps, engines, args.rules, args.zeek_package, log_dir,
                          bittorrent_everywhere=args.bittorrent_everywhere, zeek_scripts=args.zeek_script)

    if args.log_dir is not None:
        if args.log_dir.exists() and not args.log_dir.is_dir():
            raise ReplayError(f"{args.log_dir}: --log-dir is not a directory")
        outcome = replay_into(args.log_dir)
    else:
        with temp_dir("sensor-plugins-replay-") as tmp:
            outcome = replay_into(tmp)
    if args.json:
        for event in outcome.events:
            print(event.to_json())
    else:
        print(format_table(table_rows(args.pcaps, outcome.events, outcome.failures, engines)))
    if outcome.failures:
        # One line however many failed; the table names each capture and engine.
        first = next(iter(outcome.failures.values()))
        print(f"sensor-plugins: error: {len(outcome.failures)} replay(s) failed; first: {first}", file=sys.stderr)
        return 2
    return 0
