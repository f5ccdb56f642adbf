"""Chart geometry: axes with round ticks, bars in proportion, a legend for every series."""

from __future__ import annotations

import datetime as dt

import pytest

from sensor_plugins.report.charts import (
    category_bars,
    daily_stacked_bars,
    format_bytes,
    nice_ticks,
    protection_bars,
)
from sensor_plugins.report.metrics import Activity, CategoryActivity, Protection, Share, Timeline


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (23, [0, 5, 10, 15, 20, 25]),
        (1000, [0, 200, 400, 600, 800, 1000]),
        (0, [0, 1]),
        (0.3, [0, 0.1, 0.2, 0.3]),
    ],
)
def test_ticks_are_round_and_reach_the_maximum(maximum, ticks):
    assert nice_ticks(maximum) == ticks


@pytest.mark.parametrize(("value", "text"), [(999, "999 B"), (1500, "1.5 kB"), (575_000_000, "575 MB")])
def test_bytes_are_shown_in_decimal_units(value, text):
    assert format_bytes(value) == text


def two_day_timeline() -> Timeline:
    return Timeline(
        days=[dt.date(2017, 7, 1), dt.date(2017, 7, 2)],
        ranges=["kp-star-jv", "kp-satgate"],
        connections={"kp-star-jv": [10, 5], "kp-satgate": [10, 0]},
        bytes={"kp-star-jv": [1, 1], "kp-satgate": [1, 0]},
    )


def test_stacked_bar_segments_are_in_proportion_to_their_counts():
    chart = daily_stacked_bars(two_day_timeline())
    heights = [round(r.h, 6) for r in chart.rects]
    # Day 1: 10 + 10 stacked; day 2: 5 (kp-satgate's 0 draws nothing).
    assert heights == [heights[0], heights[0], round(heights[0] / 2, 6)]


def test_stacked_bars_have_a_legend_entry_per_range():
    assert [label for _, label in daily_stacked_bars(two_day_timeline()).legend] == [
        "kp-star-jv",
        "kp-satgate",
    ]


def test_event_days_are_marked_on_the_daily_chart():
    chart = daily_stacked_bars(
        two_day_timeline(), [(dt.date(2017, 7, 2), "launch"), (dt.date(2018, 1, 1), "x")]
    )
    assert [t.text for t in chart.texts if t.css == "event-label"] == ["launch"]


def test_category_bar_lengths_follow_observations():
    activity = Activity(
        [
            CategoryActivity("video", "Video streaming", 40, 0, 0, 0, []),
            CategoryActivity("news", "News", 10, 0, 0, 0, []),
        ],
        50,
    )
    widths = [r.w for r in category_bars(activity).rects]
    assert widths[0] == pytest.approx(4 * widths[1])


def test_protection_bar_segments_fill_the_whole_width():
    share = {
        "anonymised": Share(1, 10, 0.1, 0.01),
        "encrypted": Share(6, 900, 0.6, 0.9),
        "clear": Share(3, 90, 0.3, 0.09),
    }
    chart = protection_bars(Protection(10, 1000, share, Share(0, 0, 0.0, 0.0)))
    connection_row = [r for r in chart.rects if r.y == chart.rects[0].y]
    assert sum(r.w for r in connection_row) == pytest.approx(1000 - 110 - 30)
