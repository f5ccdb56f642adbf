"""bench/callgrind.py: the one reader of callgrind's per-function counts that B5 and B7 share."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
spec = importlib.util.spec_from_file_location("callgrind", ROOT / "bench" / "callgrind.py")
callgrind = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = callgrind
spec.loader.exec_module(callgrind)

# Lines as callgrind_annotate --inclusive=yes prints them (Suricata 7 and Zeek 7 builds).
REPORT = """\
--------------------------------------------------------------------------------
Ir                     file:function
--------------------------------------------------------------------------------
2,093,412,455 (100.0%)  ???:0x0000000000001100 [/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
  803,771,025 (38.40%)  ./src/tm-threads.c:TmThreadsSlotVarRun [/usr/bin/suricata]
    1,234,000 ( 0.06%)  ./src/tm-threads.c:TmThreadsSlotVarRunExtra [/usr/bin/suricata]
9,876,543,210 (91.00%)  ???:zeek::run_state::detail::run_loop() [/opt/zeek/bin/zeek]
       12,345 ( 0.00%)  ???:zeek::run_state::detail::run_loop_once() [/opt/zeek/bin/zeek]
"""


def test_the_inclusive_count_of_a_c_function_is_read_with_its_thousands_separators() -> None:
    assert callgrind.inclusive_count(REPORT, "TmThreadsSlotVarRun") == 803_771_025


def test_a_cpp_function_is_matched_by_its_whole_name_not_a_longer_one() -> None:
    assert callgrind.inclusive_count(REPORT, "zeek::run_state::detail::run_loop") == 9_876_543_210
    assert callgrind.inclusive_count(REPORT, "TmThreadsSlotVarRunExtra") == 1_234_000


def test_a_function_that_never_ran_has_no_count() -> None:
    assert callgrind.inclusive_count(REPORT, "DetectRun") is None


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_failing_program_is_an_error_never_a_count(tmp_path: Path) -> None:
    with pytest.raises(callgrind.CallgrindError, match="exited 3"):
        callgrind.inclusive_instructions(["sh", "-c", "exit 3"], "main", tmp_path / "cg.out", tmp_path)


def test_per_function_costs_keep_cpp_names_whole_and_read_stripped_addresses() -> None:
    costs = callgrind.read_costs(REPORT)
    assert costs["TmThreadsSlotVarRun"] == 803_771_025
    assert costs["zeek::run_state::detail::run_loop()"] == 9_876_543_210
    assert costs["0x0000000000001100"] == 2_093_412_455
    assert len(costs) == 5


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_fed_program_reads_the_whole_capture_from_the_fifo_and_is_counted(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: more than a pipe holds at once
    feed = callgrind.Feed(capture, tmp_path / "capture.fifo")
    count = callgrind.inclusive_instructions(["cp", str(feed.fifo), str(tmp_path / "copy.bin")], "read",
                                             tmp_path / "cg.out", tmp_path, feed=feed)
    assert count > 0
    assert (tmp_path / "copy.bin").read_bytes() == capture.read_bytes()
    assert not feed.fifo.exists()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_fed_program_that_dies_before_opening_the_fifo_is_an_error_not_a_hang(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(b"x")
    feed = callgrind.Feed(capture, tmp_path / "capture.fifo", open_timeout_s=120)
    with pytest.raises(callgrind.CallgrindError, match="exited 3"):
        callgrind.inclusive_instructions(["sh", "-c", "exit 3"], "main", tmp_path / "cg.out", tmp_path, feed=feed)
    assert not feed.fifo.exists()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_fed_program_that_dies_mid_capture_is_an_error_with_its_exit_code(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(bytes(1 << 20))  # more than the pipe holds: the writer meets the closed end
    feed = callgrind.Feed(capture, tmp_path / "capture.fifo")
    with pytest.raises(callgrind.CallgrindError, match="exited 4"):
        callgrind.inclusive_instructions(["sh", "-c", f"head -c 10 {feed.fifo} >/dev/null; exit 4"], "main",
                                         tmp_path / "cg.out", tmp_path, feed=feed)
