"""Events CSV parsing and the robust z-score of event days against the surrounding days."""

from __future__ import annotations

import datetime as dt

import pytest

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.report.events import Event, load_events, parse_events, robust_z, score_events


def day(n: int) -> dt.date:
    return dt.date(2017, 7, 1) + dt.timedelta(days=n - 1)


def test_events_csv_with_header_gives_sorted_events():
    text = "date,label\n2017-09-03,Sixth nuclear test\n2017-07-04,Hwasong-14 launch\n"
    assert parse_events(text, "e.csv") == [
        Event(dt.date(2017, 7, 4), "Hwasong-14 launch"),
        Event(dt.date(2017, 9, 3), "Sixth nuclear test"),
    ]


def test_events_csv_label_may_hold_a_quoted_comma():
    assert (
        parse_events('2017-07-28,"Hwasong-14, second launch"\n', "e.csv")[0].label
        == "Hwasong-14, second launch"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2017-13-01,bad month\n", "e.csv: line 1: date '2017-13-01' is not YYYY-MM-DD"),
        ("2017-07-04\n", "e.csv: line 1: expected 2 fields (date,label), got 1"),
        ("date,label\n2017-07-04,\n", "e.csv: line 2: label must be 1-120 printable characters on one line"),
        ('2017-07-04,"two\nlines"\n', "e.csv: line 2: label must be 1-120 printable characters on one line"),
    ],
)
def test_bad_events_rows_fail_with_the_file_and_line(text, message):
    with pytest.raises(SensorPluginsError) as caught:
        parse_events(text, "e.csv")
    assert str(caught.value) == message


def test_events_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"2017-07-04,\xff\xfe\n")
    with pytest.raises(SensorPluginsError, match="not UTF-8 at byte 11"):
        load_events(path)


def test_robust_z_matches_a_hand_computed_value():
    # Baseline 10, 12, 11, 13, 9: median 11, |deviations| 1, 1, 0, 2, 2 -> MAD 1.
    # z for 20 = (20 - 11) / (1.4826 * 1) = 6.0704...
    median, mad, z = robust_z(20, [10, 12, 11, 13, 9])
    assert (median, mad, round(z, 4)) == (11, 1, round(9 / 1.4826, 4))


def test_robust_z_is_not_given_when_the_mad_is_zero():
    assert robust_z(50, [7, 7, 7, 7, 8]) == (7, 0.0, None)


def alternating_days(n: int, spike_day: int | None = None, spike: int = 0) -> dict[dt.date, int]:
    """Days 1..n with 3 connections on even days and 4 on odd days, plus ``spike`` on ``spike_day``."""
    values = {day(i): 3 if i % 2 == 0 else 4 for i in range(1, n + 1)}
    if spike_day:
        values[day(spike_day)] += spike
    return values


def test_an_event_day_far_above_the_surrounding_days_is_a_spike():
    # 12 days alternating 4/3; 07-04 gets +20 = 23. Baseline for 07-04 leaves out 07-04 and
    # 07-05: days 1,2,3,6..12 = five 3s and five 4s -> median 3.5, MAD 0.5,
    # z = (23 - 3.5) / (1.4826 * 0.5) = 19.5 / 0.7413 = 26.305.
    results = score_events([Event(day(4), "launch")], {"connections": alternating_days(12, 4, 20)})
    first = results[0].scores[0]
    assert (first.median, first.mad, round(first.z, 2), first.spike) == (3.5, 0.5, 26.31, True)


def test_the_day_after_an_event_is_scored_too():
    # 07-05 has 4: z = (4 - 3.5) / 0.7413 = 0.67, not a spike.
    results = score_events([Event(day(4), "launch")], {"connections": alternating_days(12, 4, 20)})
    second = results[0].scores[1]
    assert (second.day, round(second.z, 2), second.spike) == (day(5), 0.67, False)


def test_no_spike_when_event_days_look_like_the_rest():
    results = score_events([Event(day(6), "quiet day")], {"connections": alternating_days(20)})
    assert results[0].spike is False


def test_a_flat_baseline_is_explained_instead_of_dividing_by_zero():
    flat = dict.fromkeys((day(i) for i in range(1, 13)), 5)
    flat[day(4)] = 30
    score = score_events([Event(day(4), "launch")], {"connections": flat})[0].scores[0]
    assert (score.z, score.spike, score.note) == (
        None,
        False,
        "MAD is 0 (most surrounding days equal the median), so no z-score; "
        "the value differs from the median 5",
    )


def test_an_event_outside_the_logs_has_no_data_rather_than_zero():
    score = score_events([Event(day(40), "later")], {"connections": alternating_days(12)})[0].scores[0]
    assert (score.value, score.note) == (None, "no log data for this day")


def test_too_few_surrounding_days_are_not_scored():
    score = score_events([Event(day(2), "early")], {"connections": alternating_days(4)})[0].scores[0]
    assert score.note == "only 2 surrounding days with data (need 5)"


def test_the_threshold_decides_what_counts_as_a_spike():
    # Baseline 10, 12, 11, 13, 9 around day 4 -> median 11, MAD 1; 15 gives z = 2.70.
    daily = {day(1): 10, day(2): 12, day(3): 11, day(4): 15, day(5): 11, day(6): 13, day(7): 9}
    lenient = score_events([Event(day(4), "e")], {"c": daily}, threshold=2.5)[0].scores[0]
    strict = score_events([Event(day(4), "e")], {"c": daily}, threshold=3.5)[0].scores[0]
    assert (lenient.spike, strict.spike) == (True, False)
