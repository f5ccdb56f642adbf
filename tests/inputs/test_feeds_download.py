"""`feeds update` against a local HTTP server on 127.0.0.1 that cuts, trickles and lies.

A download is installed only when it arrived whole: as long as its Content-Length, a
chunked body ending with its last chunk, within the whole-download deadline. Anything
else is one error line with exit 2, and the list already installed stays as it was.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensor_plugins.cli import main

ADDRESSES = [f"185.220.{i // 250}.{i % 250 + 1}" for i in range(1000)]
BODY = ("# role: exit\n# fetched: 2026-12-01\n" + "".join(f"{a}\n" for a in ADDRESSES)).encode()
OLD = "# role: exit\n# fetched: 2026-11-01\n185.220.101.1\n"
# A quarter of the body, cut at a line end: on its own it parses as a shorter, valid list.
QUARTER = BODY[: BODY.rfind(b"\n", 0, len(BODY) // 4) + 1]


class Mirror(http.server.BaseHTTPRequestHandler):
    """One path per fault; each writes to the raw socket what a broken mirror would."""

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # the name http.server calls
        mode = self.path.strip("/")
        if mode == "whole":
            self._head({"Content-Length": str(len(BODY))})
            self.wfile.write(BODY)
        elif mode == "cut":  # announces the whole body, sends a quarter, closes
            self._head({"Content-Length": str(len(BODY))})
            self.wfile.write(QUARTER)
        elif mode == "chunked-cut":  # chunks of 1000 bytes, closed before the last chunk
            self._head({"Transfer-Encoding": "chunked"})
            for start in range(0, len(BODY) // 2, 1000):
                piece = BODY[start:start + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"3e8\r\n" + BODY[:10])  # a chunk that promises 1000 bytes and stops
        elif mode == "chunked-whole":
            self._head({"Transfer-Encoding": "chunked"})
            for start in range(0, len(BODY), 1000):
                piece = BODY[start:start + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "trickle":  # one byte a second, forever (until the client leaves)
            self._head({"Content-Length": str(len(BODY))})
            try:
                for byte in BODY:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
        self.close_connection = True

    def _head(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()


@pytest.fixture(scope="module")
def mirror() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(mirror: str, mode: str, out: Path, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["feeds", "update", "--url", f"{mirror}/{mode}", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    out = tmp_path / "tor-exits.lst"
    out.write_text(OLD, encoding="utf-8")
    return out


def test_a_whole_download_is_installed(mirror, installed, capsys):
    code, out, _ = run(mirror, "whole", installed, capsys)
    assert (code, "1000 addresses" in out, installed.read_bytes()) == (0, True, BODY)


def test_a_whole_chunked_download_is_installed(mirror, installed, capsys):
    code, out, _ = run(mirror, "chunked-whole", installed, capsys)
    assert (code, "1000 addresses" in out, installed.read_bytes()) == (0, True, BODY)


@pytest.mark.parametrize(("mode", "extra", "message"), [
    ("cut", [], f"cut short: {len(QUARTER)} of the {len(BODY)} bytes its Content-Length announces"),
    ("chunked-cut", [], "cut short"),
    ("trickle", ["--deadline", "2", "--timeout", "5"], "did not finish within 2 s"),
])
def test_a_cut_or_stalled_download_is_one_error_and_the_old_list_stays(mirror, installed, capsys, mode, extra,
                                                                      message):
    started = time.monotonic()
    code, _, err = run(mirror, mode, installed, capsys, *extra)
    took = time.monotonic() - started
    lines = err.strip().splitlines()
    assert (code, len(lines), message in err, "internal error" in err, installed.read_text()) == (
        2, 1, True, False, OLD), err
    # The trickle is cut by the deadline (2 s), not after the 1,000 s the body would take.
    assert took < 30


def test_the_real_program_exits_2_on_a_cut_download(mirror, installed):
    proc = subprocess.run([sys.executable, "-m", "sensor_plugins", "feeds", "update", "--url", f"{mirror}/cut",
                           "--out", str(installed)], capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, len(proc.stderr.strip().splitlines()), "cut short" in proc.stderr,
            installed.read_text()) == (2, 1, True, OLD), proc.stderr


def test_deadline_and_timeout_must_be_positive(installed, capsys):
    code = main(["feeds", "update", "--url", "http://127.0.0.1:9/", "--out", str(installed), "--deadline", "0"])
    assert (code, "must be above zero" in capsys.readouterr().err) == (2, True)


def test_nothing_listening_is_one_error(installed, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(f"http://127.0.0.1:{port}", "x", installed, capsys)
    assert (code, "cannot fetch" in err, installed.read_text()) == (2, True, OLD)
