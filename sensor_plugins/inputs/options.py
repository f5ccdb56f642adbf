"""The two inputs every command starts from, the catalogue and the Tor lists, as CLI options.

generate, analyze and report must agree on how a user names these files, so the options
and their defaults (the bundled catalogue and lists) are defined once, here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sensor_plugins.inputs.catalogue import Catalogue, load_catalogue
from sensor_plugins.inputs.feeds import TorList, load_tor_list


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalogue", type=Path, metavar="FILE",
                        help="range catalogue YAML (default: the bundled one)")
    parser.add_argument(
        "--tor-list", type=Path, action="append", dest="tor_lists", metavar="FILE",
        help="a Tor relay/exit list (exit-addresses, plain or Onionoo JSON); repeatable; "
             "default: the bundled lists",
    )


def load_from_paths(catalogue: Path | None, tor_lists: Sequence[Path] | None) -> tuple[Catalogue, TorList]:
    """The catalogue and the merged Tor lists; the bundled ones for what is not given."""
    return load_catalogue(catalogue), load_tor_list(tor_lists or None)


def load_inputs(args: argparse.Namespace) -> tuple[Catalogue, TorList]:
    """The catalogue and merged Tor list named by ``add_input_arguments``'s options."""
    return load_from_paths(args.catalogue, args.tor_lists)
