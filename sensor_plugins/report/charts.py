"""SVG chart geometry for the report, computed here as numbers so the template only places shapes.

Each chart is a ``Chart`` of rectangles, lines and texts in a fixed view box; the template
draws any chart the same way and escapes every text. Colours are the Okabe-Ito palette,
which stays distinguishable for the common forms of colour blindness.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sensor_plugins.report.metrics import Activity, Clients, Protection, Timeline

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#666666")
PROTECTION_COLOURS = {"anonymised": "#CC79A7", "encrypted": "#009E73", "clear": "#D55E00"}
PROTECTION_LABELS = {
    "anonymised": "Anonymised (Tor)",
    "encrypted": "Encrypted (TLS, SSH, QUIC)",
    "clear": "Clear text or unidentified",
}
WIDTH = 1000
MAX_X_LABELS = 14


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    title: str = ""


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    css: str = "axis"


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"
    css: str = "label"


@dataclass
class Chart:
    id: str
    title: str
    description: str
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``maximum``: steps of 1, 2 or 5 times a power of ten."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    top = math.ceil(maximum / step) * step
    return [round(i * step, 10) for i in range(round(top / step) + 1)]


def format_count(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def format_bytes(value: float) -> str:
    """Decimal units (kB = 1000 B), as network tools count traffic."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:g} B"


def daily_stacked_bars(timeline: Timeline, events: Sequence[tuple[dt.date, str]] = ()) -> Chart:
    """Connections per day, one stacked segment per range, with dashed lines on event days."""
    left, right, top, bottom = 70, 20, 20, 60
    height = 340
    chart = Chart(
        id="chart-daily",
        title="NK connections per day, by range",
        description="Stacked bars: connections per calendar day (UTC), one colour per catalogue range.",
        width=WIDTH,
        height=height,
    )
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    totals = timeline.total("connections")
    ticks = nice_ticks(max(totals, default=0))
    scale = plot_h / ticks[-1]
    _y_axis(chart, ticks, left, top, plot_w, plot_h, scale, format_count)
    chart.texts.append(Text(16, top + plot_h / 2, "connections per day", "middle", "axis-title rotate"))
    n = max(len(timeline.days), 1)
    band = plot_w / n
    bar_w = max(band * 0.8, 1.0)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(timeline.ranges)}
    for i, day in enumerate(timeline.days):
        x = left + i * band + (band - bar_w) / 2
        base = top + plot_h
        for name in timeline.ranges:
            value = timeline.connections[name][i]
            if value <= 0:
                continue
            h = value * scale
            base -= h
            chart.rects.append(Rect(x, base, bar_w, h, colours[name], f"{day} {name}: {value} connections"))
    # Month-day labels are ambiguous once the span crosses a year; full dates need more room.
    long_span = n > 180
    every = max(1, math.ceil(n / (MAX_X_LABELS // 2 if long_span else MAX_X_LABELS)))
    for i, day in enumerate(timeline.days):
        if i % every == 0:
            x = left + i * band + band / 2
            chart.lines.append(Line(x, top + plot_h, x, top + plot_h + 5))
            label = day.isoformat() if long_span else day.strftime("%m-%d")
            chart.texts.append(Text(x, top + plot_h + 20, label, "middle"))
    first = timeline.days[0].isoformat() if timeline.days else "no data"
    chart.texts.append(
        Text(left + plot_w / 2, height - 14, f"day (UTC), from {first}", "middle", "axis-title")
    )
    index = {d: i for i, d in enumerate(timeline.days)}
    for day, label in events:
        if day in index:
            x = left + index[day] * band + band / 2
            chart.lines.append(Line(x, top, x, top + plot_h, "event"))
            chart.texts.append(Text(x + 3, top + 12, label[:40], "start", "event-label"))
    chart.legend = [(colours[name], name) for name in timeline.ranges]
    return chart


def category_bars(activity: Activity) -> Chart:
    """Horizontal bars: domain observations per service category."""
    left, right, top, row_h = 190, 90, 10, 26
    rows = activity.categories
    height = top + max(len(rows), 1) * row_h + 50
    chart = Chart(
        id="chart-categories",
        title="Activity by service category",
        description="Observations per category: DNS queries, TLS server names and HTTP hosts "
        "on NK connections.",
        width=WIDTH,
        height=height,
    )
    plot_w = WIDTH - left - right
    plot_h = max(len(rows), 1) * row_h
    scale = _count_x_axis(chart, max((c.observations for c in rows), default=0), left, top, plot_w, plot_h)
    for i, row in enumerate(rows):
        y = top + i * row_h
        w = row.observations * scale
        chart.rects.append(Rect(left, y + 4, w, row_h - 8, PALETTE[0], f"{row.label}: {row.observations}"))
        chart.texts.append(Text(left - 8, y + row_h / 2 + 4, row.label, "end"))
        chart.texts.append(Text(left + w + 6, y + row_h / 2 + 4, f"{row.observations:,}", "start", "value"))
    chart.texts.append(
        Text(
            left + plot_w / 2,
            height - 8,
            "observations (DNS queries + TLS server names + HTTP hosts)",
            "middle",
            "axis-title",
        )
    )
    chart.legend = [(PALETTE[0], "observations")]
    return chart


def protection_bars(protection: Protection) -> Chart:
    """Two 100% bars, connections and bytes, split into anonymised, encrypted and clear."""
    left, right, top, row_h = 110, 30, 10, 44
    height = top + 2 * row_h + 50
    chart = Chart(
        id="chart-protection",
        title="Protection share of NK traffic",
        description="Share of NK connections and bytes that were anonymised, encrypted or clear.",
        width=WIDTH,
        height=height,
    )
    plot_w = WIDTH - left - right
    for pct in range(0, 101, 10):
        x = left + plot_w * pct / 100
        chart.lines.append(Line(x, top, x, top + 2 * row_h, "grid"))
        chart.texts.append(Text(x, top + 2 * row_h + 18, f"{pct}%", "middle"))
    chart.lines.append(Line(left, top + 2 * row_h, left + plot_w, top + 2 * row_h))
    for i, (label, attr) in enumerate((("Connections", "connection_share"), ("Bytes", "byte_share"))):
        y = top + i * row_h
        chart.texts.append(Text(left - 8, y + row_h / 2 + 4, label, "end"))
        x = float(left)
        for name, share in protection.classes.items():
            fraction = getattr(share, attr)
            w = plot_w * fraction
            if w <= 0:
                continue
            chart.rects.append(
                Rect(
                    x,
                    y + 6,
                    w,
                    row_h - 12,
                    PROTECTION_COLOURS[name],
                    f"{PROTECTION_LABELS[name]}: {fraction:.2%}",
                )
            )
            if w >= 60:
                chart.texts.append(Text(x + w / 2, y + row_h / 2 + 4, f"{fraction:.1%}", "middle", "inside"))
            x += w
    chart.texts.append(
        Text(left + plot_w / 2, height - 8, "share of the NK total (%)", "middle", "axis-title")
    )
    chart.legend = [(PROTECTION_COLOURS[n], PROTECTION_LABELS[n]) for n in protection.classes]
    return chart


MAX_CLIENT_BARS = 12
CLIENT_COLOURS = {True: "#D55E00", False: "#009E73"}
CLIENT_LEGEND = {True: "offers RC4, export, NULL, anonymous or DES suites", False: "offers none of them"}


def client_bars(clients: Clients) -> Chart:
    """One bar per (NK host, fingerprint), the most used first: how many connections each made."""
    shown = sorted(clients.fingerprints, key=lambda f: (-f.connections, f.host, f.ja4))[:MAX_CLIENT_BARS]
    left, right, top, row_h = 430, 40, 10, 26
    height = top + max(len(shown), 1) * row_h + 46
    chart = Chart(
        id="chart-clients",
        title="TLS client fingerprints of NK hosts",
        description="Connections per NK host and JA4 fingerprint; orange where the client offers weak suites.",
        width=WIDTH,
        height=height,
    )
    plot_w, plot_h = WIDTH - left - right, max(len(shown), 1) * row_h
    scale = _count_x_axis(chart, max((f.connections for f in shown), default=0), left, top, plot_w, plot_h)
    for i, f in enumerate(shown):
        y = top + i * row_h
        name = f" ({f.client})" if f.client else ""
        chart.texts.append(Text(left - 8, y + row_h / 2 + 4, f"{f.host} {f.ja4}", "end"))
        chart.rects.append(Rect(left, y + 4, f.connections * scale, row_h - 8, CLIENT_COLOURS[f.weak_offer],
                                f"{f.host} {f.ja4}{name}: {f.connections} connections"))
    chart.texts.append(Text(left + plot_w / 2, height - 8, "connections", "middle", "axis-title"))
    chart.legend = [(CLIENT_COLOURS[w], CLIENT_LEGEND[w]) for w in (True, False)]
    return chart


def _count_x_axis(chart: Chart, maximum: float, left: float, top: float, plot_w: float, plot_h: float) -> float:
    """The count axis of a horizontal bar chart (grid, tick labels, both axis lines); its pixels per unit."""
    ticks = nice_ticks(maximum)
    scale = plot_w / ticks[-1]
    for tick in ticks:
        x = left + tick * scale
        chart.lines.append(Line(x, top, x, top + plot_h, "grid"))
        chart.texts.append(Text(x, top + plot_h + 18, format_count(tick), "middle"))
    chart.lines.append(Line(left, top, left, top + plot_h))
    chart.lines.append(Line(left, top + plot_h, left + plot_w, top + plot_h))
    return scale


def _y_axis(
    chart: Chart,
    ticks: list[float],
    left: float,
    top: float,
    plot_w: float,
    plot_h: float,
    scale: float,
    fmt: Callable[[float], str],
) -> None:
    for tick in ticks:
        y = top + plot_h - tick * scale
        chart.lines.append(Line(left, y, left + plot_w, y, "grid"))
        chart.texts.append(Text(left - 8, y + 4, fmt(tick), "end"))
    chart.lines.append(Line(left, top, left, top + plot_h))
    chart.lines.append(Line(left, top + plot_h, left + plot_w, top + plot_h))
