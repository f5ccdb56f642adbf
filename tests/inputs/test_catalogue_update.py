"""`catalogue update`, `show` and `lookup`: the catalogue kept current from registry, routing and GeoIP data.

The synthetic history (tests/inputs/fixtures/registry/history/) runs through the command
step by step: a range is added, one split, one moved to another origin AS, two withdrawn.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_history import STEPS, step_args

from sensor_plugins.cli import main
from sensor_plugins.inputs.catalogue import default_catalogue_path, load_catalogue, parse_catalogue
from sensor_plugins.inputs.catalogue_write import apply_changes, catalogue_lock
from sensor_plugins.inputs.command import load_sources, register_catalogue
from sensor_plugins.inputs.registry import DelegatedFile, Delegation, GeoipNetworks, Pfx2asFile
from sensor_plugins.inputs.update import Sources, diff, propose, slug

DAY = dt.date(2026, 11, 30)
STAR_JV = 131279


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.yaml"
    shutil.copy(default_catalogue_path(), path)
    return path


def update(catalogue: Path, args: list[str], mode: str, capsys) -> tuple[int, str, str]:
    code = main(["catalogue", "update", "--catalogue", str(catalogue), *args, mode])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def delegation(cidr: str, holder: str = "H1", country: str = "KP") -> Delegation:
    return Delegation("apnic", country, ipaddress.ip_network(cidr), "allocated", dt.date(2026, 8, 25), holder, "t")


def sources(delegations=(), routes=(), geo=(), asns=(STAR_JV,), day=DAY) -> Sources:
    return Sources(
        country="KP", asns=frozenset(asns),
        delegated=(DelegatedFile("d", "apnic", day, tuple(delegations)),),
        pfx2as=Pfx2asFile.of("p", day, [(ipaddress.ip_network(c), o) for c, o in routes]),
        geoip=GeoipNetworks("g", day, "KP", tuple(ipaddress.ip_network(n) for n in geo)),
    )


def summary(d) -> set[tuple]:
    out = set()
    for c in d.changes:
        new = {k: v for k, (_, v) in c.fields.items()}
        out.add((c.kind, c.name, new.get("confidence"), new.get("asn"), str(new.get("last_seen", ""))))
    return out


# -- confidence follows agreement ---------------------------------------------------------


def test_delegated_and_announced_by_a_listed_asn_is_high():
    [p] = propose(sources([delegation("175.45.184.0/23")], [("175.45.184.0/24", "131279")]))
    assert (str(p.cidr), p.confidence, p.asn) == ("175.45.184.0/23", "high", STAR_JV)


def test_delegated_alone_or_announced_by_an_unlisted_asn_is_medium():
    [p] = propose(sources([delegation("175.45.184.0/23")], [("175.45.184.0/23", "64501")]))
    assert (p.confidence, p.asn, p.clauses[-1]) == ("medium", 64501, "pfx2as AS64501 since 2026-11-30")


def test_announced_by_a_listed_asn_alone_is_medium_and_adjacent_prefixes_merge():
    [p] = propose(sources(routes=[("175.45.184.0/24", "131279"), ("175.45.185.0/24", "131279_4837")]))
    assert (str(p.cidr), p.confidence, p.owner) == (
        "175.45.184.0/23", "medium", "announced by AS131279, AS131279_AS4837")


def test_geoip_alone_is_low():
    [p] = propose(sources(geo=["175.45.192.0/24"]))
    assert (p.confidence, p.clauses) == ("low", ("geoip KP since 2026-11-30",))


def test_only_the_country_asked_for_counts():
    assert propose(sources([delegation("210.52.108.0/22", country="CN")])) == []


# -- the study's ranges ------------------------------------------------------------------


def test_the_studys_ranges_are_never_touched_even_when_sources_cover_them():
    cat = load_catalogue()
    d = diff(cat, sources([delegation("175.45.176.0/22")], [("210.52.109.0/24", "4837"), ("77.94.35.0/24", "131279")],
                          geo=["210.52.109.0/24"]))
    assert (d.changes, len(d.notes)) == ((), 3)
    assert all("which catalogue update does not manage" in n for n in d.notes)


def test_a_source_range_wider_than_a_manual_one_is_added_beside_it_with_allow_overlap():
    d = diff(load_catalogue(), sources([delegation("175.45.176.0/21")]))
    [add] = d.changes
    assert (add.name, add.fields["allow_overlap"][1]) == ("kp-175-45-176-0-21", True)


def test_the_same_sources_applied_to_the_bundled_catalogue_keep_its_three_entries(catalogue, capsys):
    for step in STEPS:
        update(catalogue, step_args(step, catalogue.parent), "--write", capsys)
    original = default_catalogue_path().read_text(encoding="utf-8")
    assert catalogue.read_text(encoding="utf-8").startswith(original)


# -- the synthetic history, step by step --------------------------------------------------


HISTORY_DIFFS = {
    "20260901": {
        ("add", "kp-175-45-184-0-23", "high", STAR_JV, ""),
        ("add", "kp-175-45-186-0-24", "high", STAR_JV, ""),
        ("add", "kp-175-45-190-0-24", "medium", STAR_JV, ""),  # AS set {64500,131279}, not delegated
    },
    "20261001": {
        ("add", "kp-175-45-188-0-23", "high", STAR_JV, ""),  # new allocation, multi-origin 131279_64501
        ("add", "kp-175-45-192-0-24", "low", None, ""),  # GeoIP alone
    },
    "20261101": {  # the /23 is split into two /24s with different holders
        ("add", "kp-175-45-184-0-24", "high", STAR_JV, ""),
        ("add", "kp-175-45-185-0-24", "high", STAR_JV, ""),
        ("retire", "kp-175-45-184-0-23", None, None, "2026-11-01"),
    },
    "20261201": {
        ("change", "kp-175-45-188-0-23", "medium", 64501, ""),  # moved to AS64501, not listed
        ("retire", "kp-175-45-186-0-24", None, None, "2026-12-01"),  # returned to the free pool
        ("retire", "kp-175-45-190-0-24", None, None, "2026-12-01"),  # no longer announced
    },
}


def test_the_synthetic_history_step_by_step(catalogue, capsys, tmp_path):
    seen = {}
    for step in STEPS:
        args = step_args(step, tmp_path)
        check, out, _ = update(catalogue, args, "--check", capsys)
        before = load_catalogue(catalogue)
        d = diff(before, _load_sources(args))
        written = update(catalogue, args, "--write", capsys)[0]
        again = update(catalogue, args, "--check", capsys)[0]
        seen[step] = (check, summary(d), written, again, "to retire" in out)
    assert seen == {step: (1, HISTORY_DIFFS[step], 0, 0, True) for step in STEPS}


def test_after_the_history_the_catalogue_shows_each_range_with_its_fate(catalogue, capsys, tmp_path):
    for step in STEPS:
        update(catalogue, step_args(step, tmp_path), "--write", capsys)
    cat = load_catalogue(catalogue)
    fates = {r.name: (r.confidence, r.first_seen and str(r.first_seen), r.last_seen and str(r.last_seen))
             for r in cat.ranges}
    assert fates == {
        "kp-star-jv": ("high", "2017-04-01", None),
        "kp-china-netcom": ("medium", "2017-04-01", "2017-07-31"),
        "kp-satgate": ("medium", "2017-04-01", "2017-07-31"),
        "kp-175-45-184-0-23": ("high", "2026-09-01", "2026-11-01"),
        "kp-175-45-186-0-24": ("high", "2026-09-01", "2026-12-01"),
        "kp-175-45-190-0-24": ("medium", "2026-09-01", "2026-12-01"),
        "kp-175-45-188-0-23": ("medium", "2026-10-01", None),
        "kp-175-45-192-0-24": ("low", "2026-10-01", None),
        "kp-175-45-184-0-24": ("high", "2026-11-01", None),
        "kp-175-45-185-0-24": ("high", "2026-11-01", None),
    }
    assert cat.by_name("kp-175-45-188-0-23").source == (
        "catalogue update: delegated apnic KP allocated 2026-09-20 holder SYNTH-KP-B; "
        "pfx2as AS64501 since 2026-12-01; geoip KP since 2026-10-01")


def test_a_retired_range_that_comes_back_loses_last_seen():
    text = default_catalogue_path().read_text(encoding="utf-8")
    block = [delegation("175.45.184.0/24")]
    for day, delegations in ((dt.date(2026, 9, 1), block), (dt.date(2026, 10, 1), []), (dt.date(2026, 11, 1), block)):
        d = diff(parse_catalogue(text, "c"), sources(delegations, day=day))
        text = apply_changes(text, d.changes, "c")
        assert parse_catalogue(text, "c").by_name("kp-175-45-184-0-24").last_seen == (None if delegations else day)
    assert d.changes[0].fields["last_seen"] == (dt.date(2026, 10, 1), None)


def _load_sources(args: list[str]) -> Sources:
    parser = argparse.ArgumentParser()
    register_catalogue(parser.add_subparsers())
    return load_sources(parser.parse_args(["catalogue", "update", *args, "--check"]))


# -- writing ---------------------------------------------------------------------------


def test_write_keeps_every_comment_and_untouched_byte(catalogue, capsys, tmp_path):
    original = catalogue.read_text(encoding="utf-8")
    text = original.replace("  - name: kp-satgate", "  # a hand-written comment about SatGate\n  - name: kp-satgate")
    catalogue.write_text(text, encoding="utf-8")
    update(catalogue, step_args(STEPS[0], tmp_path), "--write", capsys)
    assert catalogue.read_text(encoding="utf-8").startswith(text)


def test_check_on_a_current_catalogue_exits_0_and_says_so(catalogue, capsys, tmp_path):
    args = step_args(STEPS[0], tmp_path)
    update(catalogue, args, "--write", capsys)
    code, out, _ = update(catalogue, args, "--check", capsys)
    assert (code, "the catalogue is current" in out) == (0, True)


def test_write_needs_an_explicit_catalogue(capsys, tmp_path):
    code = main(["catalogue", "update", *step_args(STEPS[0], tmp_path), "--write"])
    assert (code, "--write needs --catalogue" in capsys.readouterr().err) == (2, True)


def test_a_concurrent_update_is_refused_and_changes_nothing(catalogue, capsys, tmp_path):
    before = catalogue.read_bytes()
    with catalogue_lock(catalogue.resolve()):
        code = main(["catalogue", "update", "--catalogue", str(catalogue), *step_args(STEPS[0], tmp_path), "--write"])
    assert (code, "another catalogue update holds" in capsys.readouterr().err, catalogue.read_bytes()) == (
        2, True, before)


def test_sources_older_than_the_catalogue_are_refused(catalogue, capsys, tmp_path):
    update(catalogue, step_args(STEPS[1], tmp_path), "--write", capsys)
    code, _, err = update(catalogue, step_args(STEPS[0], tmp_path), "--check", capsys)
    assert (code, "the sources are older than the catalogue" in err) == (2, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one source"),
        (["--asn", "AS131279", "--geoip", "x.mmdb"], "--asn only applies to a --pfx2as table"),
        (["--pfx2as", "routeviews-rv2-20261001-1200.pfx2as"], "--pfx2as needs --asn"),
        (["--country", "kp", "--geoip", "x.mmdb"], "--country must be an ISO 3166 code"),
        (["--pfx2as", "x-20261001.pfx2as", "--asn", "ASX"], "--asn must be an AS number"),
    ],
)
def test_bad_options_are_one_line_errors(catalogue, capsys, args, message):
    code = main(["catalogue", "update", "--catalogue", str(catalogue), *args, "--check"])
    err = capsys.readouterr().err
    assert (code, message in err, err.count("\n")) == (2, True, 1)


def test_a_source_with_nothing_for_the_country_is_said_aloud(catalogue, capsys, tmp_path):
    main(["catalogue", "update", "--catalogue", str(catalogue), *step_args(STEPS[0], tmp_path), "--check"])
    assert "delegated-ripencc-extended-20260901 holds nothing for KP" in capsys.readouterr().err


# -- names and idempotence -----------------------------------------------------------------


def test_names_are_readable_stable_slugs():
    assert (slug("KP", ipaddress.ip_network("175.45.184.0/23")), slug("KP", ipaddress.ip_network("2400:8900::/32")),
            slug("KP", ipaddress.ip_network("2400:8900:abcd:1234:5678:9abc:def0:0/112"))) == (
        "kp-175-45-184-0-23", "kp-2400-8900--32", "kp-v6-56789abcdef0-112")


blocks = st.lists(
    st.tuples(st.integers(0, 31), st.sampled_from([1, 2, 3, 4, 6]), st.sampled_from(["H1", "H2"]),
              st.sampled_from([None, "131279", "64501", "131279_64501", "64500,131279"]), st.booleans()),
    max_size=6,
)


def random_sources(spec, day: dt.date) -> Sources:
    delegations, routes, geo = [], [], []
    for offset, count, holder, origin, in_geo in spec:
        start = ipaddress.IPv4Address("175.44.0.0") + offset * 256
        for d in (delegation(str(c), holder) for c in ipaddress.summarize_address_range(
                start, min(start + count * 256 - 1, ipaddress.IPv4Address("175.44.31.255")))):
            delegations.append(d)
            if origin:
                routes.append((str(d.cidr), origin))
            if in_geo:
                geo.append(str(d.cidr))
    return sources(delegations, routes, geo, day=day)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=blocks, second=blocks)
def test_update_is_idempotent_a_second_run_proposes_nothing(first, second):
    text = default_catalogue_path().read_text(encoding="utf-8")
    for spec, day in ((first, dt.date(2026, 9, 1)), (second, dt.date(2026, 10, 1))):
        src = random_sources(spec, day)
        text = apply_changes(text, diff(parse_catalogue(text, "c"), src).changes, "c")
    again = diff(parse_catalogue(text, "c"), src)
    assert again.changes == ()


# -- show and lookup ---------------------------------------------------------------------


def test_show_lists_each_range_with_its_provenance(catalogue, capsys, tmp_path):
    update(catalogue, step_args(STEPS[0], tmp_path), "--write", capsys)
    assert main(["catalogue", "show", "--catalogue", str(catalogue)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("kp-175-45-184-0-23"))
    assert (lines[0].split(), len(lines), "catalogue update: delegated apnic KP allocated 2026-08-25" in row,
            "historical since 2017-07-31" in next(line for line in lines if line.startswith("kp-satgate"))) == (
        ["NAME", "CIDR", "CC", "CONFIDENCE", "ASN", "FIRST_SEEN", "STATUS", "PROVENANCE"], 7, True, True)


def test_lookup_gives_the_range_and_why_for_each_address(catalogue, capsys, tmp_path):
    for step in STEPS[:3]:
        update(catalogue, step_args(step, tmp_path), "--write", capsys)
    assert main(["catalogue", "lookup", "--catalogue", str(catalogue), "175.45.185.9", "8.8.8.8", "175.45.177.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(";")[0] for line in out] == [
        "175.45.185.9: in kp-175-45-185-0-24 175.45.185.0/24 (KP, high confidence, current)",
        "              also in kp-175-45-184-0-23 175.45.184.0/23 (KP, high confidence, historical since 2026-11-01)",
        "8.8.8.8: not in any catalogued range",
        "175.45.177.1: in kp-star-jv 175.45.176.0/22 (KP, high confidence, current)",
    ]
    assert "why: catalogue update: delegated apnic KP allocated 2026-10-15 holder SYNTH-KP-C" in out[0]


def test_lookup_of_something_that_is_not_an_address_is_an_error(capsys):
    assert main(["catalogue", "lookup", "175.45.300.1"]) == 2
    assert "not an IP address" in capsys.readouterr().err


def test_a_managed_range_later_covered_by_a_hand_written_one_is_still_kept_current():
    text = default_catalogue_path().read_text(encoding="utf-8")
    first = sources([delegation("175.45.184.0/24")], day=dt.date(2026, 9, 1))
    text = apply_changes(text, diff(parse_catalogue(text, "c"), first).changes, "c")
    text += ("  - name: analyst-block\n    cidr: 175.45.184.0/22\n    country: KP\n    owner: Analyst\n"
             "    source: our own flow data\n    confidence: medium\n    allow_overlap: true\n")
    later = diff(parse_catalogue(text, "c"), sources([delegation("175.45.184.0/24")], day=dt.date(2026, 10, 1)))
    assert (later.changes, later.notes) == ((), ())


def test_write_keeps_comments_inside_the_entries_it_changes(catalogue, capsys, tmp_path):
    update(catalogue, step_args(STEPS[0], tmp_path), "--write", capsys)
    text = catalogue.read_text(encoding="utf-8").replace(
        "  - name: kp-175-45-184-0-23\n",
        "  # checked by hand in the looking glass, 2026-09-02\n  - name: kp-175-45-184-0-23\n",
    ).replace("holder SYNTH-KP-A\n    asn: AS131279", "holder SYNTH-KP-A  # the KP-A registrant\n    asn: AS131279", 1)
    catalogue.write_text(text, encoding="utf-8")
    for step in STEPS[1:3]:
        update(catalogue, step_args(step, tmp_path), "--write", capsys)
    after = catalogue.read_text(encoding="utf-8")
    retired = after[after.index("  # checked by hand"):].split("  - name:")[1]
    assert ("looking glass" in after, "# the KP-A registrant" in retired, "last_seen: 2026-11-01" in retired) == (
        True, True, True)
