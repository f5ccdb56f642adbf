"""Events (e.g. missile tests) against daily NK activity: did the day or the next one spike?

For each event the day itself and the day after are each compared with the surrounding
days (``±window`` days, leaving out the two event days) by a robust z-score,
``z = (x - median) / (1.4826 * MAD)``. The median and the median absolute deviation are
not dragged by the spike being tested, unlike a mean and standard deviation; 1.4826
scales the MAD to a standard deviation for normal data, and |z| >= 3.5 is the usual
outlier cut (Iglewicz and Hoaglin).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.textfile import read_text

MAD_SCALE = 1.4826
DEFAULT_THRESHOLD = 3.5
DEFAULT_WINDOW = 14
# Fewer surrounding days than this make a median and MAD too noisy to call anything a spike.
MIN_BASELINE_DAYS = 5
MAX_EVENTS_BYTES = 1024 * 1024
MAX_LABEL = 120
LABEL_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


class EventsError(SensorPluginsError):
    """An events CSV that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Event:
    date: dt.date
    label: str


@dataclass(frozen=True)
class DayScore:
    """One event day (the day itself or the next) for one metric against its baseline."""

    day: dt.date
    metric: str
    value: int | None
    median: float | None
    mad: float | None
    baseline_days: int
    z: float | None
    spike: bool
    note: str


@dataclass(frozen=True)
class EventResult:
    event: Event
    scores: list[DayScore]

    @property
    def spike(self) -> bool:
        return any(s.spike for s in self.scores)


def parse_events(text: str, where: str) -> list[Event]:
    """``date,label`` rows (a header row naming ``date`` is allowed); ISO dates; labels one line."""
    events = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if line == 1 and row[0].strip().lower() == "date":
            continue
        if len(row) != 2:
            raise EventsError(f"{where}: line {line}: expected 2 fields (date,label), got {len(row)}")
        raw_date, label = row[0].strip(), row[1].strip()
        try:
            date = dt.date.fromisoformat(raw_date)
        except ValueError as exc:
            raise EventsError(f"{where}: line {line}: date {raw_date[:40]!r} is not YYYY-MM-DD") from exc
        if not label or len(label) > MAX_LABEL or not LABEL_RE.fullmatch(label):
            raise EventsError(
                f"{where}: line {line}: label must be 1-{MAX_LABEL} printable characters on one line"
            )
        events.append(Event(date, label))
    return sorted(events, key=lambda e: (e.date, e.label))


def load_events(path: Path | str) -> list[Event]:
    path = Path(path)
    text = read_text(path, "events file", MAX_EVENTS_BYTES, EventsError, encoding="utf-8-sig")
    try:
        return parse_events(text, str(path))
    except csv.Error as exc:
        raise EventsError(f"{path}: invalid CSV: {exc}") from exc


def robust_z(value: float, baseline: Sequence[float]) -> tuple[float, float, float | None]:
    """(median, MAD, z) of ``value`` against ``baseline``; z is None when the MAD is 0.

    A MAD of 0 means at least half the baseline days had exactly the median value; any
    difference would score as infinite, so no z is given and the caller says why.
    """
    median = statistics.median(baseline)
    mad = statistics.median(abs(x - median) for x in baseline)
    if mad == 0:
        return median, 0.0, None
    return median, mad, (value - median) / (MAD_SCALE * mad)


def score_day(
    day: dt.date,
    metric: str,
    daily: dict[dt.date, int],
    excluded: set[dt.date],
    window: int,
    threshold: float,
) -> DayScore:
    """Score one day's value against the days within ``window`` of it that have data."""
    if day not in daily:
        return DayScore(day, metric, None, None, None, 0, None, False, "no log data for this day")
    value = daily[day]
    baseline = [
        daily[d]
        for offset in range(-window, window + 1)
        if (d := day + dt.timedelta(days=offset)) in daily and d not in excluded
    ]
    if len(baseline) < MIN_BASELINE_DAYS:
        return DayScore(
            day,
            metric,
            value,
            None,
            None,
            len(baseline),
            None,
            False,
            f"only {len(baseline)} surrounding days with data (need {MIN_BASELINE_DAYS})",
        )
    median, mad, z = robust_z(value, baseline)
    if z is None:
        note = "MAD is 0 (most surrounding days equal the median), so no z-score; " + (
            "the value equals the median"
            if value == median
            else f"the value differs from the median {median:g}"
        )
        return DayScore(day, metric, value, median, mad, len(baseline), None, False, note)
    return DayScore(day, metric, value, median, mad, len(baseline), z, abs(z) >= threshold, "")


def score_events(
    events: Sequence[Event],
    daily: dict[str, dict[dt.date, int]],
    threshold: float = DEFAULT_THRESHOLD,
    window: int = DEFAULT_WINDOW,
) -> list[EventResult]:
    """Each event's day and next day, per metric in ``daily`` (metric -> day -> value).

    ``daily`` must hold every calendar day inside the logs' span (zero for quiet days) and
    no day outside it: a day without logs is unknown, not zero.
    """
    results = []
    for event in events:
        event_days = [event.date, event.date + dt.timedelta(days=1)]
        excluded = set(event_days)
        scores = [
            score_day(day, metric, values, excluded, window, threshold)
            for metric, values in daily.items()
            for day in event_days
        ]
        results.append(EventResult(event, scores))
    return results
