"""``sensor-plugins report``: the 2017 study's picture from a sensor's own Zeek logs.

    sensor-plugins report LOGDIR --html OUT.html [--events FILE] [--geoip FILE.mmdb]
    sensor-plugins report LOGDIR --format json [--json OUT.json]

Reads the logs with ``sensor_plugins.analysis.logs``, tags NK rows with ``detect.tag_nk``, runs the
analyzer's ``detect`` for the findings, and computes each section in
``report.metrics``/``report.events``. The HTML is one self-contained file (inline CSS and
SVG, no script, a Content-Security-Policy that forbids every fetch) rendered by jinja2
with autoescape on, so every string from a log reaches the page as text.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import polars as pl

from sensor_plugins import __version__
from sensor_plugins.analysis.detect import CONN_COLUMNS, CONN_KEYS, detect, ensure, tag_nk
from sensor_plugins.analysis.logfiles import LogInventory, find_logs, using_read_limits
from sensor_plugins.analysis.logs import LogSet, load_logset
from sensor_plugins.analysis.options import IN_MEMORY_MAX_BYTES, add_read_limit_arguments, read_limits_of
from sensor_plugins.atomic import check_output_file, write_text_atomic
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import Catalogue
from sensor_plugins.inputs.clients import ClientTable, load_client_table
from sensor_plugins.inputs.feeds import TorList
from sensor_plugins.inputs.options import add_input_arguments, finite_float, input_files, load_inputs
from sensor_plugins.report.categories import Categories, load_categories
from sensor_plugins.report.charts import (
    PROTECTION_LABELS,
    Chart,
    category_bars,
    client_bars,
    daily_stacked_bars,
    format_bytes,
    protection_bars,
)
from sensor_plugins.report.events import (
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    Event,
    EventResult,
    load_events,
    score_events,
)
from sensor_plugins.report.geoip import open_country_lookup
from sensor_plugins.report.metrics import (
    WEAK_CRYPTO_REASONS,
    Activity,
    Clients,
    Overview,
    PeerCountries,
    Protection,
    Timeline,
    TorHost,
    TorrentDay,
    activity_profile,
    client_fingerprints,
    count_findings,
    domain_observations,
    finding_uids,
    overview,
    peer_countries,
    prepare_conn,
    protection_classes,
    protection_share,
    timeline,
    tor_hosts,
    tor_uses,
    torrent_days,
)

CONN_NEEDED = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "orig_bytes",
    "resp_bytes",
    "nk_range",
    "nk_side",
    "nk_host",
    "peer_h",
]
STUDY_OBFUSCATED = "The 2017 study found less than 1% of NK traffic obfuscated."


@dataclass(frozen=True)
class ReportOptions:
    threshold: float = DEFAULT_THRESHOLD
    window: int = DEFAULT_WINDOW
    baseline_days: int | None = None
    top_domains: int = 5


@dataclass
class Report:
    source: str
    kinds: list[str]
    cidrs: dict[str, str]
    overview: Overview
    activity: Activity
    protection: Protection
    tor: list[TorHost]
    torrents: list[TorrentDay]
    countries: PeerCountries | None
    timeline: Timeline
    events: list[EventResult]
    clients: Clients
    threshold: float
    window: int
    baseline_rule: str
    geoip_file: str = ""
    categories_file: str = ""
    version: str = __version__

    @property
    def any_spike(self) -> bool:
        return any(e.spike for e in self.events)

    @property
    def protection_statement(self) -> str:
        return protection_statement(self.protection)

    @property
    def events_statement(self) -> str:
        return events_statement(self.events, self.threshold)


# ----------------------------------------------------------------- assembly


def nk_frames(logs: LogSet, catalogue: Catalogue) -> dict[str, pl.DataFrame | None]:
    """The NK conn rows (prepared) and the dns/ssl/http rows of those connections, collected.

    Only NK rows leave the lazy scans, so a large conn.log with little NK traffic stays cheap.
    """
    if logs.conn is None:
        raise SensorPluginsError("report: no conn.log among the logs; the report is built on conn.log")
    tagged = tag_nk(ensure(logs.conn, {**CONN_KEYS, **CONN_COLUMNS}), catalogue)
    conn = prepare_conn(tagged.filter(pl.col("nk_range").is_not_null()).select(CONN_NEEDED).collect())
    uids = conn.select("uid").lazy()
    wanted = {"dns": ["uid", "query"], "ssl": ["uid", "server_name"], "http": ["uid", "host"]}
    frames: dict[str, pl.DataFrame | None] = {"conn": conn, "hellos": None}
    if logs.ssl is not None and "ja4" in logs.ssl.collect_schema():
        frames["hellos"] = (ensure(logs.ssl, {"ts": CONN_KEYS["ts"], "uid": pl.Utf8(), "ja4": pl.Utf8()})
                            .select("uid", "ts", "ja4").join(uids, on="uid", how="semi").collect())
    for kind, columns in wanted.items():
        lf = getattr(logs, kind)
        if lf is None:
            frames[kind] = None
            continue
        typed = ensure(lf, dict.fromkeys(columns, pl.Utf8()))
        frames[kind] = typed.select(columns).join(uids, on="uid", how="semi").collect()
    return frames


def build_report(
    paths: Sequence[Path],
    catalogue: Catalogue,
    tor: TorList,
    categories: Categories,
    events: Sequence[Event] = (),
    country_of: Callable[[str], str] | None = None,
    options: ReportOptions | None = None,
    clients: ClientTable | None = None,
    found: LogInventory | None = None,
) -> Report:
    """The report of the logs under ``paths``; ``found`` is the caller's walk of them, if it made one."""
    options = options or ReportOptions()
    clients = clients if clients is not None else load_client_table()
    # One walk of the log folders serves the output check, the loader and the in-memory decision.
    found = found if found is not None else find_logs(list(paths))
    logs = load_logset(list(paths), found.kinds)
    frames = nk_frames(logs, catalogue)
    conn = frames["conn"]
    assert conn is not None
    findings = detect(logs, catalogue, tor, scope="nk", in_memory=found.size <= IN_MEMORY_MAX_BYTES,
                      clients=clients)
    names = [r.name for r in catalogue.ranges]
    ssl = frames["ssl"]
    classified = protection_classes(
        conn,
        ssl_uids=ssl["uid"].drop_nulls() if ssl is not None else (),
        tor_uids=finding_uids(findings, "tor"),
    )
    line = timeline(conn, names)
    daily = {
        "connections": dict(zip(line.days, line.total("connections"), strict=True)),
        "bytes": dict(zip(line.days, line.total("bytes"), strict=True)),
    }
    baseline_rule = (
        "baseline = the first half of the calendar days in the logs"
        if options.baseline_days is None
        else f"baseline = the first {options.baseline_days} calendar days in the logs"
    )
    return Report(
        source=", ".join(str(p) for p in paths),
        kinds=logs.kinds(),
        cidrs={r.name: str(r.cidr) for r in catalogue.ranges},
        overview=overview(conn, names, count_findings(findings.select("category", "reason").iter_rows())),
        activity=activity_profile(
            domain_observations(conn, frames["dns"], ssl, frames["http"]),
            conn,
            categories,
            options.top_domains,
        ),
        protection=protection_share(classified, finding_uids(findings, "weak-tls", WEAK_CRYPTO_REASONS)),
        tor=tor_hosts(conn, tor_uses(findings)),
        torrents=torrent_days(conn, finding_uids(findings, "torrent")),
        countries=peer_countries(conn, country_of, options.baseline_days) if country_of else None,
        timeline=line,
        events=score_events(events, daily, options.threshold, options.window),
        clients=client_fingerprints(conn, frames["hellos"], finding_uids(findings, "client", ["weak-offer"]),
                                    clients.label),
        threshold=options.threshold,
        window=options.window,
        baseline_rule=baseline_rule,
    )


def protection_statement(p: Protection) -> str:
    if p.total_connections == 0:
        return "No NK connections in these logs, so there is no protection share to give."
    obfuscated_c = p.classes["encrypted"].connection_share + p.classes["anonymised"].connection_share
    obfuscated_b = p.classes["encrypted"].byte_share + p.classes["anonymised"].byte_share
    weak = (
        f" Of the encrypted connections, {p.weak.connection_share:.1%} used weak TLS."
        if p.classes["encrypted"].connections
        else ""
    )
    return (
        f"{obfuscated_c:.2%} of NK connections and {obfuscated_b:.2%} of NK bytes were encrypted or "
        f"anonymised (Tor: {p.classes['anonymised'].connection_share:.2%} of connections).{weak} "
        f"{STUDY_OBFUSCATED}"
    )


def events_statement(results: Sequence[EventResult], threshold: float) -> str:
    if not results:
        return (
            "No events were given. Pass --events FILE, a CSV of date,label rows (e.g. missile tests), "
            "to test NK activity on and after each date against the surrounding days."
        )
    scores = [s for r in results for s in r.scores]
    scored = [s for s in scores if s.z is not None]
    spikes = [(r.event, s) for r in results for s in r.scores if s.spike]
    if spikes:
        listed = "; ".join(f"{s.day} {s.metric} z={s.z:+.2f} ({e.label})" for e, s in spikes)
        return f"Yes: {len(spikes)} event-day score(s) reached |z| ≥ {threshold:g}: {listed}."
    if not scored:
        return (
            f"Cannot tell: none of the {len(scores)} event-day scores could be computed "
            "(see the notes: days outside the logs, too few surrounding days, or a flat baseline)."
        )
    return (
        f"No: no event day exceeded |z| ≥ {threshold:g} ({len(scored)} of {len(scores)} "
        f"day-and-metric scores could be computed; see the notes for the others)."
    )


# ----------------------------------------------------------------- output


def _px(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _num(value: float) -> str:
    """A median or MAD: thousands separated, and no ".0" on whole numbers."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _ts(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "no data"


def _day(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).date().isoformat() if value else "no data"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sensor_plugins", "templates/report"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        px=_px,
        num=_num,
        ts=_ts,
        day=_day,
        bytes=format_bytes,
        count=lambda n: f"{n:,}",
        pct=lambda f: f"{f:.2%}",
    )
    return env


def charts(report: Report) -> dict[str, Chart]:
    marks = [(e.event.date, e.event.label) for e in report.events]
    return {
        "daily": daily_stacked_bars(report.timeline, marks),
        "categories": category_bars(report.activity),
        "protection": protection_bars(report.protection),
        "clients": client_bars(report.clients),
    }


def render_html(report: Report) -> str:
    template = environment().get_template("report.html.j2")
    r = _TemplateView(report, charts(report))
    return template.render(r=r)


class _TemplateView:
    """The report plus its charts and labels, as the template sees it."""

    def __init__(self, report: Report, chart_map: dict[str, Chart]) -> None:
        self._report = report
        self.charts = chart_map
        self.protection_labels = PROTECTION_LABELS
        self.timeline_totals = report.timeline.total("connections")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._report, name)


def to_json(report: Report) -> str:
    data = dataclasses.asdict(report)
    data["statements"] = {
        "protection": report.protection_statement,
        "events": report.events_statement,
        "any_spike": report.any_spike,
    }
    for result, raw in zip(report.events, data["events"], strict=True):
        raw["spike"] = result.spike
    if report.countries is not None:
        for row, raw in zip(report.countries.rows, data["countries"]["rows"], strict=True):
            raw["change_points"] = row.change_points
    return json.dumps(data, default=_json_default, indent=2, sort_keys=True) + "\n"


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


# ----------------------------------------------------------------- command


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report",
        help="write an HTML (or JSON) report of NK activity from Zeek logs",
        description="The 2017 study's picture from your own Zeek logs: overview, activity profile, "
        "protection share, Tor and torrents, peer countries, timeline and events.",
    )
    parser.add_argument("logs", nargs="+", type=Path, metavar="LOGDIR", help="Zeek log directories or files")
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="write the HTML report here")
    parser.add_argument("--clients", type=Path, action="append", metavar="FILE",
                        help="a known-client table (ja4<TAB>name<TAB>source lines) added to the bundled one")
    parser.add_argument(
        "--format",
        choices=("html", "json"),
        default="html",
        help="json: write the report's numbers as JSON (to --json FILE, else stdout)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="with --format json: write JSON here")
    parser.add_argument(
        "--events", type=Path, metavar="FILE", help="CSV of date,label rows (e.g. missile tests)"
    )
    parser.add_argument(
        "--geoip",
        type=Path,
        metavar="FILE.mmdb",
        help="a MaxMind-format country database for the peer-countries section",
    )
    parser.add_argument(
        "--categories",
        type=Path,
        metavar="FILE",
        help="YAML of extra service categories/domains (same format as the bundled one)",
    )
    parser.add_argument(
        "--baseline-days",
        type=int,
        metavar="N",
        help="peer countries: the first N calendar days are the baseline (default: first half)",
    )
    parser.add_argument(
        "--z-threshold",
        type=finite_float,
        default=DEFAULT_THRESHOLD,
        metavar="Z",
        help=f"|robust z| at or above which an event day is a spike (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--window-days",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"events: compare with the days within ±N days (default {DEFAULT_WINDOW})",
    )
    add_input_arguments(parser)
    add_read_limit_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with using_read_limits(read_limits_of(args)):
        return run_with_limits(args)


def run_with_limits(args: argparse.Namespace) -> int:
    if args.format == "html" and args.html is None:
        raise SensorPluginsError("report: give --html OUT.html, or --format json for JSON")
    if args.json is not None and args.format != "json":
        raise SensorPluginsError("report: --json needs --format json")
    found = find_logs(list(args.logs))
    check_outputs(args, found.files)
    if args.z_threshold <= 0:
        raise SensorPluginsError("report: --z-threshold must be greater than 0")
    if args.window_days < 2:
        raise SensorPluginsError("report: --window-days must be at least 2")
    if args.baseline_days is not None and args.baseline_days < 1:
        raise SensorPluginsError("report: --baseline-days must be at least 1")
    catalogue, tor = load_inputs(args)
    categories = load_categories(args.categories)
    events = load_events(args.events) if args.events else []
    options = ReportOptions(args.z_threshold, args.window_days, args.baseline_days)
    country_of, close = open_country_lookup(args.geoip) if args.geoip else (None, None)
    try:
        report = build_report(args.logs, catalogue, tor, categories, events, country_of, options,
                              load_client_table(args.clients), found)
    except pl.exceptions.PolarsError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SensorPluginsError(f"report: cannot read the logs: {first[:200]}") from exc
    finally:
        if close is not None:
            close()
    report.geoip_file = str(args.geoip) if args.geoip else ""
    report.categories_file = str(args.categories) if args.categories else ""
    if args.html is not None:
        write_output(args.html, render_html(report))
        print(f"report: wrote {args.html}", file=sys.stderr)
    if args.format == "json":
        text = to_json(report)
        if args.json is not None:
            write_output(args.json, text)
        else:
            sys.stdout.write(text)
    return 0


def check_outputs(args: argparse.Namespace, logs: Sequence[Path]) -> None:
    """--html and --json must be regular files (or new), apart, and none of the inputs (``logs`` among them)."""
    outputs = [(flag, p) for flag, p in (("--html", args.html), ("--json", args.json)) if p is not None]
    if len(outputs) == 2 and outputs[0][1].resolve() == outputs[1][1].resolve():
        raise SensorPluginsError(f"{args.html}: --html and --json name the same file")
    if not outputs:
        return
    inputs = [*logs, *input_files(args),
              *(p for p in (args.events, args.geoip, args.categories) if p is not None)]
    for flag, path in outputs:
        check_output_file(path, inputs, flag)


def write_output(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise SensorPluginsError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
