"""Checks that staged output is loadable before it replaces anything.

Zeek has no package on our sensors' build machines, so a `.zeek` file is checked by
parsing it with zeekscript (Zeek's own tree-sitter grammar); Suricata rules are checked
with the real `suricata -T` when Suricata is installed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError


class ValidationError(SensorPluginsError):
    pass


def check_zeek_script(path: Path) -> None:
    """Raise ValidationError naming ``path`` and the line when zeekscript cannot parse it."""
    import zeekscript

    script = zeekscript.Script(path)
    try:
        ok = script.parse()
    except zeekscript.Error as exc:
        raise ValidationError(f"{path}: zeekscript cannot parse the file: {exc}") from exc
    if not ok:
        _line, lineno, msg = script.get_error()
        where = f"{path}:{(lineno or 0) + 1}"
        raise ValidationError(f"{where}: zeekscript parse error: {msg}")


def validate_zeek_dir(directory: Path) -> int:
    """Parse every `.zeek` file under ``directory``; returns how many were checked."""
    scripts = sorted(directory.rglob("*.zeek"))
    for script in scripts:
        check_zeek_script(script)
    return len(scripts)


def validate_suricata_dir(directory: Path) -> bool:
    """Run `suricata -T` on the staged rules; False (with a warning) when Suricata is absent."""
    if shutil.which("suricata") is None:
        print(
            "sensor-plugins: warning: suricata is not installed; rules were not checked with "
            "suricata -T (run scripts/install-suricata.sh)",
            file=sys.stderr,
        )
        return False
    from sensor_plugins.suricata_engine import test_rules

    test_rules(directory)
    return True
