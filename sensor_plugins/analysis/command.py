"""``sensor-plugins analyze``: find weak TLS, Tor, BitTorrent and NK traffic in Zeek logs.

Exit codes: 0 no findings, 1 findings, 2 error (raised as SensorPluginsError).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from sensor_plugins.analysis.engines import ENGINES
from sensor_plugins.analysis.logfiles import find_logs, using_read_limits
from sensor_plugins.analysis.options import (
    FORMATS,
    IN_MEMORY_MAX_BYTES,
    SCOPES,
    add_read_limit_arguments,
    read_limits_of,
)
from sensor_plugins.atomic import check_output_file
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.clients import load_client_table
from sensor_plugins.inputs.options import add_input_arguments, finite_float, input_files, load_inputs

# Above this much input, a terminal user gets a progress display instead of silence.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="find weak TLS, Tor, BitTorrent and NK traffic in Zeek logs",
        description="Post-process Zeek logs (TSV or JSON, plain or gzip-rotated) into findings. "
        "Exit code 0: no findings; 1: findings; 2: error.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="Zeek log files or directories; with --engine spark also globs and URIs "
                        "(file://, hdfs://, s3a://)")
    add_input_arguments(parser)
    parser.add_argument("--clients", type=Path, action="append", metavar="FILE",
                        help="a known-client table (ja4<TAB>name<TAB>source lines) added to the bundled one; "
                        "repeatable")
    add_read_limit_arguments(parser)
    parser.add_argument("--scope", choices=SCOPES, default="nk",
                        help="nk: only connections with an endpoint in the catalogue (default); all: every one")
    parser.add_argument("--format", choices=(*FORMATS, "parquet"), dest="fmt",
                        help="default: table on a terminal, jsonl otherwise; parquet (a directory "
                        "partitioned by date and category) needs --engine spark and --out")
    parser.add_argument("--out", type=Path, help="write the findings here (atomically) instead of stdout")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: polars on this machine (default); spark: Apache Spark (sensor-plugins[spark])")
    parser.add_argument("--master", default="local[*]",
                        help="with --engine spark: the Spark master URL (default local[*])")
    parser.add_argument("--follow", type=Path, metavar="DIR", help="tail the live logs in DIR")
    parser.add_argument("--checkpoint", type=Path, metavar="F",
                        help="with --follow: file of read offsets, so a restart neither repeats nor loses")
    parser.add_argument("--poll", type=finite_float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--once", action="store_true",
                        help="with --follow: read what is there now, then stop")
    parser.set_defaults(func=run)


@contextlib.contextmanager
def progress(enabled: bool, label: str) -> Iterator[None]:
    """A spinner with elapsed time on stderr: polars streams the whole query in one go,
    so there is no row count to show, only that work is going on."""
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        bar.add_task(label, total=None)
        yield


def tune_allocator(input_size: int | None) -> None:
    """Set polars' allocator for this input; it takes effect only if polars is not loaded yet.

    polars allocates through jemalloc, which by default keeps freed pages for 10 s. On a
    large input the phases (scan, group-by, output) each peak in turn and the kept pages
    add up: 10M conn rows peak at 1.8 GB with the default and 1.4 GB when pages go back
    at once. On a small input giving pages back at once only costs time: on 1M rows it
    adds 1.1 s of system time to a 3 s run. A long-running follower (``input_size``
    None) gives them back. A user's own setting wins.
    """
    if input_size is None or input_size > IN_MEMORY_MAX_BYTES:
        os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")


def run(args: argparse.Namespace) -> int:
    with using_read_limits(read_limits_of(args)):
        return run_with_limits(args)


def run_with_limits(args: argparse.Namespace) -> int:
    if args.follow is not None:
        tune_allocator(None)
        from sensor_plugins.analysis.follow import run_follow

        return run_follow(args)
    if not args.paths:
        raise SensorPluginsError("analyze: give at least one log file or directory, or --follow DIR")
    if args.engine == "spark":
        from sensor_plugins.analysis.engines import run_spark

        return run_spark(args)
    if args.fmt == "parquet":
        raise SensorPluginsError("analyze: --format parquet needs --engine spark")
    args.paths = [Path(p) for p in args.paths]
    # One walk of the log folders serves the output check, the allocator and the loader.
    inventory = find_logs(args.paths)
    if args.out is not None:
        check_output_file(args.out, [*inventory.files, *input_files(args)])
    size = inventory.size
    tune_allocator(size)
    # Imported only now: polars reads its allocator settings when it loads.
    import polars as pl

    from sensor_plugins.analysis.detect import analysis
    from sensor_plugins.analysis.detect.client import NO_FINGERPRINTS_NOTE, has_fingerprints
    from sensor_plugins.analysis.logs import load_logset
    from sensor_plugins.analysis.output import choose_format, write_findings

    catalogue, tor = load_inputs(args)
    clients = load_client_table(args.clients)
    fmt = choose_format(args.fmt, args.out, sys.stdout)
    show = sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES
    with progress(show, f"analyzing {size / 1e6:.0f} MB of Zeek logs"):
        logs = load_logset(args.paths, inventory.kinds)
        if not logs.kinds():
            raise SensorPluginsError(f"{args.paths[0]}: no Zeek logs found (conn, ssl, x509, http, ...)")
        if logs.ssl is not None and not has_fingerprints(logs.ssl.collect_schema()):
            print(NO_FINGERPRINTS_NOTE, file=sys.stderr)
        try:
            # Sized again now the logs have been read: a gzip log counts as what it expanded to.
            in_memory = inventory.size <= IN_MEMORY_MAX_BYTES
            small, nk = analysis(logs, catalogue, tor, scope=args.scope, in_memory=in_memory, clients=clients)
            found = write_findings(small, nk, fmt, args.out)
        except pl.exceptions.PolarsError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SensorPluginsError(f"analyze: cannot read the logs: {first[:200]}") from exc
    return 1 if found else 0
