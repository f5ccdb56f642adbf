"""Running Suricata and generate for the rule figures (B5, B5w, B6)."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import (
    BENCH,
    CLI,
    OUT,
)

SURICATA_ELAPSED_RE = re.compile(r"time elapsed ([0-9.]+)s")


def generate_command(work: Path, catalogue: Path | None, tor_lists: Sequence[Path]) -> list[str]:
    cmd = [*CLI, "generate", "--zeek-out", str(work / "zeek"), "--suricata-out", str(work / "suricata")]
    if catalogue is not None:
        cmd += ["--catalogue", str(catalogue)]
    for path in tor_lists:
        cmd += ["--tor-list", str(path)]
    return cmd


def scale_inputs(ranges: int, tor: int) -> dict[str, Path]:
    sys.path.insert(0, str(BENCH))
    import scale_inputs  # bench/ is a folder of scripts, not a package

    target = OUT / f"scale-{ranges}-{tor}"
    paths = {"catalogue": target / "catalogue.yaml", "exit": target / "tor-exit.lst",
             "relay": target / "tor-relay.lst"}
    if not all(p.exists() for p in paths.values()):
        paths = scale_inputs.write_inputs(target, ranges, tor)
    return paths


def suricata_config(rules_dir: Path, log_dir: Path, rule_files: Sequence[str], extra_vars: str = "") -> Path:
    """A config rendered by the project's own engine module, so the bench runs what replay runs.

    ``extra_vars`` (YAML lines indented for ``vars.address-groups``, and possibly a
    ``port-groups`` block after them) go in after the NK_NETS include.
    """
    from sensor_plugins.runners.suricata import render_config

    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "suricata.yaml"
    text = render_config(rules_dir, log_dir, rule_files=list(rule_files))
    if extra_vars:
        lines = text.splitlines(keepends=True)
        include = next(i for i, line in enumerate(lines) if line.strip().startswith("include:"))
        text = "".join([*lines[:include + 1], extra_vars, *lines[include + 1:]])
    path.write_text(text)
    return path


def suricata_command(*args: str) -> list[str]:
    from sensor_plugins.runners.suricata import BASE_ARGS, find_suricata

    return [find_suricata(), *args, *BASE_ARGS, "-v"]


