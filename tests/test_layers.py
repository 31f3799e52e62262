"""The layering of simulator/, enforced from the source.

Layers, lowest first. A module may import modules of its own layer or of any layer below it,
never one above; and no two modules of simulator/ may import each other in a circle (counting
every import: at the top, inside functions, and under ``TYPE_CHECKING``).

    0 engine     simulated time and scheduling, hosts, network, clocks, storage, random streams,
                 distributions, topologies, the Node API, UsageError
    1 faults     fault plans, verbs, nemeses, the injector
    2 workload   clients (open and closed loop, timeouts) and the history they leave
    3 checkers   CheckResult, the shared checkers, metrics, checking in a forked child
    4 kit        components to build designs from (services, load balancers, databases, queues,
                 rate limiters): Nodes with parameters, and the checkers they bring
    5 reports    plots: pure functions of histories, metrics and fault windows
    6 pipeline   the scenario contract and registry, config, one run, results folders, sweeps
    7 cli        the `dsim` command
    8 simulator  the public surface (simulator/__init__.py): imports from every layer, and no
                 module inside simulator/ imports it

Designs (scenarios/, examples/) import only the surface, simulator.checkers and simulator.kit
(tested below).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import simulator

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("engine", "faults", "workload", "checkers", "kit", "reports", "pipeline", "cli", "__init__")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file that names a module of the package at ``root``."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    top = root.name
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != top:
                continue
            # `from pkg import name` imports the submodule pkg.name when there is one
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if _exists(sub, root) else target))
    return out


def _exists(mod: str, root: Path) -> bool:
    rel = Path(*mod.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def layer_of(mod: str) -> int:
    parts = mod.split(".")
    if len(parts) == 1:
        return LAYERS.index("__init__")
    return LAYERS.index(parts[1])


def violations(root: Path) -> list[str]:
    """Every climbing import and every import cycle in the package at ``root``, in words."""
    graph: dict[str, set[str]] = {}
    problems = []
    for path in sorted(root.rglob("*.py")):
        me = module_name(path, root)
        parts = me.split(".")
        if len(parts) > 1 and parts[1] not in LAYERS:
            problems.append(f"{path.relative_to(root.parent)}: not in a layer ({', '.join(LAYERS[:-1])})")
            continue
        graph.setdefault(me, set())
        for line, target in imports_of(path, root):
            if target == me:
                continue
            graph[me].add(target)
            if layer_of(target) > layer_of(me):
                problems.append(f"{path.relative_to(root.parent)}:{line}: {me} ({LAYERS[layer_of(me)]}) imports "
                                f"{target} ({LAYERS[layer_of(target)]}), a higher layer")
    problems += [f"import cycle: {' -> '.join(c + [c[0]])}" for c in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_simulator_has_no_climbing_import_and_no_cycle():
    """No module of simulator/ imports a higher layer, and no imports go round in a circle."""
    assert violations(ROOT / "simulator") == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "simulator"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_a_climbing_import_is_caught(tmp_path):
    """An engine module that imports the pipeline is reported with its file and line."""
    root = _tree(tmp_path, {"__init__.py": "", "engine/__init__.py": "", "engine/kernel.py": "x = 1\nfrom ..pipeline.run import execute\n",
                            "pipeline/__init__.py": "", "pipeline/run.py": "def execute(): pass\n"})
    found = violations(root)
    assert len(found) == 1 and "engine/kernel.py:2" in found[0] and "higher layer" in found[0]


def test_a_type_checking_cycle_is_caught(tmp_path):
    """Two engine modules that import each other, one only for type hints, form a reported cycle."""
    root = _tree(tmp_path, {"__init__.py": "", "engine/__init__.py": "",
                            "engine/kernel.py": "from .network import Network\n",
                            "engine/network.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .kernel import Simulation\n"})
    assert violations(root) == ["import cycle: simulator.engine.kernel -> simulator.engine.network -> simulator.engine.kernel"]


def test_a_module_outside_the_layers_is_caught(tmp_path):
    """A module dropped at the top of simulator/ belongs to no layer and is reported."""
    root = _tree(tmp_path, {"__init__.py": "", "helpers.py": "x = 1\n"})
    assert violations(root) == ["simulator/helpers.py: not in a layer (engine, faults, workload, checkers, kit, reports, pipeline, cli)"]


DESIGN_FILES = sorted(p for d in ("scenarios", "examples") if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py"))
# Modules a design (and its tools) must not import: time and randomness come from the node's context, the
# machine's speed from simulator.Stopwatch, and the kernel only through simulator's surface.
HOST_MODULES = ("time", "random", "datetime", "simpy", "secrets")


def _host_imports(tree: ast.AST) -> list[str]:
    """The lines of ``tree`` importing one of HOST_MODULES (or a submodule of one)."""
    bad = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
        bad += [f"line {node.lineno}: import {n}" for n in names if n.split(".")[0] in HOST_MODULES]
    return bad


@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_designs_import_only_the_public_surface(path):
    """A design imports simulator only through its public surface (and simulator.checkers, simulator.kit), and each name exists there."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "simulator":
            if node.module == "simulator":
                bad += [f"line {node.lineno}: {a.name} is not in simulator.__all__" for a in node.names if a.name not in simulator.__all__]
            elif node.module.split(".")[1] not in ("checkers", "kit"):
                bad.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            bad += [f"line {node.lineno}: import {a.name}" for a in node.names
                    if a.name.startswith("simulator.") and a.name.split(".")[1] not in ("checkers", "kit")]
    assert bad == []


@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_designs_read_no_host_clock_randomness_or_kernel(path):
    """A design file imports none of time, random, datetime, simpy or secrets: a seed must reproduce its runs."""
    assert _host_imports(ast.parse(path.read_text())) == []


def test_a_host_clock_import_is_caught():
    """The guard names `import time` and `from random import random` and lets a relative or other import pass."""
    tree = ast.parse("import time\nfrom random import random\nfrom . import time as t\nimport timeit\n")
    assert _host_imports(tree) == ["line 1: import time", "line 2: import random"]


def test_every_public_name_resolves():
    """Each name in simulator.__all__ can be read from the package."""
    for name in simulator.__all__:
        assert getattr(simulator, name) is not None, name
