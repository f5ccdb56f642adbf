"""The sid registry: sids are stable, revs follow content, retired sids never come back."""

from __future__ import annotations

import datetime as dt

import pytest

from sensor_plugins.generate.sids import SidRegistry, SidRegistryError

BLOCK = (1_650_000, 1_650_009)
DAY1, DAY2 = dt.date(2024, 1, 1), dt.date(2024, 2, 1)


def run(registry: SidRegistry, rules: dict[str, str], day: dt.date = DAY1):
    assigned = {key: registry.assign(key, text, day) for key, text in rules.items()}
    return assigned, registry.finish()


def regenerate(previous: SidRegistry) -> SidRegistry:
    """What the next `generate` sees: the committed JSON, read back."""
    return SidRegistry.from_json(previous.to_json(), "sid-map.json", BLOCK)


def test_new_rules_get_consecutive_sids_from_the_block_at_rev_1():
    assigned, _ = run(SidRegistry(BLOCK), {"a": "x", "b": "y"})
    assert [(a.sid, a.rev) for a in assigned.values()] == [(1_650_000, 1), (1_650_001, 1)]


def test_an_unchanged_rule_keeps_sid_and_rev():
    first = SidRegistry(BLOCK)
    run(first, {"a": "x"})
    assigned, summary = run(regenerate(first), {"a": "x"}, DAY2)
    assert (assigned["a"].sid, assigned["a"].rev, summary.changed_anything) == (1_650_000, 1, False)


def test_a_changed_rule_keeps_its_sid_and_gets_rev_plus_one_dated_that_day():
    first = SidRegistry(BLOCK)
    run(first, {"a": "x"})
    assigned, _ = run(regenerate(first), {"a": "x changed"}, DAY2)
    a = assigned["a"]
    assert (a.sid, a.rev, a.created_at, a.updated_at) == (1_650_000, 2, DAY1, DAY2)


def test_a_removed_rule_is_retired_and_its_sid_is_never_reused():
    first = SidRegistry(BLOCK)
    run(first, {"a": "x", "b": "y"})
    second = regenerate(first)
    _, summary = run(second, {"a": "x"})
    assigned, _ = run(regenerate(second), {"a": "x", "c": "z"})
    assert (summary.retired, assigned["c"].sid) == (("b",), 1_650_002)


def test_a_retired_key_that_returns_gets_a_fresh_sid():
    first = SidRegistry(BLOCK)
    run(first, {"a": "x", "b": "y"})
    second = regenerate(first)
    run(second, {"a": "x"})
    assigned, _ = run(regenerate(second), {"a": "x", "b": "y"})
    assert assigned["b"].sid == 1_650_002


def test_version_rises_on_every_change_and_only_then():
    registry = SidRegistry(BLOCK)
    versions = [run(registry, {"a": "x"})[1].version]
    for rules in ({"a": "x"}, {"a": "y"}, {"a": "y", "b": "z"}, {"b": "z"}):
        registry = regenerate(registry)
        versions.append(run(registry, rules)[1].version)
    assert versions == [1, 1, 2, 3, 4]


def test_summary_lists_added_changed_and_retired_keys():
    first = SidRegistry(BLOCK)
    run(first, {"keep": "1", "change": "2", "drop": "3"})
    _, summary = run(regenerate(first), {"keep": "1", "change": "2b", "new": "4"})
    assert summary.lines() == [
        "ruleset VERSION 2: 1 added, 1 changed, 1 retired", "  + new", "  ~ change", "  - drop"]


def test_an_exhausted_block_is_a_clear_error():
    with pytest.raises(SidRegistryError, match="sid block 1650000-1650009 is used up"):
        run(SidRegistry(BLOCK), {f"k{i}": "x" for i in range(11)})


def test_rendering_one_key_twice_is_refused():
    registry = SidRegistry(BLOCK)
    registry.assign("a", "x", DAY1)
    with pytest.raises(SidRegistryError, match="rendered twice"):
        registry.assign("a", "y", DAY1)


@pytest.mark.parametrize("text, expected", [
    ("{", "invalid sid registry JSON"),
    ('{"format": 9}', "not a sid registry"),
    ('{"format": 1, "version": 1, "rules": {"a": {"sid": 5, "rev": 1, "digest": "d", '
     '"created_at": "2024-01-01", "updated_at": "2024-01-01"}}}', "outside 1000000-1999999"),
    ('{"format": 1, "version": 1, "rules": {}, "retired": {"a": 1650000, "b": 1650000}}', "used by both"),
    ('{"format": 1, "version": 1, "rules": {"Bad Key;": {}}}', "invalid rule key"),
])
def test_a_corrupt_registry_is_refused(text, expected):
    with pytest.raises(SidRegistryError, match=expected):
        SidRegistry.from_json(text, "sid-map.json", BLOCK)
