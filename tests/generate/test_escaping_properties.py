"""Properties of the renderers' escapers, over arbitrary text including hostile input.

Hand-picked hostile strings are tested next to each renderer; these tests let hypothesis
search the whole text space for a value that breaks out of a string, a comment, a TSV
field or a rule option.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_plugins.generate.suricata import comment_text, escape_msg, metadata_value
from sensor_plugins.generate.zeek import tsv_field, zeek_comment, zeek_string

ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
HOSTILE = st.sampled_from(['"', "\\", ";", ")", "%", "@load ", "\n", "\t", "#", "-", "(empty)", "\u202e", "조선"])
TEXT = st.one_of(ANY_TEXT, st.lists(st.one_of(HOSTILE, ANY_TEXT), max_size=6).map("".join))


def unescape_zeek(body: str) -> bytes:
    """How Zeek reads the inside of a string literal or an ASCII input field back into bytes."""
    out, i = bytearray(), 0
    while i < len(body):
        if body[i] == "\\" and body[i + 1] == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif body[i] == "\\":
            out.append(ord(body[i + 1]))
            i += 2
        else:
            out.append(ord(body[i]))
            i += 1
    return bytes(out)


@settings(max_examples=300)
@given(TEXT)
def test_a_zeek_string_literal_reads_back_as_exactly_the_utf8_bytes(value):
    literal = zeek_string(value)
    assert unescape_zeek(literal[1:-1]) == value.encode("utf-8")


@settings(max_examples=300)
@given(TEXT)
def test_a_zeek_string_literal_has_no_unescaped_quote_and_is_one_ascii_line(value):
    body = zeek_string(value)[1:-1]
    assert re.search(r'(?<!\\)(?:\\\\)*"', body) is None and body.isascii() and body.isprintable()


@settings(max_examples=300)
@given(TEXT)
def test_a_zeek_comment_stays_one_printable_ascii_line(value):
    text = zeek_comment(value)
    assert text.isascii() and text.isprintable()


@settings(max_examples=300)
@given(TEXT.filter(bool))
def test_a_tsv_field_reads_back_exactly_and_cannot_split_or_mark_the_row(value):
    field = tsv_field(value)
    assert (
        unescape_zeek(field) == value.encode("utf-8"),
        "\t" in field or "\n" in field or field.startswith("#") or field in ("-", "(empty)"),
    ) == (True, False)


@settings(max_examples=300)
@given(TEXT)
def test_a_rule_msg_has_no_unescaped_option_terminator(value):
    msg = escape_msg(value)
    assert re.search(r'(?<!\\)(?:\\\\)*[";]', msg) is None and msg.isascii() and msg.isprintable()


@settings(max_examples=300)
@given(TEXT)
def test_a_metadata_value_cannot_end_the_pair_or_the_option(value):
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", metadata_value(value))


@settings(max_examples=300)
@given(TEXT)
def test_a_rules_file_comment_cannot_start_a_new_line(value):
    text = comment_text(value)
    assert not any(c in text for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
