"""`sensor-plugins replay PCAP...`: run real Suricata over pcaps with the generated rules.

The table groups repeated alerts (same pcap, sid and endpoints) into one row with a
count, since one conversation can raise a packet rule many times; ``--json`` prints every
alert as it came, one JSON object a line.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sensor_plugins.generate.command import DEFAULT_SURICATA_OUT
from sensor_plugins.runners.suricata import Alert, replay

COLUMNS = ("PCAP", "SID", "REV", "COUNT", "SRC", "DST", "MSG")


def printable(text: str) -> str:
    """Terminal-safe text: a hostile rule message or file name cannot move the cursor."""
    return "".join(c if c.isprintable() else "?" for c in text)


def table_rows(pcaps: Sequence[Path], alerts: Sequence[Alert]) -> list[tuple[str, ...]]:
    counts = Counter((a.pcap, a.sid, a.rev, a.src, a.dst, a.msg) for a in alerts)
    rows = []
    for pcap in pcaps:
        mine = [(key, n) for key, n in counts.items() if key[0] == str(pcap)]
        if not mine:
            rows.append((pcap.name, "-", "-", "0", "-", "-", "(no alerts)"))
        for (_pcap, sid, rev, src, dst, msg), n in sorted(mine, key=lambda kv: kv[0][1:]):
            rows.append((pcap.name, str(sid), str(rev), str(n), src, dst, msg))
    return [tuple(printable(cell) for cell in row) for row in rows]


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in [COLUMNS, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay pcaps through real Suricata with the generated rules and list the alerts",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("pcaps", type=Path, nargs="+", metavar="PCAP")
    parser.add_argument("--rules", type=Path, default=DEFAULT_SURICATA_OUT, metavar="DIR",
                        help=f"generated rules directory (default: {DEFAULT_SURICATA_OUT})")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per alert: pcap, sid, rev, msg, src, dst")
    parser.add_argument("--bittorrent-everywhere", action="store_true",
                        help="also load the optional rules that flag BitTorrent between any hosts")
    parser.add_argument("--log-dir", type=Path, metavar="DIR",
                        help="keep Suricata's logs here (default: a temporary directory, removed after)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    def replay_into(log_dir: Path) -> list[Alert]:
        return replay(args.pcaps, args.rules, log_dir, bittorrent_everywhere=args.bittorrent_everywhere)

    if args.log_dir is not None:
        alerts = replay_into(args.log_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="sensor-plugins-replay-") as tmp:
            alerts = replay_into(Path(tmp))
    if args.json:
        for alert in alerts:
            print(alert.to_json())
    else:
        print(format_table(table_rows(args.pcaps, alerts)))
    return 0
