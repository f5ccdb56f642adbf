"""The package's folders are its pipeline: no stage imports from a stage above it or beside it.

Bottom to top: ``errors``, then ``atomic`` (whose failures are SensorPluginsErrors); the
engine ``runners``; ``inputs``; then ``generate`` and ``scenarios``; then ``sensors`` and
``analysis``; then ``report``; ``cli`` dispatches to all of them by name. docs/ARCHITECTURE.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sensor_plugins"

RANK = {
    "errors": -2, "__init__": -2, "atomic": -1, "__main__": 6,
    "runners": 0,
    "inputs": 1,
    "generate": 2, "scenarios": 2,
    "sensors": 3, "analysis": 3,
    "report": 4,
    "cli": 5,
}
STAGES = ("inputs", "generate", "scenarios", "sensors", "analysis", "report", "runners")


def stage_of(module: str) -> str:
    """``sensor_plugins.generate.zeek`` -> ``generate``; ``sensor_plugins`` -> ``__init__``."""
    parts = module.split(".")
    # ``from sensor_plugins import __version__`` names the package's own __init__.
    return parts[1] if len(parts) > 1 and not parts[1].startswith("__") else "__init__"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sensor_plugins"):
            if node.module == "sensor_plugins":
                found += [(node.lineno, f"sensor_plugins.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("sensor_plugins")]
    return found


def module_name(path: Path) -> str:
    return ".".join(("sensor_plugins", *path.relative_to(PACKAGE).with_suffix("").parts))


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_stage_above_or_beside_its_own(path: Path) -> None:
    own = "__main__" if path.name == "__main__.py" else stage_of(module_name(path))
    bad = []
    for lineno, target in imported_modules(path):
        other = stage_of(target)
        if other == "__init__" or other == own:
            continue
        if RANK[other] >= RANK[own]:
            bad.append(f"{path.name}:{lineno} imports {target} ({other} is not below {own})")
    assert not bad, "\n".join(bad)


def test_every_stage_is_a_package_and_nothing_else_sits_at_the_top() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert top - {"data", "templates", "__pycache__"} == {"__init__", "__main__", "cli", "errors", "atomic", *STAGES}
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage


def test_the_rank_table_catches_an_upward_import(tmp_path: Path) -> None:
    # The checker itself: a generate module that imports the sensors stage is refused.
    module = tmp_path / "probe.py"
    module.write_text("from sensor_plugins.sensors.deploy import deploy\nfrom sensor_plugins import errors\n")
    targets = [t for _, t in imported_modules(module)]
    assert targets == ["sensor_plugins.sensors.deploy", "sensor_plugins.errors"]
    assert RANK[stage_of(targets[0])] > RANK["generate"]
