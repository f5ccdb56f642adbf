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
# ``func(args) -> int`` as the parser default. The command name is known here so that
# only its own module is imported: importing all of them pulls in scapy, cryptography
# and jinja2, close to a second of start-up that `analyze` on a cron job does not need.
COMMANDS: dict[str, str] = {
    "generate": "sensor_plugins.generate.command",
    "feeds": "sensor_plugins.inputs.command",
    "catalogue": "sensor_plugins.inputs.command",
    "pcaps": "sensor_plugins.scenarios.pcaps",
    "replay": "sensor_plugins.sensors.replay",
    "deploy": "sensor_plugins.sensors.deploy",
    "update-source": "sensor_plugins.sensors.update_source",
    "analyze": "sensor_plugins.analysis.command",
    "report": "sensor_plugins.report.command",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone, or for every command when it is None or unknown."""
    parser = argparse.ArgumentParser(
        prog="sensor-plugins",
        description="Zeek and Suricata content for North Korea's networks, Tor and BitTorrent.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # One module may register several commands (inputs.command: feeds and catalogue).
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not an option."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(requested_command(argv))
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
