"""Tor lists: the three formats, their dates, merging, and refusing hostile or broken input."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensor_plugins.inputs.feeds import FeedError, load_feed, load_tor_list, merge_feeds, normalise_address, parse_feed

FIXTURES = Path(__file__).parent / "fixtures"

EXIT_ADDRESSES = FIXTURES / "tor" / "exit-addresses-2024-03-12.txt"
BULK_LIST = FIXTURES / "tor" / "torbulkexitlist-2024-03-12.txt"


def onionoo(relays: list[dict], published: str = "2024-03-12 07:00:00") -> str:
    return json.dumps({"version": "8.0", "relays_published": published, "relays": relays})


def test_exit_addresses_yields_every_distinct_exit_address():
    # The bulk exit list was taken at the same moment from the same service.
    bulk = {line.strip() for line in BULK_LIST.read_text().splitlines() if line.strip()}
    assert {e.address for e in load_feed(EXIT_ADDRESSES).entries} == bulk


def test_exit_addresses_entries_carry_published_and_exit_dates():
    entry = next(e for e in load_feed(EXIT_ADDRESSES).entries if e.address == "185.241.208.232")
    assert (entry.role, entry.first_seen, entry.last_seen) == ("exit", dt.date(2024, 3, 11), dt.date(2024, 3, 12))


def test_exit_addresses_fetch_date_is_the_newest_last_status():
    assert load_feed(EXIT_ADDRESSES).fetched == dt.date(2024, 3, 12)


def test_plain_list_reads_role_and_fetch_date_from_its_header():
    feed = parse_feed("# role: exit\n# fetched: 2024-02-27\n1.2.3.4\n5.6.7.8  # trailing comment\n", "x.lst")
    assert [(e.address, e.role, e.last_seen) for e in feed.entries] == [
        ("1.2.3.4", "exit", dt.date(2024, 2, 27)), ("5.6.7.8", "exit", dt.date(2024, 2, 27))]


def test_plain_list_without_a_header_counts_as_relays_dated_by_the_file(tmp_path):
    path = tmp_path / "relays.lst"
    path.write_text("185.9.8.7\n")
    feed = load_feed(path)
    assert (feed.entries[0].role, feed.fetched) == ("relay", dt.datetime.now(dt.UTC).date())


def test_plain_list_addresses_are_normalised_and_deduplicated():
    feed = parse_feed("# fetched: 2024-01-01\n2001:DB8:0:0::1\n2001:db8::1\n", "v6.lst")
    assert [e.address for e in feed.entries] == ["2001:db8::1"]


def test_onionoo_exit_flag_makes_an_exit_and_its_absence_a_relay():
    doc = onionoo([
        {"nickname": "ExitOne", "or_addresses": ["192.0.2.1:9001"], "flags": ["Exit", "Fast"],
         "first_seen": "2020-01-01 00:00:00", "last_seen": "2024-03-12 06:00:00"},
        {"nickname": "Guard1", "or_addresses": ["192.0.2.2:443", "[2001:db8::2]:443"], "flags": ["Guard"]},
    ])
    feed = parse_feed(doc, "details.json")
    assert sorted((e.address, e.role) for e in feed.entries) == [
        ("192.0.2.1", "exit"), ("192.0.2.2", "relay"), ("2001:db8::2", "relay")]


def test_onionoo_relay_dates_come_from_the_document():
    doc = onionoo([{"nickname": "ExitOne", "or_addresses": ["192.0.2.1:9001"], "flags": ["Exit"],
                    "first_seen": "2020-01-01 00:00:00", "last_seen": "2024-03-12 06:00:00"}])
    entry = parse_feed(doc, "details.json").entries[0]
    assert (entry.first_seen, entry.last_seen) == (dt.date(2020, 1, 1), dt.date(2024, 3, 12))


def test_merge_prefers_exit_and_widens_dates():
    relay = parse_feed("# role: relay\n# fetched: 2024-01-01\n192.0.2.9\n", "relays.lst")
    exits = parse_feed("# role: exit\n# fetched: 2024-02-01\n192.0.2.9\n", "exits.lst")
    entry = merge_feeds([relay, exits]).entries["192.0.2.9"]
    assert (entry.role, entry.last_seen, entry.feed) == ("exit", dt.date(2024, 2, 1), "exits.lst")


def test_bundled_lists_hold_every_secops_relay_with_the_exits_marked():
    tor = load_tor_list()
    assert (len(tor.entries), len(tor.by_role("exit"))) == (8054, 1746)


@pytest.mark.parametrize("text, expected", [
    ("# fetched: 2024-01-01\n1.2.3.4\nnot-an-ip\n", "x.lst:3: not an IP address: 'not-an-ip'"),
    ("# fetched: 2024-01-01\n1.2.3.4; drop table\n", "x.lst:2: not an IP address"),
    ("# fetched: 2024-01-01\n# role: bridge\n1.2.3.4\n", "'# role:' must be exit or relay"),
    ("# fetched: 2024-13-01\n1.2.3.4\n", "not a date"),
    ("ExitNode nothex\nExitAddress 1.2.3.4 2024-01-01 00:00:00\n", "x.lst:1: ExitNode needs a 40-hex"),
    ("ExitNode " + "A" * 40 + "\nExitAddress 1.2.3.999 2024-01-01\n", "x.lst:2: not an IP address"),
    ("ExitNode " + "A" * 40 + "\nEvil\"Keyword x\nExitAddress 1.2.3.4 2024-01-01\n", "unknown exit-addresses keyword"),
    ('{"relays": [}', "invalid Onionoo JSON"),
    (onionoo([{"nickname": "bad\"name;)", "or_addresses": ["1.2.3.4:1"], "flags": []}]), "invalid relay nickname"),
    (onionoo([{"nickname": "ok", "or_addresses": ["@load evil:1"], "flags": []}]), "not an IP address"),
])
def test_broken_or_hostile_feeds_are_refused_with_one_line(text, expected):
    with pytest.raises(FeedError) as info:
        parse_feed(text, "x.lst")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_very_long_hostile_value_is_cut_in_the_error():
    with pytest.raises(FeedError) as info:
        parse_feed("# fetched: 2024-01-01\n" + "x" * 5000 + "\n", "x.lst")
    assert len(str(info.value)) < 200


def test_a_non_utf8_feed_is_refused(tmp_path):
    path = tmp_path / "bin.lst"
    path.write_bytes(b"1.2.3.4\n\xff\xfe\n")
    with pytest.raises(FeedError, match="not UTF-8"):
        load_feed(path)


def _reference_normalise(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


dotted = st.lists(st.sampled_from(["0", "00", "01", "9", "10", "99", "199", "249", "255", "256", "300", "1000", ""]),
                  min_size=3, max_size=5).map(".".join)


# IPv6 written every way a list may write it (runs of zeros to compress, capitals, full
# width), and with IPv4 embedded, which the C library writes otherwise than ipaddress.
hextets = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8, 0x2001, 0xABCD]), min_size=8, max_size=8)
ipv6_texts = st.one_of(
    hextets.map(lambda h: ":".join(f"{x:x}" for x in h)),
    hextets.map(lambda h: ":".join(f"{x:04X}" for x in h)),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.ip_addresses(v=4).map(lambda a: f"::{a}"),
)


@given(st.one_of(dotted, ipv6_texts, st.ip_addresses().map(str),
                 st.text(alphabet="0123456789.: \nabcdefABCDEF%\x00", max_size=20)))
def test_the_fast_paths_give_what_ipaddress_gives(text: str) -> None:
    assert normalise_address(text) == _reference_normalise(text)
