"""Where ``analyze`` runs: on one machine (polars, the default) or on Apache Spark (``spark``).

Both engines execute the same detection code, ``sensor_plugins.analysis.detect``; the Spark
engine only decides which rows meet in one polars call (see ``spark.py``). Nothing here
imports pyspark: the command's parser reads ``ENGINES`` whether or not it is installed.
"""

from __future__ import annotations

import argparse

from sensor_plugins.errors import SensorPluginsError

ENGINES = ("local", "spark")
INSTALL_HINT = "analyze --engine spark needs pyspark and Java 17: pip install 'sensor-plugins[spark]'"


def run_spark(args: argparse.Namespace) -> int:
    """``analyze --engine spark``; pyspark is an optional extra, so its absence is one line."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SensorPluginsError(INSTALL_HINT) from None
    from sensor_plugins.analysis.engines.spark import run

    return run(args)
