"""The ``sensor-plugins`` command: one subcommand a module, each registering itself.

Every failure that a user can cause is a SensorPluginsError and ends as one line on
stderr with exit code 2; exit code 1 is kept for "ran fine and found something". A stop
signal (SIGTERM, SIGINT, SIGHUP) unwinds the command like a failed write, putting back
what it wrote and removing its temp files, and ends as one line with 128 + the signal's
number (143, 130, 129), as a shell reports a process a signal ended.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from sensor_plugins import __version__
from sensor_plugins.atomic import Interrupted, stop_signals_raise
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


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone, or for every command when it is None or unknown."""
    parser = OneLineParser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # A usage error (already one line on stderr) or --help; a caller in-process gets
        # the exit code back instead of an exception.
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with stop_signals_raise():
            code = int(args.func(args) or 0)
            # Buffered output that cannot be written (a full disk, a closed pipe) must fail
            # here, with our message, not after main returns as an interpreter traceback.
            sys.stdout.flush()
        return code
    except SensorPluginsError as exc:
        return fail(str(exc))
    except Interrupted as exc:
        return fail(f"{args.command}: {exc}", exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away before the output ended; the output is incomplete, and a
        # script that piped it should know.
        silence_stdout()
        return fail("stdout: the reader closed the pipe before the output ended; the output is incomplete")
    except OSError as exc:
        # A file system failure that no command turned into its own message yet: still one
        # line naming the file, never a traceback.
        silence_stdout()
        where = exc.filename if exc.filename is not None else "stdout"
        return fail(f"{where}: {exc.strerror or exc}")
    except Exception as exc:
        # A bug of ours, not a user's mistake: still one line and exit 2 for the caller,
        # with what is needed to report it; SENSOR_PLUGINS_DEBUG=1 shows the traceback.
        if os.environ.get("SENSOR_PLUGINS_DEBUG"):
            raise
        first = (str(exc).splitlines() or [""])[0][:200]
        return fail(f"{args.command}: internal error {type(exc).__name__}: {first} "
                    "(please report it; SENSOR_PLUGINS_DEBUG=1 shows the traceback)")


def fail(message: str, code: int = 2) -> int:
    print(f"sensor-plugins: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
