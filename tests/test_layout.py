"""The package layout follows the flow of data, and stays that way.

Subpackages are layered in the order data flows through them; a module may import from its
own package, from an earlier one, or from the shared base (config, errors, durations), never
from a later one. The command line and the DVC entry points sit on top of everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stageml

ROOT = Path(stageml.__file__).parent
LAYERS = ("data", "features", "models", "explain", "scoring", "tactics", "tracking")
BASE = ("stageml", "stageml.config", "stageml.errors", "stageml.durations")
TOP = ("stageml.cli", "stageml.pipeline")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every stageml module imported at run time, function bodies included.

    Imports under ``if TYPE_CHECKING:`` are for annotations only and never run, so they
    are not edges of the graph.
    """
    out = set()
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stageml"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("stageml")}
        pending.extend(ast.iter_child_nodes(node))
    return {name for name in out if name in MODULES}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    if module in BASE:
        return -1
    if module in TOP or module.startswith("stageml.cli."):
        return len(LAYERS)
    package = module.split(".")[1]
    assert package in LAYERS, f"{module} is in no layer: add its package to LAYERS"
    return LAYERS.index(package)


def test_the_import_graph_has_no_cycles() -> None:
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_import_only_their_own_or_earlier_layers(module: str) -> None:
    later = sorted(dep for dep in GRAPH[module] if _layer(dep) > _layer(module))
    assert not later, f"{module} imports later layers {later}; data flows {' -> '.join(LAYERS)}"


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them along a seam): {long}"


def test_the_layer_check_catches_a_backward_import() -> None:
    # The rule must be able to fail: a scoring import inside the data layer is reported.
    assert _layer("stageml.scoring.local") > _layer("stageml.data.validate")
    assert _layer("stageml.config") < _layer("stageml.data.io") < _layer("stageml.cli")
