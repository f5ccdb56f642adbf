"""Running the real Suricata: find it, render the minimal yaml, check rules with -T, replay pcaps.

All runs use the shipped minimal configuration with the generated rules loaded through
``default-rule-path`` + ``rule-files`` (the way a sensor loads them, so reload-rules
works), ``-k none --runmode single`` and ``--init-errors-fatal``: a rule that does not
load is an error here, never a silently smaller ruleset.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from sensor_plugins.atomic import temp_dir
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.runners import check_logs_kept, log_write_error, run_name

INSTALL_SCRIPT = "scripts/install-suricata.sh"
# What a generated rules directory holds: `generate` writes these names, the runner and
# `deploy` load them.
MAIN_RULES = "nksensor.rules"
BITTORRENT_ALL_RULES = "nksensor-bittorrent-all.rules"
VARS_FILE = "nksensor-vars.yaml"
DEFAULT_HOME_NET = "[10.0.0.0/8,172.16.0.0/12,192.168.0.0/16]"
RUN_TIMEOUT_SECONDS = 600
BASE_ARGS = ("-k", "none", "--runmode", "single", "--init-errors-fatal")
# Suricata's console lines look like "E: detect: ..." or, verbose, "Error: detect: ...".
ERROR_LINE_RE = re.compile(r"^(?:E|Error): (?:[\w-]+: )?(.*)$")
SIGNATURE_ERROR_RE = re.compile(r'error parsing signature ".*" from file (.+) at line (\d+)\s*$')
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
# The capture link types (LINKTYPE_* in a pcap or pcapng header) that Suricata 7 decodes
# from a file, found by replaying one packet of each: on any other it logs "datalink type
# N not (yet) supported" and then waits out its whole start-up budget, about 60 s.
LINK_TYPES = {0: "NULL", 1: "ETHERNET", 9: "PPP", 12: "RAW", 101: "RAW", 104: "C_HDLC", 113: "LINUX_SLL",
              228: "IPV4", 229: "IPV6"}


class SuricataError(SensorPluginsError):
    """Suricata is missing, refused the configuration or rules, or failed on a pcap."""


@dataclass(frozen=True)
class Alert:
    """One alert as replay reports it."""

    pcap: str
    sid: int
    rev: int
    msg: str
    src: str
    dst: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=True)


def yaml_string(value: Any) -> str:
    """A YAML double-quoted scalar: JSON strings with ensure_ascii are valid ones."""
    return json.dumps(str(value), ensure_ascii=True)


def find_suricata() -> str:
    """The path of the suricata binary; the error names the install script when there is none."""
    binary = os.environ.get("SURICATA") or shutil.which("suricata")
    if not binary or not Path(binary).is_file():
        raise SuricataError(
            f"suricata is not installed (or not on PATH); install Suricata 7 with {INSTALL_SCRIPT}"
        )
    return binary


def data_dir() -> Path:
    return Path(str(resources.files("sensor_plugins") / "data" / "suricata"))


@functools.cache
def _config_template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml_str"] = yaml_string
    return env.get_template("suricata.yaml.j2")


def default_rule_files(bittorrent_everywhere: bool = False) -> list[str]:
    return [MAIN_RULES, BITTORRENT_ALL_RULES] if bittorrent_everywhere else [MAIN_RULES]


def render_config(
    rules_dir: Path,
    log_dir: Path,
    *,
    unix_socket: Path | None = None,
    rule_files: Sequence[str] | None = None,
    bittorrent_everywhere: bool = False,
    home_net: str = DEFAULT_HOME_NET,
    config_dir: Path | None = None,
) -> str:
    """The minimal suricata.yaml text for the rules in ``rules_dir``.

    ``unix_socket`` turns on the command socket (for reload-rules and dataset-add on a
    sensor); ``config_dir`` holds classification, reference and threshold files when a
    sensor keeps its own (the shipped ones otherwise).
    """
    rules_dir, log_dir = Path(rules_dir).resolve(), Path(log_dir).resolve()
    config_dir = Path(config_dir).resolve() if config_dir else data_dir()
    names = list(rule_files) if rule_files is not None else default_rule_files(bittorrent_everywhere)
    for name in names:
        if "/" in name or name.startswith("."):
            raise SuricataError(f"rule file {name!r} must be a plain file name inside {rules_dir}")
    return _config_template().render(
        home_net=home_net,
        vars_file=rules_dir / VARS_FILE,
        log_dir=log_dir,
        rules_dir=rules_dir,
        rule_files=names,
        classification_file=config_dir / "classification.config",
        reference_file=config_dir / "reference.config",
        threshold_file=config_dir / "threshold.config",
        unix_socket=unix_socket,
    )


def check_rules_dir(rules_dir: Path, rule_files: Sequence[str]) -> None:
    if not rules_dir.is_dir():
        raise SuricataError(f"{rules_dir}: no such rules directory (run `sensor-plugins generate`)")
    for name in [VARS_FILE, *rule_files]:
        if not (rules_dir / name).is_file():
            raise SuricataError(f"{rules_dir / name}: missing (run `sensor-plugins generate`)")


def _error_lines(stderr: str) -> list[str]:
    lines = [ANSI_RE.sub("", line).rstrip() for line in stderr.splitlines()]
    return [m.group(1) for m in map(ERROR_LINE_RE.match, lines) if m]


def explain_failure(stderr: str, what: str) -> str:
    """One line naming the rules file and line Suricata refused, and why."""
    errors = _error_lines(stderr)
    for i, text in enumerate(errors):
        where = SIGNATURE_ERROR_RE.search(text)
        if where:
            reason = "; ".join(e.rstrip(".") for e in errors[:i]) or "invalid signature"
            return f"{where.group(1)} line {where.group(2)}: {what} refused the rule: {reason}"
    if errors:
        return f"{what} failed: {errors[0]}"
    tail = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"{what} failed: {ANSI_RE.sub('', tail[-1]) if tail else 'no error output'}"


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SuricataError(f"{what} did not finish within {RUN_TIMEOUT_SECONDS} s") from exc
    except OSError as exc:
        raise SuricataError(f"{what}: cannot run {args[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        raise SuricataError(explain_failure(proc.stderr, what))
    # Suricata exits 0 after a read error on a truncated pcap; the packets after it were
    # never inspected, so the run is reported as failed rather than as fewer alerts.
    errors = _error_lines(proc.stderr)
    if errors:
        raise SuricataError(f"{what}: {errors[0]}")
    return proc


def _write_config(workdir: Path, text: str) -> Path:
    path = workdir / "suricata.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_rules(
    rules_dir: Path, *, rule_files: Sequence[str] | None = None, bittorrent_everywhere: bool = True,
) -> None:
    """``suricata -T`` on the generated rules, vars and datasets; every rules file by default.

    Raises SuricataError naming the rules file and line on a refused rule.
    """
    rules_dir = Path(rules_dir)
    names = list(rule_files) if rule_files is not None else default_rule_files(bittorrent_everywhere)
    check_rules_dir(rules_dir, names)
    binary = find_suricata()
    with temp_dir("sensor-plugins-suricata-T-") as work:
        config = _write_config(work, render_config(rules_dir, work, rule_files=names))
        _run([binary, "-T", "-c", str(config), "-l", str(work), *BASE_ARGS], "suricata -T")


# Keep pytest from collecting the validation function above as a test.
test_rules.__test__ = False  # type: ignore[attr-defined]


def parse_eve(path: Path, pcap: str) -> list[Alert]:
    """The alerts of one eve.json, in file order."""
    alerts = []
    if not path.exists():
        return alerts
    with path.open(encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                if event.get("event_type") != "alert":
                    continue
                alert = event["alert"]
                alerts.append(Alert(
                    pcap=pcap, sid=int(alert["signature_id"]), rev=int(alert["rev"]),
                    msg=str(alert["signature"]), src=str(event["src_ip"]), dst=str(event["dest_ip"]),
                ))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise SuricataError(
                    f"{path}:{lineno}: unreadable eve alert ({exc.__class__.__name__})"
                ) from exc
    return alerts


def replay(
    pcaps: Sequence[Path],
    rules_dir: Path,
    log_dir: Path,
    *,
    rule_files: Sequence[str] | None = None,
    bittorrent_everywhere: bool = False,
) -> list[Alert]:
    """Run Suricata with ``-r`` on each pcap on its own (no flow or threshold state is shared).

    Each pcap's logs go to ``log_dir/<n>-<name>/``; the alerts come back in pcap order.
    """
    rules_dir, log_dir = Path(rules_dir), Path(log_dir)
    names = list(rule_files) if rule_files is not None else default_rule_files(bittorrent_everywhere)
    check_rules_dir(rules_dir, names)
    for pcap in pcaps:
        if not Path(pcap).is_file():
            raise SuricataError(f"{pcap}: no such pcap file")
    binary = find_suricata()
    alerts: list[Alert] = []
    for i, pcap in enumerate(pcaps):
        pcap = Path(pcap)
        run_dir = log_dir / run_name(i, pcap)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            config = _write_config(run_dir, render_config(rules_dir, run_dir, rule_files=names))
        except OSError as exc:
            raise log_write_error(run_dir, exc, SuricataError) from exc
        _run([binary, "-r", str(pcap), "-c", str(config), "-l", str(run_dir), *BASE_ARGS],
             f"suricata -r {pcap}")
        check_logs_kept(run_dir, f"suricata -r {pcap}", SuricataError)
        alerts += parse_eve(run_dir / "eve.json", str(pcap))
    return alerts
