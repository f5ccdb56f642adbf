"""The report's numbers: pure functions over NK-tagged Zeek frames, one section each.

Every function takes polars DataFrames already read by ``sensor_plugins.analysis.logs`` and tagged
by ``sensor_plugins.analysis.detect.tag_nk`` (so ``conn`` carries ``nk_range``, ``nk_side``,
``nk_host`` and ``peer_h``), and returns plain dataclasses that the HTML template and the
JSON output both use. Nothing here reads files or knows about HTML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from sensor_plugins.report.categories import UNCATEGORISED, Categories, normalise_domain

# Zeek's conn.log ``service`` names (comma-separated when several analyzers confirmed).
ENCRYPTED_SERVICES = ("ssl", "ssh", "quic", "dtls", "tls")
# The analyzer's weak-tls reasons that weaken the encryption itself; certificate problems
# (self-signed, expired, name mismatch) weaken authentication, not confidentiality.
WEAK_CRYPTO_REASONS = ("old-version", "weak-cipher", "weak-key", "weak-signature")
TOR_LIST_REASONS = {"tor-exit": "exit", "tor-relay": "relay"}
DIRECTIONS = {"orig": "outbound", "resp": "inbound", "both": "within"}
PROTECTION_CLASSES = ("anonymised", "encrypted", "clear")
MAX_DOMAIN_SHOWN = 120


# ----------------------------------------------------------------- preparation


def prepare_conn(conn: pl.DataFrame) -> pl.DataFrame:
    """The NK rows of a tagged conn frame, with ``day``, ``bytes`` and ``direction`` added.

    Zeek leaves ``orig_bytes``/``resp_bytes`` unset for connections without payload, which
    counts as zero bytes, not as an unknown that would turn every sum into null.
    """
    nk = conn.filter(pl.col("nk_range").is_not_null())
    return nk.with_columns(
        _day_expr(nk.schema["ts"]).alias("day"),
        (
            pl.col("orig_bytes").cast(pl.Int64, strict=False).fill_null(0).clip(lower_bound=0)
            + pl.col("resp_bytes").cast(pl.Int64, strict=False).fill_null(0).clip(lower_bound=0)
        ).alias("bytes"),
        pl.col("nk_side").replace_strict(DIRECTIONS, default=pl.col("nk_side")).alias("direction"),
        pl.col("service").cast(pl.Utf8).fill_null("").str.to_lowercase().alias("service"),
    )


def _day_expr(dtype: pl.DataType) -> pl.Expr:
    # The reader gives UTC datetimes; plain epoch seconds (a hand-made frame) work too.
    if isinstance(dtype, pl.Datetime):
        ts = pl.col("ts").dt.convert_time_zone("UTC") if dtype.time_zone else pl.col("ts")
        return ts.dt.date()
    return pl.from_epoch(pl.col("ts").cast(pl.Float64) * 1_000_000, time_unit="us").dt.date()


# ----------------------------------------------------------------- 1. overview


@dataclass(frozen=True)
class RangeTotals:
    range: str
    hosts: int
    connections: int
    bytes: int
    by_direction: dict[str, dict[str, int]]


@dataclass(frozen=True)
class FindingCount:
    category: str
    reason: str
    count: int


@dataclass(frozen=True)
class Overview:
    start: dt.datetime | None
    end: dt.datetime | None
    days: int
    connections: int
    bytes: int
    ranges: list[RangeTotals]
    findings: list[FindingCount]


def overview(conn: pl.DataFrame, range_names: Iterable[str], findings: list[FindingCount]) -> Overview:
    """Span, NK hosts, connections and bytes per range and direction, findings by category."""
    totals = []
    for name in range_names:
        rows = conn.filter(pl.col("nk_range") == name)
        by_direction = {
            str(row["direction"]): {"connections": row["connections"], "bytes": row["bytes"]}
            for row in rows.group_by("direction")
            .agg(pl.len().alias("connections"), pl.col("bytes").sum().alias("bytes"))
            .sort("direction")
            .iter_rows(named=True)
        }
        totals.append(
            RangeTotals(
                range=name,
                hosts=rows["nk_host"].n_unique(),
                connections=rows.height,
                bytes=int(rows["bytes"].sum()),
                by_direction=by_direction,
            )
        )
    start = conn["ts"].min() if conn.height else None
    end = conn["ts"].max() if conn.height else None
    return Overview(
        start=_as_datetime(start),
        end=_as_datetime(end),
        days=conn["day"].n_unique() if conn.height else 0,
        connections=conn.height,
        bytes=int(conn["bytes"].sum()) if conn.height else 0,
        ranges=totals,
        findings=findings,
    )


def _as_datetime(value: object) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromtimestamp(float(value), dt.UTC)  # type: ignore[arg-type]


def count_findings(pairs: Iterable[tuple[str, str]]) -> list[FindingCount]:
    """(category, reason) pairs -> counts, the largest first, ties by name."""
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [FindingCount(category=c, reason=r, count=n) for (c, r), n in ordered]


def finding_uids(findings: pl.DataFrame, category: str, reasons: Iterable[str] | None = None) -> set[str]:
    """The connection uids of the analyzer's findings in ``category`` (and ``reasons``, if given)."""
    rows = findings.filter((pl.col("category") == category) & pl.col("uid").is_not_null())
    if reasons is not None:
        rows = rows.filter(pl.col("reason").is_in(list(reasons)))
    return set(rows["uid"])


def tor_uses(findings: pl.DataFrame) -> pl.DataFrame:
    """uid, tor_addr and role of every connection the analyzer matched against a Tor list.

    The analyzer already applies each list's dates (a relay listed in 2024 does not make a
    2017 connection Tor), so the report takes its matches rather than the raw lists.
    """
    rows = findings.filter(pl.col("reason").is_in(list(TOR_LIST_REASONS)) & pl.col("uid").is_not_null())
    return rows.select(
        pl.col("uid"),
        pl.col("evidence").str.json_path_match("$.tor_addr").fill_null(pl.col("resp_h")).alias("tor_addr"),
        pl.col("reason").replace_strict(TOR_LIST_REASONS, return_dtype=pl.Utf8).alias("role"),
    ).unique(["uid", "tor_addr"], keep="first", maintain_order=True)


# ----------------------------------------------------------------- 2. activity profile


@dataclass(frozen=True)
class DomainCount:
    domain: str
    observations: int


@dataclass(frozen=True)
class CategoryActivity:
    category: str
    label: str
    observations: int
    dns_queries: int
    connections: int
    bytes: int
    top_domains: list[DomainCount]


@dataclass(frozen=True)
class Activity:
    categories: list[CategoryActivity]
    observations: int


def domain_observations(
    conn: pl.DataFrame, dns: pl.DataFrame | None, ssl: pl.DataFrame | None, http: pl.DataFrame | None
) -> pl.DataFrame:
    """One row per log entry that names a domain on an NK connection: uid, raw name, source log."""
    nk_uids = conn.select("uid")
    parts = []
    for frame, column, source in ((dns, "query", "dns"), (ssl, "server_name", "ssl"), (http, "host", "http")):
        if frame is None or column not in frame.columns or "uid" not in frame.columns:
            continue
        rows = (
            frame.select(pl.col("uid"), pl.col(column).cast(pl.Utf8).alias("name"))
            .filter(pl.col("name").is_not_null() & (pl.col("name") != ""))
            .join(nk_uids, on="uid", how="semi")
            .with_columns(pl.lit(source).alias("source"))
        )
        parts.append(rows)
    if not parts:
        return pl.DataFrame(schema={"uid": pl.Utf8, "name": pl.Utf8, "source": pl.Utf8})
    return pl.concat(parts)


def activity_profile(
    observations: pl.DataFrame, conn: pl.DataFrame, categories: Categories, top_n: int = 5
) -> Activity:
    """Observations, DNS queries, connections and bytes per service category, with top domains.

    An observation is one log entry naming a domain (a DNS query, a TLS server_name, an
    HTTP Host). Connections and bytes count only TLS and HTTP rows, since a DNS query's
    bytes are the resolver's, not the service's.
    """
    names = observations["name"].unique().to_list()
    shown, category = {}, {}
    for raw in names:
        domain = normalise_domain(raw)
        shown[raw] = domain if domain is not None else _clip(raw)
        category[raw] = categories.classify(domain) if domain is not None else UNCATEGORISED
    tagged = observations.with_columns(
        pl.col("name").replace_strict(shown, return_dtype=pl.Utf8).alias("domain"),
        pl.col("name").replace_strict(category, return_dtype=pl.Utf8).alias("category"),
    )
    conn_bytes = conn.select("uid", "bytes").unique("uid")
    result = []
    for slug in [*categories.labels, UNCATEGORISED]:
        rows = tagged.filter(pl.col("category") == slug)
        if rows.height == 0:
            continue
        service_uids = rows.filter(pl.col("source") != "dns").select("uid").unique()
        top = (
            rows.group_by("domain")
            .agg(pl.len().alias("n"))
            .sort(["n", "domain"], descending=[True, False])
            .head(top_n)
        )
        result.append(
            CategoryActivity(
                category=slug,
                label=categories.label(slug),
                observations=rows.height,
                dns_queries=rows.filter(pl.col("source") == "dns").height,
                connections=service_uids.height,
                bytes=int(conn_bytes.join(service_uids, on="uid", how="semi")["bytes"].sum()),
                top_domains=[DomainCount(d, n) for d, n in top.iter_rows()],
            )
        )
    result.sort(key=lambda c: (c.category == UNCATEGORISED, -c.observations, c.category))
    return Activity(categories=result, observations=observations.height)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DOMAIN_SHOWN else text[: MAX_DOMAIN_SHOWN - 1] + "…"


# ----------------------------------------------------------------- 3. protection share


@dataclass(frozen=True)
class Share:
    connections: int
    bytes: int
    connection_share: float
    byte_share: float


@dataclass(frozen=True)
class Protection:
    total_connections: int
    total_bytes: int
    classes: dict[str, Share]
    weak: Share  # shares are of the encrypted class, not of the total
    weak_basis: str = (
        "the analyzer's weak-tls findings for an old protocol version, a weak cipher, key or signature"
    )


def protection_classes(conn: pl.DataFrame, ssl_uids: Iterable[str], tor_uids: Iterable[str]) -> pl.DataFrame:
    """``conn`` with a ``protection`` column: anonymised, encrypted or clear, in that precedence.

    Tor traffic is TLS too, but its point is hiding who talks to whom, so it is counted as
    anonymised, not encrypted. "clear" means no encryption was identified: a connection
    without payload or in an unrecognised protocol lands there as well.
    """
    encrypted = pl.col("uid").is_in(list(set(ssl_uids)))
    for name in ENCRYPTED_SERVICES:
        encrypted = encrypted | pl.col("service").str.contains(rf"(^|,){name}(,|$)")
    return conn.with_columns(
        pl.when(pl.col("uid").is_in(list(set(tor_uids))))
        .then(pl.lit("anonymised"))
        .when(encrypted)
        .then(pl.lit("encrypted"))
        .otherwise(pl.lit("clear"))
        .alias("protection")
    )


def protection_share(classified: pl.DataFrame, weak_uids: Iterable[str]) -> Protection:
    """Shares of NK connections and bytes per protection class, and the weak share of the encrypted."""
    total_c, total_b = classified.height, int(classified["bytes"].sum()) if classified.height else 0
    classes = {}
    for name in PROTECTION_CLASSES:
        rows = classified.filter(pl.col("protection") == name)
        classes[name] = _share(rows, total_c, total_b)
    encrypted = classified.filter(pl.col("protection") == "encrypted")
    weak = encrypted.filter(pl.col("uid").is_in(list(set(weak_uids))))
    return Protection(
        total_connections=total_c,
        total_bytes=total_b,
        classes=classes,
        weak=_share(weak, classes["encrypted"].connections, classes["encrypted"].bytes),
    )


def _share(rows: pl.DataFrame, total_connections: int, total_bytes: int) -> Share:
    n = rows.height
    b = int(rows["bytes"].sum()) if n else 0
    return Share(
        connections=n,
        bytes=b,
        connection_share=n / total_connections if total_connections else 0.0,
        byte_share=b / total_bytes if total_bytes else 0.0,
    )


# ----------------------------------------------------------------- 4. Tor and torrents


@dataclass(frozen=True)
class TorPeerUse:
    host: str
    peer: str
    role: str
    days: int
    first_day: dt.date
    last_day: dt.date
    connections: int
    bytes: int


@dataclass(frozen=True)
class TorHost:
    host: str
    tor_days: int
    peers: int
    top_peer: str
    top_peer_role: str
    top_peer_days: int
    same_peer_every_day: bool
    uses: list[TorPeerUse]


@dataclass(frozen=True)
class TorrentDay:
    host: str
    day: dt.date
    connections: int
    bytes: int
    peers: int


def tor_hosts(conn: pl.DataFrame, uses: pl.DataFrame) -> list[TorHost]:
    """Per NK host, the Tor relays and exits it used (``uses`` from ``tor_uses``), on how many days.

    "Same one every day" (the study's pattern) holds when one relay was used on every
    day that host used Tor at all, over at least two days.
    """
    tor = conn.join(uses, on="uid", how="inner")
    if tor.height == 0:
        return []
    per_pair = (
        tor.group_by("nk_host", "tor_addr", "role")
        .agg(
            pl.col("day").n_unique().alias("days"),
            pl.col("day").min().alias("first_day"),
            pl.col("day").max().alias("last_day"),
            pl.col("uid").n_unique().alias("connections"),
            pl.col("bytes").sum().alias("bytes"),
        )
        .sort(["nk_host", "days", "connections", "tor_addr"], descending=[False, True, True, False])
    )
    host_days = dict(tor.group_by("nk_host").agg(pl.col("day").n_unique()).iter_rows())
    result = []
    for host in sorted(host_days):
        rows = [
            TorPeerUse(
                r["nk_host"],
                r["tor_addr"],
                r["role"],
                r["days"],
                r["first_day"],
                r["last_day"],
                r["connections"],
                int(r["bytes"]),
            )
            for r in per_pair.filter(pl.col("nk_host") == host).iter_rows(named=True)
        ]
        top, days = rows[0], host_days[host]
        result.append(
            TorHost(
                host=host,
                tor_days=days,
                peers=len(rows),
                top_peer=top.peer,
                top_peer_role=top.role,
                top_peer_days=top.days,
                same_peer_every_day=days >= 2 and top.days == days,
                uses=rows,
            )
        )
    return result


def torrent_days(conn: pl.DataFrame, uids: Iterable[str]) -> list[TorrentDay]:
    """BitTorrent connections (the analyzer's torrent findings) per NK host and day."""
    rows = conn.filter(pl.col("uid").is_in(list(set(uids))))
    grouped = (
        rows.group_by("nk_host", "day")
        .agg(
            pl.len().alias("connections"),
            pl.col("bytes").sum().alias("bytes"),
            pl.col("peer_h").n_unique().alias("peers"),
        )
        .sort("nk_host", "day")
    )
    return [TorrentDay(h, d, c, int(b), p) for h, d, c, b, p in grouped.iter_rows()]


# ----------------------------------------------------------------- 5. peer countries


@dataclass(frozen=True)
class CountryRow:
    country: str
    baseline_connections: int
    baseline_bytes: int
    period_connections: int
    period_bytes: int
    baseline_byte_share: float
    period_byte_share: float

    @property
    def change_points(self) -> float:
        """Change of the byte share in percentage points, period minus baseline."""
        return 100.0 * (self.period_byte_share - self.baseline_byte_share)


@dataclass(frozen=True)
class PeerCountries:
    baseline_start: dt.date | None
    baseline_end: dt.date | None
    period_start: dt.date | None
    period_end: dt.date | None
    rows: list[CountryRow]
    note: str = ""


def split_days(days: list[dt.date], baseline_days: int | None) -> tuple[list[dt.date], list[dt.date]]:
    """Baseline = the first ``baseline_days`` calendar days of the span (default: the first half).

    Calendar days, not days with traffic, so a quiet week still counts as baseline time.
    """
    if not days:
        return [], []
    first, last = min(days), max(days)
    span = (last - first).days + 1
    n = span // 2 if baseline_days is None else min(max(baseline_days, 0), span)
    cut = first + dt.timedelta(days=n)
    calendar = [first + dt.timedelta(days=i) for i in range(span)]
    return [d for d in calendar if d < cut], [d for d in calendar if d >= cut]


def peer_countries(
    conn: pl.DataFrame, country_of: Callable[[str], str], baseline_days: int | None = None
) -> PeerCountries:
    """Bytes and connections per peer country, baseline period against the analysed period."""
    days = conn["day"].unique().to_list() if conn.height else []
    baseline, period = split_days(days, baseline_days)
    if not period:
        return PeerCountries(None, None, None, None, [], note="no NK connections to compare")
    peers = conn["peer_h"].drop_nulls().unique().to_list()
    countries = {p: country_of(p) for p in peers}
    tagged = conn.with_columns(
        pl.col("peer_h").replace_strict(countries, default="unknown", return_dtype=pl.Utf8).alias("country"),
        pl.col("day").is_in(baseline).alias("is_baseline"),
    )
    grouped = tagged.group_by("country", "is_baseline").agg(
        pl.len().alias("c"), pl.col("bytes").sum().alias("b")
    )
    cells = {(r["country"], r["is_baseline"]): (r["c"], int(r["b"])) for r in grouped.iter_rows(named=True)}
    base_total = sum(b for (_, is_base), (_, b) in cells.items() if is_base)
    period_total = sum(b for (_, is_base), (_, b) in cells.items() if not is_base)
    rows = []
    for country in sorted({c for c, _ in cells}):
        bc, bb = cells.get((country, True), (0, 0))
        pc, pb = cells.get((country, False), (0, 0))
        rows.append(
            CountryRow(
                country,
                bc,
                bb,
                pc,
                pb,
                bb / base_total if base_total else 0.0,
                pb / period_total if period_total else 0.0,
            )
        )
    rows.sort(key=lambda r: (-(r.period_bytes + r.baseline_bytes), r.country))
    return PeerCountries(
        baseline_start=baseline[0] if baseline else None,
        baseline_end=baseline[-1] if baseline else None,
        period_start=period[0],
        period_end=period[-1],
        rows=rows,
        note="" if baseline else "the logs span one day only, so there is no baseline period",
    )


# ----------------------------------------------------------------- 6. timeline


@dataclass(frozen=True)
class Timeline:
    days: list[dt.date]
    ranges: list[str]
    connections: dict[str, list[int]] = field(default_factory=dict)
    bytes: dict[str, list[int]] = field(default_factory=dict)

    def total(self, metric: str) -> list[int]:
        series = self.connections if metric == "connections" else self.bytes
        return (
            [sum(values) for values in zip(*series.values(), strict=True)] if series else [0] * len(self.days)
        )


def timeline(conn: pl.DataFrame, range_names: Iterable[str]) -> Timeline:
    """Connections and bytes per calendar day and range; days without traffic are zeros, not gaps."""
    names = list(range_names)
    if conn.height == 0:
        return Timeline([], names, {n: [] for n in names}, {n: [] for n in names})
    first, last = conn["day"].min(), conn["day"].max()
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    grouped = conn.group_by("nk_range", "day").agg(pl.len().alias("c"), pl.col("bytes").sum().alias("b"))
    cells = {(r, d): (c, int(b)) for r, d, c, b in grouped.iter_rows()}
    return Timeline(
        days=days,
        ranges=names,
        connections={n: [cells.get((n, d), (0, 0))[0] for d in days] for n in names},
        bytes={n: [cells.get((n, d), (0, 0))[1] for d in days] for n in names},
    )


# ----------------------------------------------------------------- 7. TLS clients


@dataclass(frozen=True)
class ClientFingerprint:
    """One JA4 fingerprint of one NK host acting as a TLS client."""

    host: str
    range: str
    ja4: str
    client: str  # the known-client table's names, or "" when the fingerprint is not listed
    connections: int
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    weak_offer: bool  # some hello with this fingerprint offered RC4, export, NULL, anon or DES


@dataclass(frozen=True)
class Clients:
    """What NK hosts' ClientHellos say about their software (the package's ``ja4`` in ssl.log)."""

    available: bool  # the ssl.log carries ja4 at all
    fingerprints: list[ClientFingerprint]
    connections: int  # NK-originated TLS connections with a fingerprint
    weak_offer_connections: int

    @property
    def weak_offer_share(self) -> float:
        return self.weak_offer_connections / self.connections if self.connections else 0.0


def client_fingerprints(
    conn: pl.DataFrame,
    hellos: pl.DataFrame | None,
    weak_offer_uids: Iterable[str],
    name_of: Callable[[str], str | None],
) -> Clients:
    """Fingerprints per NK client host, with first and last seen and the weak-offer share.

    ``hellos`` holds ssl.log's ``uid``, ``ts`` and ``ja4`` (None when ssl.log has no ``ja4``);
    a fingerprint counts for an NK host only when that host opened the connection, since
    the ClientHello is the originator's.
    """
    if hellos is None:
        return Clients(False, [], 0, 0)
    clients = conn.filter(pl.col("nk_side").is_in(["orig", "both"])).select("uid", "nk_host", "nk_range")
    rows = hellos.filter(pl.col("ja4").is_not_null()).join(clients, on="uid", how="inner").with_columns(
        pl.col("uid").is_in(list(set(weak_offer_uids))).alias("weak")
    )
    grouped = (
        rows.group_by("nk_host", "nk_range", "ja4")
        .agg(pl.len().alias("connections"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"),
             pl.col("weak").any().alias("weak"))
        .sort(["nk_host", "connections", "ja4"], descending=[False, True, False])
    )
    fingerprints = [
        ClientFingerprint(
            host=r["nk_host"], range=r["nk_range"], ja4=r["ja4"], client=name_of(r["ja4"]) or "",
            connections=r["connections"], first_seen=_as_datetime(r["first"]), last_seen=_as_datetime(r["last"]),
            weak_offer=bool(r["weak"]),
        )
        for r in grouped.iter_rows(named=True)
    ]
    return Clients(True, fingerprints, rows.height, int(rows["weak"].sum()))
