"""The ``sensor-plugins`` command: one subcommand a module, each registering itself.

Every failure that a user can cause is a SensorPluginsError and ends as one line on
stderr with exit code 2; exit code 1 is kept for "ran fine and found something".
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sensor_plugins import __version__
from sensor_plugins.errors import SensorPluginsError

# Each module exposes ``register(subparsers)``, which adds its parser and sets
# ``func(args) -> int`` as the parser default.
COMMAND_MODULES: tuple[str, ...] = (
    "sensor_plugins.generate",
    "sensor_plugins.feeds_cli",
    "sensor_plugins.pcaps",
    "sensor_plugins.replay",
    "sensor_plugins.deploy",
    "sensor_plugins.update_source",
    "sensor_plugins.analyze",
    "sensor_plugins.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensor-plugins",
        description="Zeek and Suricata content for North Korea's networks, Tor and BitTorrent.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SensorPluginsError as exc:
        print(f"sensor-plugins: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # A closed pipe (`... | head`) is the reader's choice, not an error of ours.
        sys.stderr.close()
        return 0
