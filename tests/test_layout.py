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


def module_names() -> set[str]:
    """Every module of the package by dotted name; a package is its ``__init__``."""
    names = set()
    for path in MODULES:
        name = module_name(path)
        names.add(name.removesuffix(".__init__"))
    return names


def import_edges(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at module level or inside a function.

    ``from sensor_plugins.analysis import output`` names the module ``output``, not the
    package. Importing a module also runs its parents' ``__init__``, but that is not an
    edge here: every submodule would then form a cycle with a package that imports it.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sensor_plugins"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sensor_plugins")}
    return found & modules


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> modules it imports), each from its smallest
    module round to it again; one per strongly connected component of two or more modules,
    or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(graph, component) for component in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One cycle inside a strongly connected ``component``, as a path that returns to its start."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:  # breadth first, so the cycle shown is a shortest one
        node = queue.pop(0)
        for target in sorted(graph.get(node, ()) & component):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def package_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {module_name(p).removesuffix(".__init__"): import_edges(p, modules) for p in MODULES}


def test_no_import_cycle_between_modules() -> None:
    # Imports inside functions count too: a lazy import that closes a cycle still ties two
    # modules together, and the next module-level import of it fails at start-up.
    cycles = import_cycles(package_graph())
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_cycle_check_catches_a_lazy_cycle() -> None:
    # The checker itself, on the cycle analyze had: the command imports the engines, and the
    # Spark engine imported choose_format back from the command inside its run().
    graph = {
        "sensor_plugins.analysis.command": {"sensor_plugins.analysis.engines", "sensor_plugins.analysis.output"},
        "sensor_plugins.analysis.engines": {"sensor_plugins.analysis.engines.spark"},
        "sensor_plugins.analysis.engines.spark": {"sensor_plugins.analysis.command",
                                                  "sensor_plugins.analysis.output"},
        "sensor_plugins.analysis.output": set(),
    }
    assert import_cycles(graph) == [["sensor_plugins.analysis.command", "sensor_plugins.analysis.engines",
                                     "sensor_plugins.analysis.engines.spark", "sensor_plugins.analysis.command"]]
    del graph["sensor_plugins.analysis.engines.spark"]  # the edge back gone: no cycle
    assert import_cycles(graph) == []


def test_import_edges_name_the_module_a_from_import_brings_in(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from sensor_plugins.analysis import output\n"
                      "from sensor_plugins.analysis.detect import analysis\n"
                      "def run():\n    import sensor_plugins.errors\n")
    modules = {"sensor_plugins.analysis", "sensor_plugins.analysis.output", "sensor_plugins.analysis.detect",
               "sensor_plugins.errors"}
    assert import_edges(module, modules) == {"sensor_plugins.analysis.output", "sensor_plugins.analysis.detect",
                                             "sensor_plugins.errors"}
