"""Any bytes as the top of a Zeek log: a header, None (no header), or a clean one-line LogError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_plugins.analysis.logfiles import LogError, LogHeader, parse_header_lines, read_header

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADER_PIECES = st.sampled_from([
    "#separator \\x09\n", "#separator ab\n", "#separator \\xZZ\n", "#separator\n", "#set_separator\t,\n",
    "#empty_field\t(empty)\n", "#unset_field\t-\n", "#path\tconn\n", "#path\t\n", "#fields\tts\tuid\tid.orig_h\n",
    "#fields\tts\tts\n", "#fields\n", "#types\ttime\tstring\taddr\n", "#types\ttime\n", "#open\t2024\n",
    "{\"ts\": 1}\n",
    "1.0\tC1\t1.2.3.4\n", "\t", "\n", "\r\n", "\x00", "\xff", "#", "#close\n",
])


def _check(result: LogHeader | None) -> None:
    assert result is None or (isinstance(result, LogHeader) and (result.is_json or
                                                                  len(result.fields) == len(result.types)))


@SETTINGS
@given(st.binary(max_size=3000))
def test_any_bytes_as_header_lines(data: bytes) -> None:
    try:
        _check(parse_header_lines(data.splitlines(keepends=True), "fuzz.log"))
    except LogError as exc:
        assert "\n" not in str(exc) and "fuzz.log" in str(exc)


@SETTINGS
@given(st.lists(HEADER_PIECES, max_size=30).map("".join))
def test_any_header_shaped_file(text: str) -> None:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".log")  # noqa: SIM115
    handle.write(text.encode("utf-8", "surrogatepass"))
    handle.close()
    path = Path(handle.name)
    try:
        _check(read_header(path))
    except LogError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    finally:
        path.unlink()
