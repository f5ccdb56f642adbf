"""Service categories: the bundled list, user extensions, and refusal of unsafe entries."""

from __future__ import annotations

import pytest

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.report.categories import load_categories, normalise_domain, parse_categories

EXPECTED = {
    "social-media",
    "video",
    "shopping",
    "search",
    "news",
    "webmail",
    "gaming",
    "voip",
    "security-vendors",
    "academic",
    "software-updates",
}


def test_bundled_categories_cover_the_studys_service_groups():
    assert set(load_categories().labels) == EXPECTED


@pytest.mark.parametrize(
    ("domain", "category"),
    [
        ("www.youtube.com", "video"),
        ("mail.google.com", "webmail"),  # longer suffix beats google.com (search)
        ("www.google.com", "search"),
        ("cs.stanford.edu", "academic"),
        ("www.ox.ac.uk", "academic"),
        ("notyoutube.com", "uncategorised"),  # suffixes match on label boundaries only
        ("example.org", "uncategorised"),
    ],
)
def test_a_domain_gets_the_category_of_its_longest_matching_suffix(domain, category):
    assert load_categories().classify(domain) == category


def test_user_file_adds_a_category_and_moves_a_listed_domain(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "categories:\n"
        "  maps:\n    label: Maps\n    domains: [maps.google.com, openstreetmap.org]\n"
        "  video:\n    domains: [rutube.ru]\n"
    )
    categories = load_categories(extra)
    got = [
        categories.classify(d)
        for d in ("maps.google.com", "www.google.com", "rutube.ru", "tile.openstreetmap.org")
    ]
    assert got == ["maps", "search", "video", "maps"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "categories:\n  x:\n    label: X\n    domains: ['<script>.com']\n",
            "u.yaml: category 'x': domain '<script>.com' must be lower-case [a-z0-9.-] labels",
        ),
        (
            "categories:\n  x:\n    label: X\n    domains: [Example.COM]\n",
            "u.yaml: category 'x': domain 'Example.COM' must be lower-case [a-z0-9.-] labels",
        ),
        (
            "categories:\n  Bad Name:\n    label: X\n",
            "u.yaml: category name 'Bad Name' must match [a-z0-9-], at most 40",
        ),
        (
            "categories:\n  x:\n    domains: [a.com]\n",
            "u.yaml: category 'x': 'label' must be 1-60 letters, digits, spaces or ,.&()/'-",
        ),
        (
            "categories:\n  x:\n    label: '<b>X</b>'\n",
            "u.yaml: category 'x': 'label' must be 1-60 letters, digits, spaces or ,.&()/'-",
        ),
        ("categories:\n  x:\n    label: X\n    colour: red\n", "u.yaml: category 'x': unknown key 'colour'"),
        (
            "categories:\n  uncategorised:\n    label: X\n",
            "u.yaml: category name 'uncategorised' is reserved",
        ),
        (
            "categories:\n  a:\n    label: A\n    domains: [x.com]\n"
            "  b:\n    label: B\n    domains: [x.com]\n",
            "u.yaml: category 'b': domain 'x.com' is already in category 'a'",
        ),
        ("categories: [1, 2]\n", "u.yaml: the document must be a mapping with a 'categories' mapping"),
        ("a: &x [1]\ncategories: *x\n", "u.yaml: line 1: YAML anchors and aliases are not allowed"),
    ],
)
def test_bad_category_files_fail_with_one_line_naming_the_entry(body, message):
    with pytest.raises(SensorPluginsError) as caught:
        parse_categories(body, "u.yaml")
    assert str(caught.value) == message


def test_missing_user_categories_file_is_a_clear_error(tmp_path):
    with pytest.raises(SensorPluginsError, match=r"nope\.yaml: cannot read categories"):
        load_categories(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("WWW.Example.COM", "www.example.com"),
        ("www.example.com:8443", "www.example.com"),
        ("www.example.com.", "www.example.com"),
        ("<script>alert(1)</script>", None),
        ("[2001:db8::1]:443", None),
        ("a" * 300 + ".com", None),
    ],
)
def test_log_host_names_are_normalised_or_refused(raw, domain):
    assert normalise_domain(raw) == domain
