"""The report in a real browser: headless Chromium loads it, measures its charts, and screenshots it.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (fd 3 in,
fd 4 out, NUL-separated JSON), which needs nothing beyond the standard library. The page
must load without console errors or exceptions, fetch nothing but itself, give every
chart a non-empty bounding box, fit a 1366-pixel-wide screen, and show the hostile
``<script>`` server name as inert text. The screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_report_cli import HOSTILE_SNI, run_report, write_scenario

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-default-apps", "--mute-audio",
]
TIMEOUT = 60.0


class CDPError(RuntimeError):
    pass


class Browser:
    """One headless Chromium; ``events`` keeps every event of the attached page."""

    def __init__(self, binary: str, user_data_dir: Path, width: int = 1366, height: int = 900) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Chromium expects its end of the pipes at exactly fd 3 and fd 4; move them above
        # 10 first so the dup2 calls in the child cannot clobber one with the other.
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4), close_fds=True,
        )
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        self.width, self.height = width, height

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("Browser.close", session=False, wait=False)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for the browser")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 16)
                if not chunk:
                    raise CDPError(f"browser closed the pipe (exit {self.proc.poll()})")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True,
             wait: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    def open(self, url: str) -> None:
        """Attach to a fresh page with console, log and network events on, then load ``url``."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CDPError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> None:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries, as text."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')}")
        return found

    def requests(self) -> list[str]:
        sent = [e for e in self.events if e["method"] == "Network.requestWillBeSent"]
        return [e["params"]["request"]["url"] for e in sent]


# ----------------------------------------------------------------- fixtures


def install_chromium() -> None:
    """``apt-get install chromium``, refreshing the package lists once if the first try fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=True)
        subprocess.run(install, env=env, capture_output=True, timeout=900, check=True)


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.geteuid() != 0:
            pytest.skip("chromium is not installed and installing it needs root (apt-get install chromium)")
        install_chromium()
        found = shutil.which("chromium")
    assert found is not None, "apt-get installed chromium but it is not on PATH"
    return found


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-browser")
    out = root / "report.html"
    assert run_report(write_scenario(root), "--html", str(out)) == 0
    return out


@pytest.fixture(scope="module")
def browser(chromium: str, report_page: Path, tmp_path_factory: pytest.TempPathFactory) -> Browser:
    with Browser(chromium, tmp_path_factory.mktemp("chromium-profile")) as opened:
        opened.open(report_page.as_uri())
        yield opened


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


# ----------------------------------------------------------------- tests

CHART_BOXES = """
Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const box = svg.getBBox();
  const shown = svg.getBoundingClientRect();
  return {id: svg.id, width: box.width, height: box.height,
          shownWidth: shown.width, shownHeight: shown.height};
})
"""


def test_the_page_loads_without_console_errors_or_exceptions(browser):
    assert browser.errors() == []


def test_the_page_requests_nothing_but_itself(browser, report_page):
    assert browser.requests() == [report_page.as_uri()]


def test_every_chart_has_a_non_empty_bounding_box(browser):
    boxes = browser.evaluate(CHART_BOXES)
    sized = {b["id"] for b in boxes if min(b["width"], b["height"], b["shownWidth"], b["shownHeight"]) > 0}
    assert sized == {"chart-daily", "chart-categories", "chart-protection"}


def test_the_page_fits_a_1366_pixel_wide_screen(browser):
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1366


def test_the_hostile_server_name_is_shown_as_text_and_never_runs(browser):
    state = browser.evaluate(
        "JSON.stringify([typeof window.pwned, document.querySelectorAll('script').length,"
        " document.body.innerText.includes(" + json.dumps(HOSTILE_SNI) + ")])"
    )
    assert json.loads(state) == ["undefined", 0, True]


def test_headless_screenshot_of_the_report_is_kept_as_an_artifact(chromium, report_page, tmp_path_factory):
    shots = tmp_path_factory.mktemp("report-screenshot")
    png = shots / "report.png"
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={shots / 'profile'}", f"--screenshot={png}",
         "--window-size=1366,900", report_page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    assert png_size(png) == (1366, 900)


def test_full_page_screenshot_over_devtools_is_kept_too(browser, tmp_path_factory):
    height = browser.evaluate("document.documentElement.scrollHeight")
    png = tmp_path_factory.mktemp("report-screenshot-full") / "report-full.png"
    browser.screenshot(png, {"x": 0, "y": 0, "width": 1366, "height": height})
    assert png_size(png) == (1366, height)
