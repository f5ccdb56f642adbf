"""``analyze --engine spark``: the local detections, run by Spark over a fleet's logs.

No detection is written twice. Spark reads the logs (through zat, ``zat_spark.py``), then
only decides which rows meet in one call of the local polars code from
``sensor_plugins.analysis.detect``:

- per row (``mapInArrow``): each batch is typed exactly as the local reader types it, and
  conn.log is cut to the rows a detection can use by the local ``scoped`` and
  ``conn_candidates`` expressions; nk-traffic's partial groups (``nk_groups``) and the Tor
  list matches (``all_tor_matches``) are computed per batch;
- per connection (shuffle by uid bucket, ``groupBy().applyInArrow``): all rows of every log
  with uids in one bucket, and the x509.log rows their leaf certificates name (routed to
  the bucket by a join), go through the local ``prepare``, ``materialise``,
  ``detection_plan`` and ``finalise``, as one machine would run them on those rows;
- keyed across files (shuffle by the detection's own key): tor-repeat by (host, Tor
  address) with ``tor_repeat``, the DHT fan-out by (host, UDP port) with ``dht``, and
  nk-traffic by (NK host, peer, service, day) with ``merge_nk_groups`` and
  ``nk_traffic_findings``.

Every key of a keyed detection lies in one bucket, so each bucket's result is what the
local engine finds for those keys, and the union is the local result.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import re
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sensor_plugins.analysis.detect.client import NO_FINGERPRINTS_NOTE, has_fingerprints
from sensor_plugins.analysis.detect.frames import empty, ensure
from sensor_plugins.analysis.detect.nk import scoped
from sensor_plugins.analysis.detect.pipeline import (
    CONN_COLUMNS,
    TOR_MATCH_COLUMNS,
    all_tor_matches,
    conn_candidates,
    detection_plan,
    finalise,
    materialise,
    prepare,
)
from sensor_plugins.analysis.detect.tor import tor_repeat
from sensor_plugins.analysis.detect.torrent import dht
from sensor_plugins.analysis.detect.traffic import NK_GROUP_KEYS, merge_nk_groups, nk_groups, nk_traffic_findings
from sensor_plugins.analysis.engines.zat_spark import (
    LinkDir,
    Source,
    find_sources,
    spark_arrow,
    spark_name,
    typed_frame,
)
from sensor_plugins.analysis.findings import FIELDS, FINDING_SCHEMA
from sensor_plugins.analysis.logs import LogSet
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import Catalogue
from sensor_plugins.inputs.clients import ClientTable, load_client_table
from sensor_plugins.inputs.feeds import TorList

# The logs a detection reads; the others (dns, weird, intel) are not read at all.
USED_KINDS = ("conn", "ssl", "x509", "http", "notice", "files")
# Large Arrow batches: each costs one polars query, whose fixed cost is a few ms.
ARROW_BATCH_ROWS = 131072
DRIVER_MEMORY = "4g"
ORDER = ["ts", "category", "reason", "uid", "orig_h", "resp_h"]


# pyspark 4 needs Java 17; Debian 12 installs it here, beside any other java on PATH.
JAVA17_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


def on_loopback(master: str) -> bool:
    """A master in this process or on this host: the driver then listens on loopback only."""
    return master.startswith("local") or "://127.0.0.1:" in master or "://localhost:" in master


def spark_environment(loopback: bool = True) -> dict[str, str]:
    """The variables a Spark JVM and its Python workers get here: this Python, Java 17, and
    loopback unless the master is elsewhere (then the driver must be reachable)."""
    env = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    if loopback:
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
    if "JAVA_HOME" not in os.environ and os.path.isdir(JAVA17_HOME):
        env["JAVA_HOME"] = JAVA17_HOME
    return {k: os.environ.get(k, v) for k, v in env.items()}


def session(master: str, app: str = "sensor-plugins analyze", shuffle_partitions: int | None = None) -> SparkSession:
    """A Spark session bound to loopback, in UTC, with the workers on this very Python.

    ``shuffle_partitions`` is also the number of buckets each grouped detection uses;
    by default twice the cores Spark has (at least 4), so a bucket fits one executor.
    """
    loopback = on_loopback(master)
    os.environ.update(spark_environment(loopback))
    # pyspark warns at every Arrow UDF that pandas 3 is not fully supported; no pandas is used.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    try:
        builder = SparkSession.builder.master(master).appName(app)
        # The driver collects the findings for JSONL/CSV/table output (3M conn rows give
        # 780,000 of them) and, with a local master, is the executor too: Spark's 1 GB
        # default loses task results ("TaskResultLost") at 3M rows here. A user's
        # SPARK_DRIVER_MEMORY wins.
        if "SPARK_DRIVER_MEMORY" not in os.environ:
            builder = builder.config("spark.driver.memory", DRIVER_MEMORY)
        if loopback:
            builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        spark = (
            builder
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
            # Spark 4 sizes each Arrow batch row by row against this limit, which costs the
            # JVM more than the batch itself (a quarter of a mapInArrow pass, measured here);
            # the row limit above already bounds a batch.
            .config("spark.sql.execution.arrow.maxBytesPerBatch", str(2**31 - 1))
            .config("spark.sql.adaptive.enabled", "true")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        parts = shuffle_partitions or max(4, 2 * spark.sparkContext.defaultParallelism)
        spark.conf.set("spark.sql.shuffle.partitions", str(parts))
        return spark
    except Exception as exc:  # the JVM gateway fails with many exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SensorPluginsError(f"analyze: cannot start Spark ({master}): {first[:200]} (is Java 17 installed?)") \
            from exc


# --- Arrow <-> polars at the boundary: Spark names have no dots ------------------------------

def spark_types(frame: pl.DataFrame | pl.LazyFrame) -> str:
    """A Spark DDL schema for a polars frame (names encoded with ``spark_name``)."""
    ddl = {pl.Int64: "bigint", pl.Int8: "tinyint", pl.Float64: "double", pl.Boolean: "boolean", pl.Date: "date",
           pl.Utf8: "string"}
    parts = []
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Datetime):
            kind = "timestamp"
        elif isinstance(dtype, pl.List):
            kind = "array<string>"
        else:
            kind = ddl[dtype.base_type()]  # type: ignore[index]
        parts.append(f"`{spark_name(name)}` {kind}")
    return ", ".join(parts)


def decoded(batch: object, names: dict[str, str]) -> pl.DataFrame:
    """An Arrow batch or table as polars, with the Zeek names back."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return frame.rename({k: v for k, v in names.items() if k in frame.columns})


def encoded(frame: pl.DataFrame) -> list:
    return spark_arrow(frame.rename({n: spark_name(n) for n in frame.columns})).to_batches()


def empty_of(types: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=types)


@dataclass
class Log:
    """One log kind in Spark: rows with the local reader's types, and those types."""

    frame: DataFrame
    types: dict[str, pl.DataType]

    @property
    def names(self) -> dict[str, str]:
        return {spark_name(n): n for n in self.types}


def read_logs(spark: SparkSession, sources: Sequence[Source]) -> dict[str, Log]:
    """One typed DataFrame per kind: every header group read by zat, unioned by column."""
    logs: dict[str, Log] = {}
    for source in sources:
        if source.kind not in USED_KINDS:
            continue
        frame, types = typed_frame(spark, source)
        if source.kind in logs:
            have = logs[source.kind]
            clash = [n for n, t in types.items() if n in have.types and have.types[n] != t]
            if clash:
                raise SensorPluginsError(f"analyze: {source.kind} logs disagree on the type of {clash[0]}")
            logs[source.kind] = Log(have.frame.unionByName(frame, allowMissingColumns=True),
                                    {**have.types, **types})
        else:
            logs[source.kind] = Log(frame, dict(types))  # type: ignore[arg-type]
    return logs


# --- per-row stages --------------------------------------------------------------------------

def row_filter(kind: str, catalogue: Catalogue, tor_addrs: list[str], scope: str) -> Callable[[pl.LazyFrame],
                                                                                           pl.LazyFrame] | None:
    """The rows of ``kind`` that ``prepare`` may keep, by the expressions ``prepare`` uses; a
    superset is enough, since the per-connection stage runs ``prepare`` itself."""
    if kind == "conn":
        return lambda lf: scoped(ensure(lf, CONN_COLUMNS), catalogue, scope).filter(conn_candidates(tor_addrs))
    if kind in ("ssl", "http"):
        return lambda lf: scoped(lf, catalogue, scope)
    return None


def filtered(log: Log, keep: Callable[[pl.LazyFrame], pl.LazyFrame] | None) -> Log:
    if keep is None:
        return log
    names = log.names

    def run(batches: Iterator) -> Iterator:
        for batch in batches:
            frame = decoded(batch, names).with_row_index("_row")
            rows = keep(frame.lazy()).select("_row").collect()
            yield from encoded(frame.join(rows, on="_row", how="semi").drop("_row"))

    return Log(log.frame.mapInArrow(run, spark_types(empty_of(log.types))), log.types)


def logset_of(frames: dict[str, pl.DataFrame]) -> LogSet:
    return LogSet(**{k: v.lazy() for k, v in frames.items()})


def per_batch(log: Log, kind: str, out_schema: pl.DataFrame,
              step: Callable[[LogSet], pl.DataFrame]) -> DataFrame:
    """``step`` over each batch of ``log`` as a one-log ``LogSet``."""
    names = log.names

    def run(batches: Iterator) -> Iterator:
        for batch in batches:
            out = step(logset_of({kind: decoded(batch, names)}))
            if out.height:
                yield from encoded(out.select(out_schema.columns))

    return log.frame.mapInArrow(run, spark_types(out_schema))


def bucket(n: int, *cols: Column) -> Column:
    return F.pmod(F.hash(*cols), F.lit(n))


def grouped(frame: DataFrame, key: Column, names: dict[str, str],
            step: Callable[[pl.DataFrame], pl.DataFrame]) -> DataFrame:
    """``step`` over each group of rows sharing ``key`` (a shuffle), giving findings."""
    finding_ddl = spark_types(empty_of(FINDING_SCHEMA))

    def run(table: object) -> object:
        out = step(decoded(table, names).drop("_bucket"))
        return spark_arrow(out.select(FIELDS))

    return frame.withColumn("_bucket", key).groupBy("_bucket").applyInArrow(run, finding_ddl)


def col(name: str) -> Column:
    return F.col(f"`{spark_name(name)}`")


# --- the detections --------------------------------------------------------------------------

@dataclass
class Plan:
    """What every stage's polars step needs; shipped to the workers inside the steps."""

    catalogue: Catalogue
    tor: TorList
    scope: str
    buckets: int
    clients: ClientTable | None = None

    def prepared(self, logs: LogSet):
        return materialise(prepare(logs, self.catalogue, self.tor, self.scope, in_memory=True))


def per_connection(spark: SparkSession, plan: Plan, logs: dict[str, Log]) -> DataFrame:
    """Every per-connection detection, by uid bucket, with each bucket's certificates."""
    keyed: dict[str, DataFrame] = {}
    for kind, log in logs.items():
        if kind == "x509":
            continue
        uid = col("uid") if "uid" in log.types else F.lit(None).cast("string")
        if kind == "files" and "conn_uids" in log.types:
            uid = F.coalesce(uid, F.try_element_at(col("conn_uids"), F.lit(1)))
        keyed[kind] = log.frame.withColumn("_bucket", bucket(plan.buckets, uid))
    if "x509" in logs and "ssl" in keyed:
        keyed["x509"] = routed_certs(keyed["ssl"], logs["ssl"], logs["x509"])
    prefixed: dict[str, dict[str, str]] = {}
    parts = []
    for kind, frame in keyed.items():
        names = {f"{kind}___{spark_name(n)}": n for n in logs[kind].types}
        prefixed[kind] = names
        parts.append(frame.select(F.col("_bucket"), F.lit(kind).alias("_log"),
                                  *(F.col(f"`{spark_name(n)}`").alias(p) for p, n in names.items())))
    if not parts:
        return spark.createDataFrame([], spark_types(empty_of(FINDING_SCHEMA)))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part, allowMissingColumns=True)
    # Kinds with files but no rows in a bucket still reach the detections, as empty frames.
    types = {k: logs[k].types for k in prefixed}

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        frames = {}
        for kind, names in prefixed.items():
            rows = frame.filter(pl.col("_log") == kind).select(list(names)).rename(names)
            frames[kind] = rows.cast(types[kind])  # type: ignore[arg-type]
        logset = logset_of(frames)
        found = detection_plan(logset, plan.catalogue, plan.tor, plan.scope, prepared=plan.prepared(logset),
                               grouped=False, clients=plan.clients)
        return finalise(found.collect())

    names = {c: c for c in union.columns}
    return grouped(union, F.col("_bucket"), names, step)


def routed_certs(ssl: DataFrame, ssl_log: Log, x509: Log) -> DataFrame:
    """x509.log rows, each copied to the bucket of every ssl row whose leaf certificate it is."""
    x = x509.frame.withColumn("_xid", F.monotonically_increasing_id())
    routes = []
    for chain, key in (("cert_chain_fps", "fingerprint"), ("cert_chain_fuids", "id")):
        if chain in ssl_log.types and key in x509.types:
            leaves = ssl.select(F.col("_bucket"), F.try_element_at(col(chain), F.lit(1)).alias("_leaf")) \
                .where(F.col("_leaf").isNotNull()).distinct()
            routes.append(x.join(leaves, x[f"`{spark_name(key)}`"] == leaves["_leaf"]).drop("_leaf"))
    if not routes:
        return x.withColumn("_bucket", F.lit(None).cast("int")).where(F.lit(False)).drop("_xid")
    out = routes[0]
    for r in routes[1:]:
        out = out.unionByName(r)
    return out.dropDuplicates(["_bucket", "_xid"]).drop("_xid")


def tor_repeats(plan: Plan, logs: dict[str, Log]) -> DataFrame | None:
    """tor-repeat: Tor list matches per batch, then one group per (host, Tor address)."""
    source_order = {"conn": 0, "ssl": 1}
    match_types = {"ts": FINDING_SCHEMA["ts"], "uid": pl.Utf8(), "_host": pl.Utf8(), "_tor_addr": pl.Utf8(),
                   "_tor_role": pl.Utf8(), "_tor_feed": pl.Utf8(), "nk_range": pl.Utf8(), "_src": pl.Int64()}
    frames = []
    for kind, src in source_order.items():
        if kind not in logs:
            continue

        def step(logset: LogSet, src: int = src) -> pl.DataFrame:
            matches = all_tor_matches(plan.prepared(logset), plan.tor)
            if not matches:
                return empty_of(match_types)
            got = pl.concat([m.select(TOR_MATCH_COLUMNS) for m, _ in matches]).collect()
            return got.with_columns(pl.lit(src, dtype=pl.Int64).alias("_src"))

        frames.append(per_batch(logs[kind], kind, empty_of(match_types), step))
    if not frames:
        return None
    matches = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])

    def repeat(rows: pl.DataFrame) -> pl.DataFrame:
        # The local engine concatenates conn.log's matches before ssl.log's, and
        # tor_repeat keeps the first match of a connection.
        ordered = rows.sort(["_src", "ts"], maintain_order=True).drop("_src")
        return tor_repeat(ordered.lazy()).collect()

    names = {spark_name(n): n for n in match_types}
    return grouped(matches, bucket(plan.buckets, F.col("_host"), F.col("_tor_addr")), names, repeat)


def dht_fanout(plan: Plan, conn: Log) -> DataFrame:
    """The DHT conn heuristic, one group per (host, UDP port)."""
    types = conn.types  # the step goes to the workers: it must not hold a DataFrame

    def step(rows: pl.DataFrame) -> pl.DataFrame:
        found = dht(plan.prepared(logset_of({"conn": rows.cast(types)})).conn, None)  # type: ignore[arg-type]
        return pl.concat([f.select(FIELDS) for f in found]).collect() if found else empty().collect()

    return grouped(conn.frame, bucket(plan.buckets, col("id.orig_h"), col("id.orig_p")), conn.names, step)


def nk_traffic(plan: Plan, conn: Log) -> DataFrame:
    """nk-traffic: partial groups per batch, merged per (NK host, peer, service, day)."""
    carry = "nk_range" in conn.types

    def partial(logset: LogSet) -> pl.DataFrame:
        prepared = prepare(logset, plan.catalogue, plan.tor, plan.scope)
        groups = nk_groups(prepared.nk, carry_range=carry).collect()  # type: ignore[arg-type]
        if not carry:
            groups = groups.with_columns(pl.lit(None, dtype=pl.Utf8).alias("nk_range"))
        return groups

    shape = partial(logset_of({"conn": empty_of(conn.types)}))
    partials = per_batch(conn, "conn", shape, partial)

    def merge(rows: pl.DataFrame) -> pl.DataFrame:
        groups = merge_nk_groups(rows.cast(shape.schema).lazy())  # type: ignore[arg-type]
        if not carry:
            groups = groups.drop("nk_range")
        return nk_traffic_findings(groups, plan.catalogue).collect()

    keys = [col(k) for k in (*NK_GROUP_KEYS, "nk_range")]
    return grouped(partials, bucket(plan.buckets, *keys), {spark_name(n): n for n in shape.columns}, merge)


def bucket_count(spark: SparkSession, logs: dict[str, Log]) -> int:
    """How many buckets the grouped detections use: at least one per input split.

    Each bucket reaches its Python call whole, built in one executor's memory, so a fixed
    count (the shuffle partitions) makes buckets grow with the input until an executor runs
    out of memory: 10M conn rows in 4 buckets killed 1 GB executors (exit code 52). With a
    bucket per split, a bucket holds about one split's candidate rows, whatever the size.
    """
    configured = int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
    splits = sum(log.frame.rdd.getNumPartitions() for log in logs.values())
    return max(configured, splits)


def spark_findings(spark: SparkSession, paths: Sequence[str], catalogue: Catalogue, tor: TorList,
                   links: LinkDir, scope: str = "nk", clients: ClientTable | None = None) -> DataFrame:
    """All findings over the logs under ``paths`` as one Spark DataFrame (``FINDING_SCHEMA``).

    Spark evaluates lazily: ``links`` must stay open until the frame has been used.
    """
    sources = find_sources(spark, paths, links)
    logs = read_logs(spark, sources)
    if not logs:
        raise SensorPluginsError(f"{paths[0]}: no Zeek logs found (conn, ssl, x509, http, ...)")
    if "ssl" in logs and not has_fingerprints(logs["ssl"].types):
        print(NO_FINGERPRINTS_NOTE, file=sys.stderr)
    plan = Plan(catalogue, tor, scope, bucket_count(spark, logs), clients)
    tor_addrs = list(tor.entries)
    kept = {k: filtered(v, row_filter(k, catalogue, tor_addrs, scope)) for k, v in logs.items()}
    # The kept rows are few and several stages read them: each log is read and typed once.
    kept = {k: Log(v.frame.persist(), v.types) for k, v in kept.items()}
    parts = [per_connection(spark, plan, kept)]
    repeats = tor_repeats(plan, kept)
    if repeats is not None:
        parts.append(repeats)
    if "conn" in logs:
        parts += [dht_fanout(plan, kept["conn"]), nk_traffic(plan, logs["conn"])]
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


# Findings a sorted partition holds when streamed, and rows a text cell holds: both keep
# what an executor and the driver hold at once to a few MB, whatever the result's size.
STREAM_PARTITION_ROWS = 50_000
STREAM_CHUNK_ROWS = 2_000


def stream_sorted(findings: DataFrame, fmt: str, out: BinaryIO, *, partition_rows: int = STREAM_PARTITION_ROWS,
                  chunk_rows: int = STREAM_CHUNK_ROWS) -> int:
    """Write the findings' rows in ``fmt``, in the order ``collect_sorted`` gives, a
    partition at a time; returns how many.

    Spark range-partitions and sorts them across the cluster, and each executor formats its
    own rows with the local engine's writer, in cells of ``chunk_rows`` rows; the driver
    fetches one partition of about ``partition_rows`` findings at a
    time (``toLocalIterator``), never the whole result, so a fleet's millions of findings
    fit a small driver and small executors. The findings are persisted first: counting
    them and sampling the sort's ranges would otherwise run every detection again.
    """
    import pyarrow as pa

    from sensor_plugins.analysis.output import write_rows

    def run(batches: Iterator) -> Iterator:
        for batch in batches:
            whole = pl.from_arrow(batch)
            assert isinstance(whole, pl.DataFrame)
            for frame in whole.cast(FINDING_SCHEMA).iter_slices(chunk_rows):  # type: ignore[arg-type]
                buffer = io.BytesIO()
                write_rows(frame, fmt, buffer)
                yield pa.RecordBatch.from_pydict({"text": [buffer.getvalue()], "rows": [frame.height]})

    kept = findings.persist()
    try:
        total = kept.count()
        if total == 0:
            return 0
        order = [F.col(c).asc_nulls_last() for c in ORDER]
        parts = -(-total // partition_rows)
        ordered = kept.repartitionByRange(parts, *order).sortWithinPartitions(*order)
        count = 0
        for row in ordered.mapInArrow(run, "text binary, rows bigint").toLocalIterator():
            out.write(bytes(row["text"]))
            count += row["rows"]
        return count
    finally:
        kept.unpersist()


def write_streamed(findings: DataFrame, fmt: str, out_path: Path | None) -> bool:
    """A whole output of ``fmt`` (header, rows, footer) to ``out_path`` atomically or to
    stdout, as the local engine writes it; True when there was at least one finding."""
    from sensor_plugins.analysis.output import write_head, write_tail
    from sensor_plugins.atomic import open_atomic

    now = dt.datetime.now(dt.UTC)
    sys.stdout.flush()
    with open_atomic(out_path) if out_path is not None else contextlib.nullcontext(sys.stdout.buffer) as handle:
        write_head(fmt, handle, now)
        count = stream_sorted(findings, fmt, handle)
        write_tail(fmt, handle, now)
        handle.flush()
    return count > 0


def collect_sorted(findings: DataFrame) -> pl.DataFrame:
    """The findings on the driver, in the local engine's order (``detect``'s sort)."""
    frame = pl.from_arrow(findings.toArrow())
    assert isinstance(frame, pl.DataFrame)
    frame = frame.cast(FINDING_SCHEMA)  # type: ignore[arg-type]
    return frame.sort(ORDER, nulls_last=True, maintain_order=True)


# --- output ----------------------------------------------------------------------------------

def write_parquet(spark: SparkSession, findings: DataFrame, out: str) -> int:
    """Parquet partitioned by date and category, under a temporary name then renamed; a
    failed job removes its temporary tree and leaves ``out`` untouched. Returns the count."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    target = jvm.org.apache.hadoop.fs.Path(out)
    fs = target.getFileSystem(conf)
    if fs.exists(target):
        raise SensorPluginsError(f"{out}: already exists; analyze writes Parquet only to a new path")
    tmp = jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.tmp-{uuid.uuid4().hex}")
    rows = findings.withColumn("date", F.date_format(F.col("ts"), "yyyy-MM-dd")).persist()
    try:
        count = rows.count()
        rows.write.partitionBy("date", "category").parquet(tmp.toString())
        if not fs.rename(tmp, target):
            raise SensorPluginsError(f"{out}: cannot rename the finished Parquet tree into place")
    except BaseException:
        fs.delete(tmp, True)
        raise
    finally:
        rows.unpersist()
    return count


@contextlib.contextmanager
def progress_line(spark: SparkSession, enabled: bool) -> Iterator[None]:
    """Spark's status tracker as one line on stderr: active stages and their tasks done."""
    if not enabled:
        yield
        return
    stop = threading.Event()
    tracker = spark.sparkContext.statusTracker()

    def show() -> None:
        while not stop.wait(0.5):
            stages = []
            for sid in sorted(tracker.getActiveStageIds()):
                info = tracker.getStageInfo(sid)
                if info is not None:
                    stages.append(f"stage {sid} {info.numCompletedTasks}/{info.numTasks} tasks")
            if stages:
                sys.stderr.write("\r\x1b[Kspark: " + ", ".join(stages))
                sys.stderr.flush()

    thread = threading.Thread(target=show, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def _one_line(exc: BaseException) -> str:
    """The line of a Spark failure that says what went wrong: our own error raised in a
    worker, else the root cause of a JVM error, else a Python error's last line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in lines:
        if "SensorPluginsError" in line or "LogError" in line:
            return line.split(":", 1)[-1].strip()[:200]
    causes = [line for line in lines if line.startswith("Caused by:")]
    if causes:
        return causes[-1][len("Caused by:"):].strip()[:200]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    if errors:
        return errors[-1][:200]
    return (lines or [type(exc).__name__])[0][:200]


def run(args: argparse.Namespace) -> int:
    """``analyze --engine spark``: exit 0 without findings, 1 with, 2 on error."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    from sensor_plugins.analysis.output import choose_format, write_findings
    from sensor_plugins.inputs.options import load_inputs

    catalogue, tor = load_inputs(args)
    clients = load_client_table(getattr(args, "clients", None))
    fmt = choose_format(args.fmt, args.out, sys.stdout)
    if fmt == "parquet" and args.out is None:
        raise SensorPluginsError("analyze: --format parquet needs --out DIR")
    spark = session(args.master)
    try:
        with LinkDir() as links, progress_line(spark, sys.stderr.isatty()):
            findings = spark_findings(spark, [str(p) for p in args.paths], catalogue, tor, links, scope=args.scope,
                                      clients=clients)
            if fmt == "parquet":
                return 1 if write_parquet(spark, findings, str(args.out)) else 0
            if fmt == "table":  # a table is laid out from every row at once
                return 1 if write_findings(collect_sorted(findings), empty(), fmt, args.out) else 0
            return 1 if write_streamed(findings, fmt, args.out) else 0
    except (PySparkException, Py4JError) as exc:
        raise SensorPluginsError(f"analyze --engine spark: {_one_line(exc)}") from exc
    finally:
        spark.stop()
