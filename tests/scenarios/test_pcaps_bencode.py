"""Bencoding as BitTorrent needs it: canonical output, and decoding that refuses broken input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensor_plugins.scenarios.bittorrent.bencode import bdecode, bencode

values = st.recursive(
    st.integers() | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.binary(max_size=10), children, max_size=5),
    max_leaves=20,
)


@given(values)
def test_decoding_an_encoded_value_gives_it_back(value):
    assert bdecode(bencode(value)) == value


def test_dictionary_keys_are_written_in_raw_byte_order():
    assert bencode({"y": "q", "a": {"id": b"x"}, "q": "ping"}) == b"d1:ad2:id1:xe1:q4:ping1:y1:qe"


@pytest.mark.parametrize("broken", [b"", b"i12", b"5:abc", b"l1:a", b"d1:ae", b"x", b"4:spamextra"])
def test_malformed_or_truncated_input_is_refused(broken):
    with pytest.raises(ValueError):
        bdecode(broken)


def test_booleans_are_refused_because_bencode_has_none():
    with pytest.raises(TypeError):
        bencode(True)
