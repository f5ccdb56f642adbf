"""Where ``analyze`` runs: on one machine (polars, the default) or on Apache Spark (``spark``).

Both engines execute the same detection code, ``sensor_plugins.analysis.detect``; the Spark
engine only decides which rows meet in one polars call (see ``spark.py``).
"""

ENGINES = ("local", "spark")
