"""Running the real Zeek: find it, parse-and-load a package with ``zeek -a``, run it over pcaps.

Zeek is the authority on its own language: zeekscript's tree-sitter grammar once accepted
``if ( ! in_scope(c) )``, which Zeek's scanner reads as the ``!in`` operator and refuses.
So wherever ``zeek`` is installed, a package is checked by loading it in Zeek, and any
error or warning that Zeek prints is a refusal naming the file and line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sensor_plugins.atomic import temp_dir
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.runners import check_logs_kept, log_write_error

RUN_TIMEOUT_SECONDS = 600
CHECK_TIMEOUT_SECONDS = 300
# "error in /path/file.zeek, line 48: syntax error, at or near "! in"" and the same with
# "warning in"; a line range reads "lines 10-12". Fatal errors may carry no location.
MESSAGE_RE = re.compile(
    r"^(?P<level>error|warning|fatal error)(?: in (?P<file>.+?), lines? (?P<line>\d+)(?:-\d+)?)?: (?P<msg>.*)$"
)
NOTE_PREFIX = "NKSensor::"
# The capture link types Zeek 7.0 decodes: those its packet analysers register at the root
# (base/packet-protocols), plus the raw-IP ones that its default analyser (IP) reads as
# they are. Any other is read as raw IP too, so Zeek exits 0 having decoded garbage.
LINK_TYPES = {0: "NULL", 1: "ETHERNET", 9: "PPP", 10: "FDDI", 12: "RAW", 50: "PPP_HDLC", 101: "RAW",
              105: "IEEE802_11", 113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP", 228: "IPV4", 229: "IPV6",
              239: "NFLOG", 276: "LINUX_SLL2"}


class ZeekError(SensorPluginsError):
    """Zeek is missing, refused a script, or failed on a pcap."""


@dataclass(frozen=True)
class ZeekMessage:
    """One error or warning line as Zeek printed it."""

    level: str
    file: str | None
    line: int | None
    text: str

    def where(self) -> str:
        if self.file is None:
            return "zeek"
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class ConnTag:
    """A conn.log row that our package tagged."""

    pcap: str
    uid: str
    src: str
    dst: str
    nk_range: str
    nk_side: str


@dataclass(frozen=True)
class Notice:
    """One ``NKSensor::*`` line of notice.log."""

    pcap: str
    note: str
    msg: str
    sub: str
    src: str
    dst: str


@dataclass(frozen=True)
class ZeekRun:
    """What one ``zeek -r`` printed and logged for our package."""

    pcap: str
    log_dir: Path
    messages: tuple[ZeekMessage, ...]
    tags: tuple[ConnTag, ...]
    notices: tuple[Notice, ...]


def find_zeek() -> str | None:
    """The zeek binary (``$ZEEK`` or PATH), or None when Zeek is not installed."""
    binary = os.environ.get("ZEEK") or shutil.which("zeek")
    return binary if binary and Path(binary).is_file() else None


def require_zeek() -> str:
    binary = find_zeek()
    if binary is None:
        raise ZeekError("zeek is not installed (or not on PATH); Zeek 7.0 LTS is needed for --engine zeek")
    return binary


def zeek_version(binary: str | None = None) -> str:
    proc = subprocess.run([binary or require_zeek(), "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip().rsplit(" ", 1)[-1]


def parse_messages(output: str) -> list[ZeekMessage]:
    """The error and warning lines of Zeek's stderr (and reporter output), in order."""
    found = []
    for raw in output.splitlines():
        match = MESSAGE_RE.match(raw.strip())
        if match:
            line = match["line"]
            found.append(ZeekMessage(match["level"], match["file"], int(line) if line else None, match["msg"]))
    return found


def _run(args: Sequence[str], cwd: Path, timeout: int, what: str) -> subprocess.CompletedProcess[str]:
    # The environment is passed as it is: a user's ZEEKPATH decides which `local` loads,
    # as it does on their sensor.
    try:
        return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ZeekError(f"{what}: no answer from zeek after {timeout} s") from exc
    except OSError as exc:
        raise ZeekError(f"{what}: cannot run zeek: {exc.strerror or exc}") from exc


def check_package(package_dir: Path, *, binary: str | None = None, extra: Sequence[str] = (),
                  opt_in: Sequence[str] = ()) -> None:
    """``zeek -a`` (parse and load, no traffic) on ``package_dir``; any error or warning refuses it.

    ``extra`` are scripts loaded before the package, such as ``local``, so the package is
    checked the way a sensor loads it. ``opt_in`` are the package's own scripts that
    ``__load__`` leaves out for sites to load by hand; they are loaded after it, so they
    are checked too.
    """
    binary = binary or require_zeek()
    package_dir = Path(package_dir).resolve()
    with temp_dir("sensor-plugins-zeek-a-") as tmp:
        after = [str(package_dir / name) for name in opt_in]
        proc = _run([binary, "-a", *extra, str(package_dir), *after], tmp, CHECK_TIMEOUT_SECONDS,
                    f"zeek -a {package_dir}")
    messages = parse_messages(proc.stderr + proc.stdout)
    if messages:
        first = messages[0]
        more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        raise ZeekError(f"{first.where()}: zeek {first.level}: {first.text}{more}")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ZeekError(f"{package_dir}: zeek -a exited {proc.returncode}: {tail}")


def read_zeek_log(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a Zeek TSV log as field -> text (unset and empty fields as Zeek wrote them)."""
    if not path.is_file():
        return
    fields: list[str] = []
    separator = "\t"
    with path.open(encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if line.startswith("#separator "):
                separator = line.split(" ", 1)[1].encode().decode("unicode_escape")
            elif line.startswith("#fields"):
                fields = line.split(separator)[1:]
            elif line and not line.startswith("#"):
                yield dict(zip(fields, line.split(separator), strict=False))


def ours(log_dir: Path, pcap: str) -> tuple[tuple[ConnTag, ...], tuple[Notice, ...]]:
    """The conn rows our package tagged and our notices, from one run's logs."""
    tags = tuple(
        ConnTag(pcap, row["uid"], row["id.orig_h"], row["id.resp_h"], row["nk_range"], row.get("nk_side", "-"))
        for row in read_zeek_log(log_dir / "conn.log")
        if row.get("nk_range", "-") not in ("-", "")
    )
    notices = tuple(
        Notice(pcap, row["note"], row.get("msg", "-"), row.get("sub", "-"),
               row.get("src", row.get("id.orig_h", "-")), row.get("dst", row.get("id.resp_h", "-")))
        for row in read_zeek_log(log_dir / "notice.log")
        if row.get("note", "").startswith(NOTE_PREFIX)
    )
    return tags, notices


def run_pcap(
    pcap: Path,
    package_dir: Path,
    log_dir: Path,
    *,
    scripts: Sequence[str] = ("local",),
    redefs: Sequence[str] = (),
    binary: str | None = None,
) -> ZeekRun:
    """``zeek -C -r PCAP local PACKAGE`` with its logs in ``log_dir``.

    ``redefs`` are Zeek statements (``redef NKSensor::tor_scope = ALL_TRAFFIC;``) written
    to a script loaded after the package, the way a site's local.zeek would set options.
    """
    binary = binary or require_zeek()
    pcap, package_dir, log_dir = Path(pcap).resolve(), Path(package_dir).resolve(), Path(log_dir)
    if not pcap.is_file():
        raise ZeekError(f"{pcap}: no such pcap file")
    args = [binary, "-C", "-r", str(pcap), *scripts, str(package_dir)]
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        if redefs:
            site = log_dir / "sensor-plugins-redefs.zeek"
            site.write_text("".join(f"{line}\n" for line in redefs), encoding="utf-8")
            args.append(str(site.resolve()))
        proc = _run(args, log_dir, RUN_TIMEOUT_SECONDS, f"zeek -r {pcap}")
        (log_dir / "zeek-output.txt").write_text(proc.stderr + proc.stdout + f"exit code: {proc.returncode}\n",
                                                 encoding="utf-8")
    except OSError as exc:
        raise log_write_error(log_dir, exc, ZeekError) from exc
    check_logs_kept(log_dir, f"zeek -r {pcap}", ZeekError)
    messages = parse_messages(proc.stderr + proc.stdout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ZeekError(f"zeek -r {pcap}: {tail}")
    tags, notices = ours(log_dir, str(pcap))
    return ZeekRun(str(pcap), log_dir, tuple(messages), tags, notices)
